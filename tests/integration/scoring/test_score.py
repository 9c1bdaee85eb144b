"""Scoring, recommendations and measured lift, end to end on synthetic data whose true effects are known.

One warehouse and MLflow store for the module: 200 synthetic outlets x 8 products x 60 weeks are built and
a model is trained, its effects estimated, and promoted once. Week 60 (no actuals yet) is scored: the
promised lifts are checked against the generator's true effects; then the generator sells that week under
the recommendations (holdout outlets as planned), knowing both outcomes of every row, and the lift job's
interval is checked against the true effect. Last, `lakehouse serve` answers what the pipeline wrote.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import httpx
import pytest
from pyspark.sql import functions as F

from jobs import measure_lift, sample_data, score
from lakehouse.contracts.model import load_contract
from lakehouse.errors import DataError
from lakehouse.io import delta_io, tracking
from lakehouse.io.catalog import (
    GOLD_EFFECTS,
    GOLD_FEATURES,
    GOLD_LIFT,
    GOLD_PLANNED_FEATURES,
    GOLD_RECOMMENDATIONS,
    GOLD_SALES_WEEKLY,
    SILVER_OUTLETS,
    SILVER_PRODUCTS,
)
from lakehouse.ml import modeling, registry
from lakehouse.ml.model_inputs import with_action
from lakehouse.ml.train_flow import train
from lakehouse.policy import Action, MLConfig, from_dict
from lakehouse.progress import Progress
from lakehouse.scoring import lift_flow, score_flow
from lakehouse.scoring.rows import build_scoring_rows, holdout_fraction
from lakehouse.serving.tokens import add_token
from lakehouse.settings import Settings
from lakehouse.sources import synthetic
from tests.integration.helpers import assert_same_content, build, fresh_home, ingest, table, version
from tests.integration.servers import lakehouse_server

pytestmark = pytest.mark.world  # a module-sized world built first: `make test` runs it, `make test-fast` not

START, WEEKS, OUTLETS, PRODUCTS = date(2023, 1, 2), 60, 200, 8
TARGET = START + timedelta(weeks=WEEKS)
CONFIG = {
    "training": {"cv_folds": 1, "params": {"xgboost": {"n_estimators": 100}}},
    "experiment": {"name": "test-exp", "holdout_share": 0.5},
    "backtest": {"origins": 0},  # the effects gate without its back-test (test_effects has it)
}
NAME = "transaction_drivers"


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory) -> Iterator[tuple[Settings, MLConfig, dict]]:
    """Synthetic history built into gold, a champion, and week TARGET scored through the CLI entry point."""
    with fresh_home(tmp_path_factory, "score", CONFIG) as (root, settings, _):
        raw = root / "raw"
        args = ["--outlets", str(OUTLETS), "--products", str(PRODUCTS), "--weeks", str(WEEKS)]
        assert sample_data.main(["synthetic", "--out", str(raw), *args, "--start", START.isoformat()]) == 0
        ingest(spark, settings, "outlets", raw / "outlets")
        ingest(spark, settings, "products", raw / "products")
        ingest(spark, settings, "sales", *sorted((raw / "sales").glob("week=*")))
        build(spark, settings, START, TARGET - timedelta(weeks=1))
        config = from_dict(CONFIG)
        tracking.configure(settings, config.registry.experiment)
        assert train(spark, settings, config, None, promote=True) == 0
        assert score.main(["--week", str(TARGET + timedelta(days=3))]) == 0  # any day of the week
        yield settings, config, {"raw": raw, "root": root}


def _week(spark, settings, week: date, of=GOLD_RECOMMENDATIONS):
    return table(spark, settings, of).filter(F.col("week_start") == F.lit(week))


def test_every_active_outlet_product_gets_one_recommendation_with_lineage(spark, world):
    settings, config, _ = world
    recs = _week(spark, settings, TARGET)
    rows = recs.collect()
    assert len(rows) == OUTLETS * PRODUCTS
    assert len({(r.outlet_id, r.product_id) for r in rows}) == len(rows)
    champion = registry.client().get_model_version_by_alias(NAME, "champion")
    assert {(r.model_version, r.model_run_id) for r in rows} == {(str(champion.version), champion.run_id)}
    assert {r.features_version for r in rows} == {delta_io.version(spark, GOLD_SALES_WEEKLY, settings)}
    assert {r.experiment for r in rows} == {"test-exp"}
    # The holdout is the stable hash of the outlet and experiment, about half of the outlets here.
    assert all(r.in_holdout == (holdout_fraction(r.outlet_id, "test-exp") < 0.5) for r in rows)
    assert 0.4 < sum(r.in_holdout for r in rows) / len(rows) < 0.6
    assert all(r.action == "as_planned" and r.reason.startswith("holdout") for r in rows if r.in_holdout)
    rules = config.scoring
    promoted: dict[str, int] = {}
    for r in rows:
        assert len(r.candidates) == len(rules.actions) and r.planned_units >= 0
        assert r.lift_units == pytest.approx(r.predicted_units - r.planned_units)
        assert r.effects_version == str(champion.version)
        qualifying = [c for c in r.candidates if c.offered and c.why_not is None]
        assert all(c.lift_pct_low >= rules.min_lift_pct and c.net_lift_units > 0 for c in qualifying)
        assert all(c.price_change >= -rules.max_discount - 1e-9 for c in r.candidates if c.offered)
        if r.intended_action != "as_planned":
            promoted[r.outlet_id] = promoted.get(r.outlet_id, 0) + 1
            best = max(qualifying, key=lambda c: c.net_lift_units)
            assert r.intended_action == best.action and best.explanation and "double ML" in best.explanation
        elif not qualifying:
            assert r.reason.startswith("no action's lift") or r.in_holdout
        if r.action != "as_planned":
            assert r.incremental_margin is not None and r.margin_basis == "unit cost"
            assert r.unit_price == pytest.approx(r.planned_unit_price * (1 + r.price_change))
            assert r.lift_pct_low <= r.lift_pct <= r.lift_pct_high
            assert r.net_lift_units == pytest.approx(r.lift_units + r.cross_units + r.dip_units)
    assert max(promoted.values()) == rules.max_promoted_per_outlet
    assert sum(r.action != "as_planned" for r in rows) > OUTLETS  # the effects find lifts worth recommending


def test_the_rows_the_champion_scored_are_kept_as_planned_with_its_forecast(spark, world):
    """gold_planned_features: one row per scored outlet x product, the scoring rows' model inputs as the
    gold feature code computes them from the recorded table versions, and the forecast the recommendations
    carry as planned."""
    settings, config, _ = world
    planned = _week(spark, settings, TARGET, GOLD_PLANNED_FEATURES).localCheckpoint()
    recs = _week(spark, settings, TARGET)
    assert planned.count() == OUTLETS * PRODUCTS == planned.select("outlet_id", "product_id").distinct().count()
    lineage = ("model_name", "model_version", "model_run_id", "features_version", "inputs")
    assert {tuple(r) for r in planned.select(*lineage).distinct().collect()} == {
        tuple(r) for r in recs.select(*lineage).distinct().collect()
    }
    (features_version,) = {r.features_version for r in planned.select("features_version").collect()}
    scored = build_scoring_rows(
        delta_io.read(spark, GOLD_SALES_WEEKLY, settings, features_version),
        table(spark, settings, SILVER_OUTLETS),
        table(spark, settings, SILVER_PRODUCTS),
        load_contract(GOLD_FEATURES.contract, settings.contracts_dir),
        TARGET,
        config.scoring.active_weeks,
    )
    features = [c for c in planned.columns if c not in (*lineage, "planned_units")]
    assert_same_content(planned.select(*features), scored.select(*features))
    assert not planned.filter(F.col("is_on_deal") | F.col("is_featured") | F.col("has_display")).count()
    forecasts = recs.select("outlet_id", "product_id", "planned_units")
    assert_same_content(planned.select("outlet_id", "product_id", "planned_units"), forecasts)


def test_the_promised_lifts_cover_the_true_lift_at_the_stated_rate(spark, world):
    """The generator's truth gives every recommended action's true lift; the promised intervals hold it."""
    settings, config, _ = world
    truth = synthetic.Truth()
    flags = {"deal": truth.deal_effect, "feature": truth.feature_effect, "display": truth.display_effect}
    actions = {a.name: a for a in config.scoring.candidate_actions()}
    promised: dict[tuple, tuple[float, float, float]] = {}  # one interval per brand, action and price change
    for r in _week(spark, settings, TARGET).filter(F.col("intended_action") != "as_planned").collect():
        c = {c.action: c for c in r.candidates}[r.intended_action]
        action = actions[r.intended_action]
        log_lift = truth.price_elasticity * math.log1p(c.price_change) + sum(
            v for name, v in flags.items() if getattr(action, name)
        )
        key = (r.brand, r.intended_action, round(c.price_change, 3), c.explanation.split("(double ML, ")[1])
        promised[key] = (c.lift_pct_low, 100 * math.expm1(log_lift), c.lift_pct_high)
    covered = sum(low <= true <= high for low, true, high in promised.values())
    # 95% intervals: the count covered is binomial; fewer than its 1st percentile fails.
    floor = next(k for k in range(len(promised) + 1) if _binomial_cdf(k, len(promised), 0.95) > 0.01)
    assert len(promised) >= 5 and covered >= floor, {k: v for k, v in promised.items()}


def _binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def test_rescoring_a_week_replaces_that_week_only(spark, world):
    settings, config, _ = world
    before = _week(spark, settings, TARGET).localCheckpoint()
    earlier = TARGET - timedelta(weeks=1)  # a week with actuals can be scored too (a backfill)
    score_flow.score_week(spark, settings, config, earlier, Progress("test"))
    after_earlier = delta_io.version(spark, GOLD_RECOMMENDATIONS, settings)
    planned_before = _week(spark, settings, TARGET, GOLD_PLANNED_FEATURES).localCheckpoint()
    planned_version = delta_io.version(spark, GOLD_PLANNED_FEATURES, settings)
    score_flow.score_week(spark, settings, config, TARGET, Progress("test"))
    assert_same_content(_week(spark, settings, TARGET), before)
    assert delta_io.version(spark, GOLD_RECOMMENDATIONS, settings) == after_earlier  # same result: not rewritten
    assert_same_content(_week(spark, settings, TARGET, GOLD_PLANNED_FEATURES), planned_before)
    assert delta_io.version(spark, GOLD_PLANNED_FEATURES, settings) == planned_version
    assert _week(spark, settings, earlier, GOLD_PLANNED_FEATURES).count() == OUTLETS * PRODUCTS
    weeks = {
        r.week_start: r.n
        for r in table(spark, settings, GOLD_RECOMMENDATIONS)
        .groupBy("week_start")
        .count()
        .withColumnRenamed("count", "n")
        .collect()
    }
    assert weeks == {earlier: OUTLETS * PRODUCTS, TARGET: OUTLETS * PRODUCTS}


def test_a_week_scored_from_the_same_inputs_is_kept_and_a_config_change_rescores_it(spark, world, capsys):
    settings, config, _ = world
    inputs, _ = score_flow.score_inputs(spark, settings, config, TARGET, registry.champion(NAME))
    before = _week(spark, settings, TARGET).localCheckpoint()
    assert {r.inputs for r in before.select("inputs").distinct().collect()} == {inputs}
    written = delta_io.version(spark, GOLD_RECOMMENDATIONS, settings)
    capsys.readouterr()
    kept = score_flow.score_week(spark, settings, config, TARGET, Progress("test"))
    assert "scored from the same inputs" in capsys.readouterr().out  # the model was not even loaded
    assert kept["rows"] == OUTLETS * PRODUCTS and delta_io.version(spark, GOLD_RECOMMENDATIONS, settings) == written

    # A rule changed in config is a new input: the week is scored again under it, then back.
    strict = replace(config, scoring=replace(config.scoring, min_lift_pct=config.scoring.min_lift_pct + 1e6))
    assert score_flow.score_week(spark, settings, strict, TARGET, Progress("test"))["recommended"] == 0
    assert "scored from the same inputs" not in capsys.readouterr().out
    assert delta_io.version(spark, GOLD_RECOMMENDATIONS, settings) == written + 1
    score_flow.score_week(spark, settings, config, TARGET, Progress("test"))
    assert_same_content(_week(spark, settings, TARGET), before)


def test_a_new_input_that_changes_no_recommendation_is_recorded_so_the_next_run_keeps_the_week(spark, world, capsys):
    settings, config, _ = world
    champion = registry.champion(NAME)
    inputs, _ = score_flow.score_inputs(spark, settings, config, TARGET, champion)
    before = _week(spark, settings, TARGET).localCheckpoint()

    # Another model version's effects beside the champion's: scoring reads none of them, the week stays current.
    effects = delta_io.read(spark, GOLD_EFFECTS, settings)
    other_version = effects.filter(F.col("model_version") == F.lit(str(champion.version))).localCheckpoint()
    delta_io.replace_where(
        other_version.withColumn("model_version", F.lit("999")), GOLD_EFFECTS, settings, "model_version = '999'"
    )
    assert score_flow.score_inputs(spark, settings, config, TARGET, champion)[0] == inputs

    # An input that changes no recommendation (the lift's power): scored again, and written once with the new
    # inputs id, so that the run after it keeps the week without scoring it.
    powered = replace(config, experiment=replace(config.experiment, power=0.9))
    new_inputs, _ = score_flow.score_inputs(spark, settings, powered, TARGET, champion)
    assert new_inputs != inputs
    written = delta_io.version(spark, GOLD_RECOMMENDATIONS, settings)
    capsys.readouterr()
    score_flow.score_week(spark, settings, powered, TARGET, Progress("test"))
    assert "scored from the same inputs" not in capsys.readouterr().out
    assert delta_io.version(spark, GOLD_RECOMMENDATIONS, settings) == written + 1
    assert_same_content(_week(spark, settings, TARGET), before, drop=("inputs",))
    assert {r.inputs for r in _week(spark, settings, TARGET).select("inputs").distinct().collect()} == {new_inputs}
    score_flow.score_week(spark, settings, powered, TARGET, Progress("test"))
    assert "scored from the same inputs" in capsys.readouterr().out
    assert delta_io.version(spark, GOLD_RECOMMENDATIONS, settings) == written + 1

    score_flow.score_week(spark, settings, config, TARGET, Progress("test"))  # back to the module's config
    assert_same_content(_week(spark, settings, TARGET), before)


def test_measured_lift_covers_the_true_effect_of_the_recommendations(spark, world, capsys):
    settings, config, paths = world
    with pytest.raises(DataError, match="have not landed"):
        lift_flow.measure_week(spark, settings, config, TARGET, Progress("test"))
    with pytest.raises(DataError, match="was not scored"):
        lift_flow.measure_week(spark, settings, config, TARGET + timedelta(weeks=1), Progress("test"))
    # The generator sells week TARGET: treated outlets follow their recommendation, holdout outlets the plan.
    actions = {a.name: a for a in config.scoring.candidate_actions()}
    recs = _week(spark, settings, TARGET).collect()
    price = {(r.outlet_id, r.product_id): {c.action: c.unit_price for c in r.candidates} for r in recs}
    plan = spark.createDataFrame(
        [
            (
                r.outlet_id,
                r.product_id,
                not r.in_holdout,
                r.planned_unit_price,
                price[r.outlet_id, r.product_id][r.intended_action],
                bool(actions[r.intended_action].deal),
                bool(actions[r.intended_action].feature),
                bool(actions[r.intended_action].display),
            )
            for r in recs
        ],
        "outlet_id string, product_id string, treated boolean, planned_price double, price double, deal boolean, "
        "feature boolean, display boolean",
    )
    shape = synthetic.Shape(OUTLETS, PRODUCTS, WEEKS, START, 7)
    sold = synthetic.sales_under_plan(spark, shape, synthetic.Truth(), plan, WEEKS).localCheckpoint()
    delivery = paths["raw"] / "sales" / f"week={TARGET}"
    sold.drop("_units_if_treated", "_units_if_planned").coalesce(1).write.option("header", True).csv(str(delivery))
    ingest(spark, settings, "sales", delivery)
    build(spark, settings, TARGET, TARGET)

    measure_lift.main(["--week", str(TARGET)])
    lift = {r.brand: r for r in table(spark, settings, GOLD_LIFT).collect()}
    # The truth: per outlet and brand, units if every recommendation were followed minus units as planned,
    # averaged over all outlets (what a randomised holdout estimates).
    brands = {r.product_id: r.brand for r in recs}
    effect = (
        sold.groupBy("outlet_id", "product_id")
        .agg(F.sum(F.col("_units_if_treated") - F.col("_units_if_planned")).alias("e"))
        .collect()
    )
    per_outlet: dict[tuple[str, str], float] = {}
    for r in effect:
        for brand in (brands[r.product_id], "ALL"):
            per_outlet[r.outlet_id, brand] = per_outlet.get((r.outlet_id, brand), 0.0) + r.e
    truth = {b: sum(v for (_, bb), v in per_outlet.items() if bb == b) / OUTLETS for b in lift}
    report = {b: (round(r.ci_low, 2), round(truth[b], 2), round(r.ci_high, 2)) for b, r in lift.items()}
    print(json.dumps(report, indent=1))
    overall = lift["ALL"]
    assert overall.ci_low <= truth["ALL"] <= overall.ci_high, report
    assert overall.ci_low > 0  # the recommended actions do lift sales, and the test has the power to see it
    covered = sum(r.ci_low <= truth[b] <= r.ci_high for b, r in lift.items())
    assert covered >= len(lift) - 1, report  # 95% intervals: one miss among the brands is within chance
    assert overall.treated_outlets + overall.holdout_outlets == OUTLETS
    # Did we get what we promised: the recommendations' own promise per treated outlet, inside the measured
    # interval; and the holdout's size could detect a lift well below the one measured.
    assert overall.promise_kept, (overall.predicted_lift_units, overall.ci_low, overall.ci_high)
    assert overall.predicted_low <= overall.predicted_lift_units <= overall.predicted_high
    assert 0 < overall.mde_units < overall.lift_units
    # Measuring again changes nothing, not even the table's Delta version.
    before, written = table(spark, settings, GOLD_LIFT).localCheckpoint(), version(spark, settings, GOLD_LIFT)
    capsys.readouterr()
    lift_flow.measure_week(spark, settings, config, TARGET, Progress("test"))
    assert "measured from the same inputs" in capsys.readouterr().out
    assert_same_content(table(spark, settings, GOLD_LIFT), before)
    assert version(spark, settings, GOLD_LIFT) == written


def test_the_api_serves_what_the_pipeline_wrote(spark, world):
    """`lakehouse serve` over this home (a real server on 127.0.0.1, delta-rs): the scored week, the champion's
    effects and the measured lift as Spark wrote them; an outlet token reads its own outlet only."""
    settings, _, paths = world
    champion = registry.champion(NAME)
    recs = _week(spark, settings, TARGET).join(table(spark, settings, SILVER_OUTLETS), "outlet_id", how="left")
    order = [F.desc_nulls_last("net_lift_units"), F.asc("outlet_id"), F.asc("product_id")]
    top = [(r.outlet_id, r.product_id, r.action) for r in recs.orderBy(*order).limit(20).collect()]
    outlet = top[0][0]
    mine = [(r.product_id, r.action) for r in recs.filter(F.col("outlet_id") == outlet).orderBy(*order).collect()]
    other = recs.filter(F.col("outlet_id") != outlet).first().outlet_id
    retail = recs.filter(F.col("channel") == "retail").count()
    effects = table(spark, settings, GOLD_EFFECTS).filter(F.col("model_version") == str(champion.version)).count()
    lift = {
        r.brand: r.lift_units for r in table(spark, settings, GOLD_LIFT).filter(F.col("week_start") == TARGET).collect()
    }
    tokens = {role: add_token(settings.tokens_file, role, role) for role in ("analyst", f"outlet:{outlet}")}

    with lakehouse_server(paths["root"] / "server") as server:
        server.wait_until_ready()

        def get(path: str, role: str = "analyst", **params) -> dict:
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            response = httpx.get(server.url + path, params=params or None, headers=headers, timeout=60)
            return {"status": response.status_code, **response.json()}

        assert get("/v1/models/champion") | {"loaded_at": None, "registered_at": None} == {
            "status": 200,
            "name": NAME,
            "version": str(champion.version),
            "run_id": champion.run_id,
            "served_week": str(TARGET),
            "loaded_at": None,
            "registered_at": None,
        }
        page = get("/v1/recommendations", top=20, limit=20)
        assert [(r["outlet_id"], r["product_id"], r["action"]) for r in page["items"]] == top
        assert get("/v1/recommendations", channel="retail", limit=1)["total"] == retail > 0
        assert [(r["product_id"], r["action"]) for r in get(f"/v1/outlets/{outlet}/recommendations")["items"]] == mine
        assert len(get("/v1/effects")["items"]) == effects > 0
        measured = get("/v1/lift", week=str(TARGET))["items"]
        assert {r["brand"]: pytest.approx(r["lift_units"]) for r in measured} == lift
        own = get(f"/v1/outlets/{outlet}/recommendations", f"outlet:{outlet}")
        assert own["status"] == 200 and {r["outlet_id"] for r in own["items"]} == {outlet}
        assert get(f"/v1/outlets/{other}/recommendations", f"outlet:{outlet}")["status"] == 403


def _relative(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def test_online_what_if_scores_the_planned_rows_as_batch_scoring_does(spark, world):
    """POST /v1/what-if on `lakehouse serve` (real server, the champion's serving flavour, no Spark in it): as
    planned it answers the batch forecast, and under a proposal what the Spark model predicts for the same
    action applied by scoring's own code (`with_action`), both within 1e-6 relative."""
    import mlflow.spark

    settings, _, paths = world
    champion = registry.champion(NAME)
    planned = _week(spark, settings, TARGET, GOLD_PLANNED_FEATURES)
    sample = planned.orderBy("outlet_id", "product_id").limit(6).localCheckpoint()
    model = mlflow.spark.load_model(f"models:/{NAME}/{champion.version}")
    proposals = {"cut and deal": Action("x", -0.1, deal=True), "display": Action("y", 0.0, display=True)}
    batch = {
        name: {
            (r.outlet_id, r.product_id): r[modeling.PREDICTION]
            for r in modeling.predict(model, with_action(sample, action)).collect()
        }
        for name, action in proposals.items()
    }
    outlet = sample.first().outlet_id
    other = planned.filter(F.col("outlet_id") != outlet).first().outlet_id
    tokens = {
        role: add_token(settings.tokens_file, f"what-if-{role}", role) for role in ("analyst", f"outlet:{outlet}")
    }

    with lakehouse_server(paths["root"] / "server-what-if") as server:
        server.wait_until_ready()

        def post(body: dict, role: str = "analyst") -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            return httpx.post(server.url + "/v1/what-if", json=body, headers=headers, timeout=60)

        for r in sample.collect():
            key = {"outlet_id": r.outlet_id, "product_id": r.product_id}
            as_planned = post({**key, "week": str(TARGET + timedelta(days=2))}).json()
            assert (as_planned["week"], as_planned["model_version"]) == (str(TARGET), str(champion.version))
            assert _relative(as_planned["planned_units"], r.planned_units) <= 1e-6, (as_planned, r.planned_units)
            assert as_planned["predicted_units"] == as_planned["planned_units"] and as_planned["lift_units"] == 0
            cut = post({**key, "price_change": -0.1, "deal": True}).json()
            assert _relative(cut["predicted_units"], batch["cut and deal"][r.outlet_id, r.product_id]) <= 1e-6
            assert cut["unit_price"] == pytest.approx(0.9 * r.unit_price) and cut["is_on_deal"]
            assert cut["lift_units"] == pytest.approx(cut["predicted_units"] - cut["planned_units"])
            interval = cut["interval"]
            assert interval["available"] and interval["basis"] == "effects", interval
            assert interval["lift_pct_low"] <= interval["lift_pct"] <= interval["lift_pct_high"]
            assert "double ML" in interval["explanation"]
            shown = post({**key, "display": True}).json()
            assert _relative(shown["predicted_units"], batch["display"][r.outlet_id, r.product_id]) <= 1e-6
            same_price = post({**key, "unit_price": r.unit_price}).json()
            assert same_price["predicted_units"] == same_price["planned_units"]

        mine = post({"outlet_id": outlet, "product_id": sample.first().product_id}, f"outlet:{outlet}")
        assert mine.status_code == 200
        theirs = post({"outlet_id": other, "product_id": sample.first().product_id}, f"outlet:{outlet}")
        assert theirs.status_code == 403
        unknown = post({"outlet_id": "no-such-outlet", "product_id": sample.first().product_id})
        assert (unknown.status_code, unknown.json()["message"]) == (
            404,
            f"outlet 'no-such-outlet' has no planned rows in week {TARGET}",
        )
        assert post({"outlet_id": outlet, "product_id": "no-such-product"}).status_code == 404
        assert post({"outlet_id": outlet}).status_code == 422


def test_scoring_without_a_champion_is_a_clear_error(settings, monkeypatch):
    monkeypatch.delenv("LAKEHOUSE_CONFIG", raising=False)
    tracking.configure(settings, "empty")
    with pytest.raises(DataError, match="has no @champion"):
        registry.champion("no_such_model")

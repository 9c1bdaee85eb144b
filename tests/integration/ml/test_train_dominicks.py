"""Real data: all of Dominick's orange juice weeks built, a model trained and its effects estimated.

The forecast's what-ifs have the signs economics requires (its monotone constraints, checked row by row
on real rows), and the causal effects do too: every brand's own-price elasticity is negative.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date

import mlflow
import pytest
from pyspark.sql import functions as F

from jobs import score
from lakehouse.io import tracking
from lakehouse.io.catalog import GOLD_BACKTEST, GOLD_FEATURES, GOLD_RECOMMENDATIONS
from lakehouse.ml import modeling, registry
from lakehouse.ml.effects_flow import estimate_version
from lakehouse.ml.model_inputs import with_action
from lakehouse.ml.train_flow import train
from lakehouse.policy import Action, MLConfig, from_dict
from lakehouse.progress import Progress
from lakehouse.scoring import score_flow
from lakehouse.settings import REPO_ROOT, Settings
from lakehouse.sources import dominicks
from tests.integration.helpers import build, fresh_home, ingest, ingest_references, table

pytestmark = pytest.mark.world  # a module-sized world built first: `make test` runs it, `make test-fast` not


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory) -> Iterator[tuple[Settings, MLConfig]]:
    with fresh_home(tmp_path_factory, "dominicks") as (root, settings, _):
        out = root / "dom"
        dominicks.write_deliveries(dominicks.fetch_rda(REPO_ROOT / ".cache" / "debs"), out)
        ingest_references(spark, settings, {"outlets": out / "outlets", "products": out / "products"})
        ingest(spark, settings, "sales", *sorted((out / "sales").glob("week=*")))
        build(spark, settings, date(1990, 6, 11), date(1992, 10, 5))
        config = from_dict({"training": {"cv_folds": 0, "params": {"xgboost": {"n_estimators": 100}}}})
        tracking.configure(settings, config.registry.experiment)
        assert train(spark, settings, config, None, promote=True) == 0
        yield settings, config


def test_on_dominicks_price_hurts_and_deals_and_feature_ads_help(trained):
    _, config = trained
    run_id = registry.client().get_model_version(config.registry.model_name, "1").run_id
    metrics = mlflow.MlflowClient().get_run(run_id).data.metrics
    assert metrics["effect_price_elasticity"] < -0.5
    assert metrics["effect_deal_lift"] > 0 and metrics["effect_feature_lift"] > 0
    assert metrics["holdout_wape"] < metrics["baseline_last_week_wape"]


def test_every_row_sells_less_at_a_higher_price_and_more_on_deal(spark, trained):
    """Individual conditional expectation on real rows: the monotone constraints hold for each row."""
    import mlflow.spark

    settings, config = trained
    model = mlflow.spark.load_model(f"models:/{config.registry.model_name}/1")
    rows = table(spark, settings, GOLD_FEATURES).orderBy(F.xxhash64("outlet_id", "product_id", "week_start")).limit(300)
    rows = rows.withColumn("_row", F.monotonically_increasing_id()).cache()

    def predicted(action: Action) -> dict[int, float]:
        scored = modeling.predict(model, with_action(rows, action))
        return {r["_row"]: r[modeling.PREDICTION] for r in scored.select("_row", modeling.PREDICTION).collect()}

    changes = (-0.3, -0.15, 0.0, 0.15, 0.3)
    curves = [predicted(Action(f"price_{c}", price_change=c)) for c in changes]
    for row in curves[0]:
        units = [curve[row] for curve in curves]
        assert all(a >= b - 1e-6 for a, b in itertools.pairwise(units)), (row, units)
    with_deal, without = predicted(Action("deal", deal=True)), predicted(Action("none", deal=False))
    assert all(with_deal[r] >= without[r] - 1e-6 for r in with_deal)


def test_on_dominicks_every_brands_own_price_elasticity_is_negative(spark, trained, capsys):
    settings, config = trained
    version = registry.client().get_model_version(config.registry.model_name, "1")
    rows = estimate_version(spark, settings, config, version, False, Progress("test-effects"))
    own = {r["brand"]: r for r in rows if r["method"] == "dml" and r["segment"] == "ALL" and r["effect"] == "own_price"}
    assert len(own) >= 8, sorted(own)
    for brand, row in own.items():
        assert row["status"] == "estimated" and row["ci_high"] < 0, (brand, row)
    # Dominick's has no display flag: display is never offered as an effect there.
    display = [r for r in rows if r["effect"] == "display"]
    assert display and {r["status"] for r in display} == {"unsupported"}
    # `train` estimated them before promoting: the whole gate passed, the effects half included.
    assert version.tags["gate.effects"] == "passed" and version.tags["gate.passed"] == "true", version.tags
    assert registry.alias_version(config.registry.model_name, registry.CHAMPION) == "1"


def test_on_dominicks_recommendations_are_priced_supported_and_within_the_back_test(spark, trained, capsys):
    """The week after the data: display is never offered, every promotion comes with its price cut, and no
    promise exceeds what the same brand's promotions of that kind realised in the back-test."""
    settings, config = trained
    week = date(1992, 10, 12)
    assert score_flow.score_week(spark, settings, config, week, Progress("test-score"))["rows"] > 800
    recs = table(spark, settings, GOLD_RECOMMENDATIONS).filter(F.col("week_start") == F.lit(week)).collect()
    backtest = {(r.brand, r.action): r for r in table(spark, settings, GOLD_BACKTEST).collect()}
    assert backtest["ALL", "ALL"].promotions > 100, backtest["ALL", "ALL"]
    assert all(not c.offered for r in recs for c in r.candidates if "display" in c.action)
    acted = [r for r in recs if r.intended_action != "as_planned"]
    assert acted
    for r in acted:
        chosen = {c.action: c for c in r.candidates}[r.intended_action]
        # A price action cuts the price; a promotion comes with the cut that usually goes with it at this
        # outlet, region or chain (for Dominick's own brand that is none: its feature weeks kept the price).
        if r.intended_action.startswith("price_"):
            assert chosen.price_change < 0, chosen
        else:
            assert f"typical {r.intended_action} cut" in chosen.explanation, chosen
            assert chosen.price_change < 0 or "feature" in r.intended_action, chosen
        assert chosen.lift_pct_low >= config.scoring.min_lift_pct and chosen.net_lift_units > 0
        cell = backtest.get((r.brand, r.intended_action))
        if cell is not None and cell.realised_pct_high is not None:
            assert chosen.lift_pct <= cell.realised_pct_high, (r.brand, chosen, cell)
    capsys.readouterr()
    score.print_top(table(spark, settings, GOLD_RECOMMENDATIONS).filter(F.col("week_start") == F.lit(week)), 10)
    with capsys.disabled():
        print(f"\nDominick's, week {week}: {len(acted)} of {len(recs)} with an action; top 10:")
        print(capsys.readouterr().out)

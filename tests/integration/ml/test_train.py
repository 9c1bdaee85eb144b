"""Training, tracking, the registry and the gate, end to end on synthetic data whose true effects are known.

One warehouse and one MLflow store (SQLite) for the module: synthetic deliveries are ingested and built
once, then the tests train, gate, promote, roll back and reproduce against them in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import functions as F

from jobs import sample_data
from lakehouse.errors import RegistryError
from lakehouse.io import tracking
from lakehouse.io.catalog import GOLD_FEATURES
from lakehouse.ml import modeling, models_flow, registry, serving_flavour, serving_model
from lakehouse.ml.model_inputs import filter_weeks
from lakehouse.ml.train_flow import reproduce, run_gate, train
from lakehouse.ml.training import train_and_evaluate
from lakehouse.policy import MLConfig, from_dict
from lakehouse.settings import Settings
from tests.integration.helpers import fresh_home, land_and_build, table

pytestmark = pytest.mark.world  # a module-sized world built first: `make test` runs it, `make test-fast` not

START, WEEKS = date(2023, 1, 2), 60
# The effects half of the gate has its own tests (test_effects, test_train_dominicks); promotion here
# needs only the forecast half, which saves estimating effects on data made for something else.
FAST = {
    "training": {"cv_folds": 1, "params": {"xgboost": {"n_estimators": 100}}},
    "gate": {"effects_required": False},
}
NAME = "transaction_drivers"


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory) -> Iterator[tuple[Settings, MLConfig, dict, str]]:
    """Synthetic data built into gold and a first model trained (it becomes champion)."""
    with fresh_home(tmp_path_factory, "train") as (root, settings, mp):
        mp.setenv("LAKEHOUSE_ACTOR", "ci-tests")
        raw = root / "raw"
        args = ["--outlets", "100", "--products", "8", "--weeks", str(WEEKS), "--start", START.isoformat()]
        assert sample_data.main(["synthetic", "--out", str(raw), *args]) == 0
        land_and_build(spark, settings, raw, START, WEEKS)
        config = from_dict(FAST)
        tracking.configure(settings, config.registry.experiment)
        assert train(spark, settings, config, None, promote=True) == 0
        first_run = registry.client().get_model_version(NAME, "1").run_id
        yield settings, config, json.loads((raw / "truth.json").read_text()), first_run


def _run(run_id: str):
    return mlflow.MlflowClient().get_run(run_id)


def test_a_run_logs_metrics_lineage_and_artifacts_and_the_model_becomes_champion(spark, trained):
    settings, _, _, run_id = trained
    run = _run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags[f"lineage.{GOLD_FEATURES.name}.path"] == GOLD_FEATURES.path(settings)
    assert tags[f"lineage.{GOLD_FEATURES.name}.version"] == "0"
    assert tags["contract.gold_features.version"] == "1.1.0"
    assert tags["spark_master"] == spark.sparkContext.master and len(tags["git_commit"].split("+")[0]) == 40
    for key in (
        "holdout_wape",
        "holdout_rmse_log",
        "holdout_bias",
        "cv_1_wape",
        "baseline_last_week_wape",
        "baseline_last_year_wape",
        "baseline_elasticity_wape",
        "effect_price_elasticity",
    ):
        assert key in metrics, key
    assert metrics["holdout_wape"] < min(
        metrics[f"baseline_{b}_wape"] for b in ("last_week", "last_year", "elasticity")
    )
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"config.json", "gate.json", "feature_importance.json", "plots", "errors"} <= artifacts
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "plots")}
    assert plots == {"plots/feature_importance.png", "plots/predicted_vs_actual.png"}
    assert registry.alias_version(NAME, "champion") == "1" and registry.alias_version(NAME, "challenger") == "1"
    history = [
        (r.action, r.alias, r.from_version, r.to_version, r.actor)
        for r in registry.history(spark, settings, NAME).collect()
    ]
    assert history == [
        ("register", "challenger", None, "1", "ci-tests"),
        ("promote", "champion", None, "1", "ci-tests"),
    ]
    model = mlflow.models.get_model_info(f"models:/{NAME}@champion")
    assert "is_on_deal" in model.signature.inputs.input_names() and "units" not in model.signature.inputs.input_names()


def test_training_again_on_the_same_inputs_reuses_the_run(spark, trained, capsys):
    settings, config, _, run_id = trained
    assert train(spark, settings, config, None, promote=True, force=False) == 0
    assert (
        f"already trained on gold_features version 0 with this config and code: run {run_id}" in capsys.readouterr().out
    )
    assert registry.alias_version(NAME, "challenger") == "1"


def test_the_holdout_weeks_never_reach_training(trained):
    _, config, _, run_id = trained
    params = _run(run_id).data.params
    last = date.fromordinal(START.toordinal() + 7 * (WEEKS - 1))
    holdout_first = date.fromordinal(last.toordinal() - 7 * (config.training.holdout_weeks - 1))
    assert params["holdout_first_week"] == str(holdout_first) and params["holdout_last_week"] == str(last)
    # The final model's training rows were aggregated from the frame given to fit: all before the holdout.
    assert date.fromisoformat(params["train_last_week"]) < holdout_first
    assert params["train_first_week"] == str(START)


def test_holdout_labels_reach_no_fit(spark, trained):
    """Multiply the holdout weeks' units by 1000: every fitted model and every fold must stay the same."""
    settings, _, _, _ = trained
    features = table(spark, settings, GOLD_FEATURES)
    small = from_dict({"training": {"cv_folds": 1, "params": {"xgboost": {"n_estimators": 20}}}}).training
    clean = train_and_evaluate(features, small)
    in_holdout = F.col("week_start") >= F.lit(clean.holdout.test_from)
    poisoned = features.withColumn("units", F.when(in_holdout, F.col("units") * 1000).otherwise(F.col("units")))
    dirty = train_and_evaluate(poisoned, small)

    assert dirty.cv_metrics == clean.cv_metrics
    sample = filter_weeks(features, None, clean.holdout.train_to).orderBy("outlet_id", "product_id", "week_start")
    sample = sample.limit(300).cache()
    before = [r[modeling.PREDICTION] for r in modeling.predict(clean.model, sample).collect()]
    after = [r[modeling.PREDICTION] for r in modeling.predict(dirty.model, sample).collect()]
    assert after == pytest.approx(before, rel=1e-9)
    assert dirty.holdout_metrics["wape"] > 0.9 > clean.holdout_metrics["wape"]  # only the evaluation saw them


def test_the_serving_flavour_scores_as_the_spark_model_and_the_gate_refuses_one_that_does_not(
    spark, trained, tmp_path: Path
):
    """At registration both flavours scored a holdout sample alike; a flavour whose booster reads two
    features swapped (built here from the same fitted stages) is refused with the reason on record."""
    settings, _, _, run_id = trained
    run = _run(run_id)
    assert run.data.tags["serving.flavour"] == "pyfunc"
    assert run.data.metrics["parity_rows"] > 100 and run.data.metrics["parity_max_rel_diff"] <= 1e-6
    assert "parity_max_rel_diff" in json.loads(registry.client().get_model_version(NAME, "1").tags["gate.metrics"])

    small = from_dict({**FAST, "training": {"cv_folds": 0, "params": {"xgboost": {"n_estimators": 20}}}})
    result = train_and_evaluate(table(spark, settings, GOLD_FEATURES), small.training)
    stages, booster = serving_model.stages_of(result.model)
    estimator = next(s for s in stages if s["kind"] == "xgboost")
    unit_price, log_price = estimator["features"].index("f_unit_price"), estimator["features"].index("f_log_price")
    swapped = list(estimator["features"])
    swapped[unit_price], swapped[log_price] = swapped[log_price], swapped[unit_price]
    estimator["features"] = swapped
    with mlflow.start_run(run_name="broken-serving-flavour"):
        sound_uri = serving_flavour.log_serving_flavour(result.model, [])
        broken = mlflow.pyfunc.log_model(
            name="broken",
            python_model=serving_flavour.PipelineStages(),
            artifacts=serving_model.save(stages, booster, tmp_path / "broken"),
        )
    sound = run_gate(result, small, serving_flavour.load_serving_flavour(sound_uri))
    refused = run_gate(result, small, serving_flavour.load_serving_flavour(broken.model_uri))
    assert sound.metrics["parity_max_rel_diff"] <= 1e-6
    assert not any(r.startswith("serving flavour") for r in sound.reasons)
    assert not refused.passed and refused.metrics["parity_max_rel_diff"] > 1e-6
    assert [r for r in refused.reasons if r.startswith("serving flavour")] == [
        f"serving flavour: its predictions differ from the Spark model's by up to "
        f"{refused.metrics['parity_max_rel_diff']:.3g} (relative) on {refused.metrics['parity_rows']:.0f} holdout "
        "rows (more than 1e-06)"
    ]


def test_the_model_recovers_the_true_deal_and_feature_lift_within_20_percent(trained):
    _, _, truth, run_id = trained
    metrics = _run(run_id).data.metrics
    for promo in ("deal", "feature"):
        true_lift = truth[f"{promo}_lift_pct"] / 100
        assert metrics[f"effect_{promo}_lift"] == pytest.approx(true_lift, rel=0.20), promo
    assert metrics["effect_price_elasticity"] == pytest.approx(truth["truth"]["price_elasticity"], rel=0.20)


def test_a_challenger_no_better_than_the_champion_is_not_promoted_and_force_and_rollback_are_audited(spark, trained):
    settings, config, _, _ = trained
    assert train(spark, settings, config, None, promote=True) == 0  # same data, same config: no improvement
    assert registry.alias_version(NAME, "challenger") == "2" and registry.alias_version(NAME, "champion") == "1"
    version = registry.client().get_model_version(NAME, "2")
    assert version.tags["gate.passed"] == "false" and "does not beat champion" in version.tags["gate.reasons"]
    gate_metrics = json.loads(version.tags["gate.metrics"])
    assert gate_metrics["champion_version"] == "1" and gate_metrics["champion_wape"] > 0

    with pytest.raises(RegistryError, match=r"version 2 failed the gate .*use --force"):
        models_flow.promote(spark, settings, NAME, "2", "looks fine to me", force=False)
    forced = models_flow.promote(spark, settings, NAME, "2", "hotfix for the demo", force=True)
    assert forced == {"model": NAME, "champion": "2", "previous": "1", "forced": True}
    assert registry.client().get_model_version(NAME, "2").tags["champion.promote_forced"] == "true"

    assert models_flow.rollback(spark, settings, NAME, "forced model misbehaves") == {
        "model": NAME,
        "champion": "1",
        "previous": "2",
    }
    assert registry.alias_version(NAME, "champion") == "1"
    with pytest.raises(RegistryError, match="no previous champion"):
        models_flow.rollback(spark, settings, NAME, "again")
    events = [r.asDict() for r in registry.history(spark, settings, NAME).collect()]
    assert [(e["action"], e["alias"], e["from_version"], e["to_version"], e["forced"]) for e in events[2:]] == [
        ("register", "challenger", "1", "2", False),
        ("promote", "champion", "1", "2", True),
        ("rollback", "champion", "2", "1", False),
    ]
    assert events[-1]["reason"] == "forced model misbehaves" and events[-1]["gate_passed"] is True


def test_an_alias_change_killed_after_its_audit_row_is_completed_by_the_next_one(spark, trained, capsys):
    """The audit row is written before the alias moves: a command killed between the two leaves the row
    (never an unaudited alias), and the next alias change of the model applies it first."""
    settings, _, _, _ = trained
    assert registry.alias_version(NAME, "champion") == "1"
    event = registry.Event(NAME, "champion", "promote", "1", "2", "killed before the alias moved", forced=True)
    registry._append_event(spark, settings, event, datetime.now(UTC))  # the first half of move_alias
    assert registry.alias_version(NAME, "champion") == "1"

    assert registry.complete_interrupted(spark, settings, NAME) == ["@champion -> 2"]
    assert registry.alias_version(NAME, "champion") == "2"
    tags = registry.client().get_model_version(NAME, "2").tags
    assert tags["champion.promote_reason"] == "killed before the alias moved"
    assert "completed an interrupted change: @champion" in capsys.readouterr().out
    assert registry.complete_interrupted(spark, settings, NAME) == []  # nothing left to complete
    models_flow.rollback(spark, settings, NAME, "back to the test world's champion")
    assert registry.alias_version(NAME, "champion") == "1"


def test_reproduce_retrains_on_the_recorded_delta_version_within_tolerance(spark, trained, capsys):
    settings, _, _, run_id = trained
    # The feature table moves on after the run; reproduce must time-travel back to the recorded version.
    features = table(spark, settings, GOLD_FEATURES)
    features.limit(10).write.format("delta").mode("append").save(GOLD_FEATURES.path(settings))
    assert reproduce(spark, settings, run_id, None) == 0
    out = capsys.readouterr().out
    assert "holdout_wape: run" in out and f"reproduced run {run_id}" in out and "version 0" in out


def test_an_mllib_model_trains_and_a_weak_one_is_refused_loudly(spark, trained, capsys):
    settings, _, _, _ = trained
    weak = from_dict(
        {
            **FAST,
            "training": {
                "estimator": "mllib_gbt",
                "cv_folds": 0,
                "params": {"mllib_gbt": {"maxIter": 1, "maxDepth": 1}},
            },
        }
    )
    assert train(spark, settings, weak, None, promote=True) == 0
    out = capsys.readouterr().out
    assert "WARNING: the model does NOT beat every baseline" in out
    latest = registry.alias_version(NAME, "challenger")
    version = registry.client().get_model_version(NAME, latest)
    assert version.tags["gate.passed"] == "false" and "does not beat baseline" in version.tags["gate.reasons"]
    assert registry.alias_version(NAME, "champion") == "1"
    assert _run(version.run_id).data.params["training.estimator"] == "mllib_gbt"
    assert _run(version.run_id).data.tags["serving.flavour"].startswith("none: ")  # MLlib's GBT: no booster

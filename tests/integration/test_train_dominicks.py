"""Driver sanity on real data: trained on all of Dominick's orange juice weeks, the model's own-price
effect is negative and its deal and feature-ad effects are positive (what-ifs on the holdout)."""

from __future__ import annotations

from datetime import date

import mlflow

from jobs.train import train
from lakehouse import registry, tracking
from lakehouse.config import REPO_ROOT
from lakehouse.ml_config import from_dict
from lakehouse.sources import dominicks
from tests.integration.helpers import build, ingest, ingest_references


def test_on_dominicks_price_hurts_and_deals_and_feature_ads_help(spark, settings, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "dom"
    dominicks.write_deliveries(dominicks.fetch_rda(REPO_ROOT / ".cache" / "debs"), out)
    ingest_references(spark, settings, {"outlets": out / "outlets", "products": out / "products"})
    ingest(spark, settings, "sales", *sorted((out / "sales").glob("week=*")))
    build(spark, settings, date(1990, 6, 11), date(1992, 10, 5))
    config = from_dict({"training": {"cv_folds": 0, "params": {"xgboost": {"n_estimators": 100}}}})
    tracking.configure(settings, config.registry.experiment, {})

    assert train(spark, settings, config, None, promote=True) == 0

    run_id = registry.client().get_model_version(config.registry.model_name, "1").run_id
    metrics = mlflow.MlflowClient().get_run(run_id).data.metrics
    assert metrics["effect_price_elasticity"] < -0.5
    assert metrics["effect_deal_lift"] > 0 and metrics["effect_feature_lift"] > 0
    assert metrics["holdout_wape"] < metrics["baseline_last_week_wape"]

"""Monitoring's pieces: the retraining decision, data-health grading, profiles and the stratified sample."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F

from lakehouse.contracts.model import Column, Contract, Rule
from lakehouse.monitoring.checks import DATA_DRIFT, FAIL, OK, QUALITY, WARN, Check
from lakehouse.monitoring.health import contract_checks, freshness_checks, volume_check
from lakehouse.monitoring.profile import profile, stratified_sample
from lakehouse.monitoring.retraining import decide, quality_checks
from lakehouse.policy import from_dict

CONFIG = from_dict({})
POLICY = CONFIG.retraining  # cooldown 4 weeks, drift share 0.3
W = date(2024, 6, 3)


def drift_share(value: float) -> Check:
    return Check(DATA_DRIFT, "drift_share", None, value, 0.3, FAIL if value > 0.3 else OK)


def quality(wape_status: str = OK, bias_status: str = OK) -> list[Check]:
    return [Check(QUALITY, "wape", None, 0.2, 0.25, wape_status), Check(QUALITY, "bias", None, 0.0, 0.15, bias_status)]


def test_drift_and_quality_causes_make_one_request_naming_both():
    decision = decide([drift_share(0.5), *quality(wape_status=FAIL)], [], W, POLICY)
    assert decision.causes == (DATA_DRIFT, QUALITY) and decision.requested == (DATA_DRIFT, QUALITY)
    assert decision.retrain and "RETRAIN" in decision.summary()
    assert decision.evidence == {"data_drift drift_share": 0.5, "quality wape": 0.2}


def test_nothing_crossed_means_no_request():
    decision = decide([drift_share(0.2), *quality()], [], W, POLICY)
    assert decision.causes == () and not decision.retrain and decision.summary().startswith("no retraining")


def test_a_cause_requested_within_the_cooldown_on_either_side_does_not_request_again():
    earlier = [(W - timedelta(weeks=3), [DATA_DRIFT])]
    decision = decide([drift_share(0.5), *quality()], earlier, W, POLICY)
    assert not decision.retrain and decision.cooldown == {DATA_DRIFT: W - timedelta(weeks=3)}
    later = [(W + timedelta(weeks=2), [DATA_DRIFT])]  # a backfilled older week is held back too
    assert not decide([drift_share(0.5)], later, W, POLICY).retrain
    # Four weeks apart is outside the window; another cause is not held back by this one.
    assert decide([drift_share(0.5)], [(W - timedelta(weeks=4), [DATA_DRIFT])], W, POLICY).retrain
    decision = decide([drift_share(0.5), *quality(bias_status=FAIL)], earlier, W, POLICY)
    assert decision.requested == (QUALITY,) and decision.retrain


def test_the_same_week_does_not_hold_itself_back():
    assert decide([drift_share(0.5)], [(W, [DATA_DRIFT])], W, POLICY).retrain  # a re-run decides the same


def test_failed_data_health_blocks_retraining():
    stale = Check("freshness", "lag_weeks", "gold_features", 1.0, 0.0, FAIL)
    decision = decide(
        [drift_share(0.5), stale, Check("volume", "relative_change", None, 0.3, 0.5, WARN)], [], W, POLICY
    )
    assert decision.causes == (DATA_DRIFT,) and decision.blocked_by == ("freshness:gold_features",)
    assert not decision.retrain and "BLOCKED" in decision.summary()


def test_freshness_compares_every_layer_with_the_latest_delivered_week():
    latest = {"bronze_sales": W + timedelta(weeks=1), "silver_sales": W + timedelta(weeks=1), "gold_features": W}
    checks = freshness_checks(latest, W + timedelta(weeks=1), W, 0)
    assert [(c.column_name, c.value, c.status) for c in checks] == [
        ("bronze_sales", 0.0, OK),
        ("silver_sales", 0.0, OK),
        ("gold_features", 1.0, FAIL),
    ]
    # A week nobody delivered fails at bronze; a table never written fails without a lag.
    checks = freshness_checks({"bronze_sales": W - timedelta(weeks=2), "gold_features": None}, W, W, 0)
    assert [(c.value, c.status) for c in checks] == [(2.0, FAIL), (None, FAIL)]


def test_volume_is_graded_against_the_median_of_the_weeks_before():
    counts = {W - timedelta(weeks=k): n for k, n in ((1, 100), (2, 110), (3, 90), (4, 1000))}
    assert volume_check({**counts, W: 104}, W, 8, 0.25, 0.5).status == OK
    assert volume_check({**counts, W: 70}, W, 8, 0.25, 0.5).status == WARN
    check = volume_check({**counts, W: 10}, W, 8, 0.25, 0.5)
    assert check.status == FAIL and check.value == pytest.approx(10 / 105 - 1)
    assert volume_check({W: 10}, W, 8, 0.25, 0.5).status == "info"  # nothing before it


def test_quality_fails_past_the_policy_limits():
    champion = {"wape": 0.2, "bias": 0.01}
    fine = {c.metric: c for c in quality_checks({"wape": 0.24, "bias": -0.1, "rows": 10.0}, champion, POLICY)}
    assert fine["wape"].status == OK and fine["wape"].threshold == pytest.approx(0.25)
    worse = {c.metric: c for c in quality_checks({"wape": 0.26, "bias": -0.2, "rows": 10.0}, champion, POLICY)}
    assert worse["wape"].status == FAIL and worse["bias"].status == FAIL


def test_profile_and_contract_checks_count_nulls_and_rule_violations(spark):
    contract = Contract(
        "t",
        "1.0.0",
        (Column("price", "number", "double", required=True), Column("share", "number", "double")),
        (Rule("share_out_of_range", "share BETWEEN 0 AND 1", "share"),),
        (),
    )
    current = spark.createDataFrame([(1.0, 0.5), (2.0, None), (None, 1.5), (4.0, None)], "price double, share double")
    reference = spark.createDataFrame([(1.0, 0.5), (2.0, 0.2)], "price double, share double")
    cur = profile(current, ["price"], current.columns, contract)
    ref = profile(reference, ["price"], reference.columns, contract)
    assert (cur.rows, cur.nulls, cur.violations) == (4, {"price": 1, "share": 2}, {"share_out_of_range": 1})
    assert cur.stats["price"]["mean"] == pytest.approx(7 / 3) and cur.stats["price"]["max"] == 4.0
    checks = {
        (c.check_name, c.column_name): c for c in contract_checks(cur, ref, contract, ["share"], CONFIG.monitoring)
    }
    assert checks["nulls", "price"].status == FAIL  # required: any null fails
    assert checks["nulls", "share"].status == FAIL and checks["nulls", "share"].value == 0.5  # +50 points
    assert checks["range", "share_out_of_range"].value == 0.25 and checks["range", "share_out_of_range"].status == FAIL


def test_the_stratified_sample_is_bounded_keeps_small_strata_and_is_stable(spark):
    rows = [(f"O{i}", "P1", date(2024, 1, 1), "big" if i < 5000 else "small") for i in range(5100)]
    df = spark.createDataFrame(rows, "outlet_id string, product_id string, week_start date, stratum string")
    sample = stratified_sample(df, ["stratum"], 500, "salt")
    counts = {r.stratum: r["count"] for r in sample.groupBy("stratum").count().collect()}
    assert 400 < counts["big"] < 600  # about its proportional share of 500
    assert counts["small"] >= 20  # 100 rows would get 10 proportionally; small strata keep about 30
    again = stratified_sample(df.repartition(7), ["stratum"], 500, "salt")
    assert sorted(r.outlet_id for r in again.collect()) == sorted(r.outlet_id for r in sample.collect())
    assert sample.filter(F.col("stratum") == "small").count() < 100

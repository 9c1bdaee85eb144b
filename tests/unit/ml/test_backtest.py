"""The back-test's blocks, outcomes (difference in differences or pre/post), predictions and gate rule."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from lakehouse.ml import backtest as B
from lakehouse.ml.gate import decide_backtest
from lakehouse.policy import from_dict

S = B.Settings(weeks=4, origins=2, baseline_weeks=3, min_controls=2, confidence=0.95)
START = date(2024, 1, 1)
SCHEMA = (
    "outlet_id string, product_id string, week_start date, brand string, units double, unit_price double, "
    "is_on_deal boolean, is_featured boolean, has_display boolean"
)


def test_blocks_cut_the_last_weeks_into_origins():
    weeks = [START + timedelta(weeks=i) for i in range(10)]
    assert B.blocks(weeks, S) == [(weeks[6], weeks[7]), (weeks[8], weeks[9])]
    assert B.blocks(weeks, B.Settings(3, 2, 3, 2, 0.95)) == [(weeks[7], weeks[8]), (weeks[9], weeks[9])]
    assert B.blocks(weeks, B.Settings(4, 0, 3, 2, 0.95)) == []


def _week(i: int) -> date:
    return START + timedelta(weeks=i)


def test_a_promotion_is_measured_against_outlets_that_did_not_run_it_else_its_own_weeks(spark):
    rows = []
    # Three weeks of history at 10 units and 2.00 everywhere; in week 3 O1 runs a deal at 1.60 and sells 30,
    # while O2 and O3 (no deal) sell 20 (the week's demand doubled). P2 has a chain-wide feature in week 3.
    for o in ("O1", "O2", "O3"):
        for i in range(3):
            rows += [(o, "P1", _week(i), "B", 10.0, 2.0, False, False, False)]
            rows += [(o, "P2", _week(i), "C", 10.0, 2.0, False, False, False)]
        deal = o == "O1"
        rows += [(o, "P1", _week(3), "B", 30.0 if deal else 20.0, 1.6 if deal else 2.0, deal, False, False)]
        rows += [(o, "P2", _week(3), "C", 25.0, 2.0, False, True, False)]
    out = {
        (r.outlet_id, r.product_id): r
        for r in B.promotion_outcomes(spark.createDataFrame(rows, SCHEMA), _week(3), _week(3), S).collect()
    }
    assert set(out) == {("O1", "P1"), ("O1", "P2"), ("O2", "P2"), ("O3", "P2")}
    did = out["O1", "P1"]
    assert (did.action, did.counterfactual, did.is_on_deal) == ("deal", "did", 1.0)
    assert did.realised == pytest.approx(math.log(30 / 10) - math.log(20 / 10))  # the week's doubling removed
    assert did.price_cut == pytest.approx(math.log(1.6 / 2.0))
    feature = out["O2", "P2"]  # every outlet featured it: no control, the item's own weeks
    assert (feature.counterfactual, feature.realised) == ("pre_post", pytest.approx(math.log(25 / 10)))


def test_the_prediction_applies_the_effects_of_earlier_weeks(spark):
    outcomes = spark.createDataFrame(
        [("B", 1.0, 1.0, 0.0, math.log(0.8), 1.0), ("C", 1.0, 0.0, 0.0, 0.0, 0.0)],
        "brand string, is_on_deal double, is_featured double, has_display double, price_cut double, dip double",
    )
    effects = [
        {"method": "dml", "segment": "ALL", "brand": "B", "effect": e, "estimate": v}
        for e, v in (("own_price", -2.0), ("deal", 0.2), ("feature", 0.4), ("post_promotion_dip", -0.1))
    ]
    [row] = B.with_predicted(outcomes, effects).collect()  # C has no own-price estimate: dropped
    assert row.predicted == pytest.approx(-2.0 * math.log(0.8) + 0.2 + 0.4 - 0.1)


def test_the_gate_refuses_a_back_test_slope_far_from_one():
    cfg = from_dict({"gate": {"max_calibration_error": 0.5}}).gate
    overall = {"brand": "ALL", "action": "ALL", "slope": 0.4, "slope_low": 0.3, "slope_high": 0.5, "promotions": 90}
    reasons, metrics = decide_backtest([overall], cfg)
    assert reasons == [
        "back-test: realised lift is 0.40 [0.30, 0.50] x the predicted one over 90 promotions (more than 0.5 from 1)"
    ]
    assert metrics == {"backtest_slope": 0.4, "backtest_promotions": 90.0}
    assert decide_backtest([{**overall, "slope": 1.3}], cfg)[0] == []
    assert decide_backtest([], cfg) == ([], {})

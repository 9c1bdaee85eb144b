"""Scoring rows, candidate actions, the business rules, the holdout hash and the coverage check."""

from __future__ import annotations

import math
from datetime import date

import pytest
from chispa import assert_df_equality

from lakehouse.features import Action, with_candidate_actions
from lakehouse.runtime import DataError
from lakehouse.scoring import Rules, coverage, holdout_fraction, in_holdout, recommend, with_planned_rows

SCHEMA = (
    "outlet_id string, product_id string, week_start date, units double, unit_price double, "
    "is_on_deal boolean, is_featured boolean, has_display boolean"
)
WEEK = date(2024, 1, 1)


def test_active_items_get_an_as_planned_row_at_their_regular_price(spark):
    w = [date(2024, 1, d) for d in (1, 8, 15, 22)]
    weekly = spark.createDataFrame(
        [
            ("O1", "P1", w[0], 10.0, 2.0, False, False, False),
            ("O1", "P1", w[1], 30.0, 1.5, True, True, False),  # latest week was a deal: not the regular price
            ("O1", "P2", w[0], 5.0, 3.0, False, False, True),  # active (within 2 weeks of the target)
        ],
        SCHEMA,
    )
    actual = with_planned_rows(weekly, w[2], active_weeks=2).filter(f"week_start = '{w[2]}'")
    expected = spark.createDataFrame(
        [("O1", "P1", w[2], None, 2.0, False, False, False), ("O1", "P2", w[2], None, 3.0, False, False, False)],
        SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    stale = with_planned_rows(weekly, w[3], active_weeks=1).filter(f"week_start = '{w[3]}'")
    assert stale.count() == 0  # nothing sold in the week before


def test_candidate_actions_multiply_rows_and_apply_each_plan(spark):
    schema = (
        "outlet_id string, unit_price double, log_price double, price_index double, price_vs_competitors double, "
        "is_on_deal boolean, is_featured boolean, has_display boolean"
    )
    rows = spark.createDataFrame([("O1", 2.0, math.log(2.0), 1.0, None, False, False, False)], schema)
    actions = [Action("as_planned"), Action("deal+feature", deal=True, feature=True), Action("price_-10", -0.10)]
    out = {r.action: r for r in with_candidate_actions(rows, actions).collect()}
    assert set(out) == {"as_planned", "deal+feature", "price_-10"}
    assert (out["as_planned"].unit_price, out["as_planned"].is_on_deal) == (2.0, False)
    deal_feature = out["deal+feature"]
    assert (deal_feature.is_on_deal, deal_feature.is_featured, deal_feature.has_display) == (True, True, False)
    assert out["price_-10"].unit_price == 1.8 and out["price_-10"].price_index == 0.9
    assert out["price_-10"].log_price == math.log(1.8) and out["price_-10"].price_vs_competitors is None


SCORED = (
    "outlet_id string, product_id string, week_start date, brand string, in_holdout boolean, unit_cost double, "
    "planned_unit_price double, action string, predicted_units double"
)
ACTIONS = [Action("as_planned"), Action("deal", deal=True), Action("price_-20", -0.2)]


def _scored(spark, items: dict[tuple[str, str], dict[str, tuple[float, float]]], holdout=(), cost=1.0):
    """items: (outlet, product) -> action (of ACTIONS) -> predicted units; price 2.0 as planned."""
    rows = [
        (o, p, WEEK, "B", o in holdout, cost, 2.0, a, units)
        for (o, p), actions in items.items()
        for a, units in actions.items()
    ]
    return spark.createDataFrame(rows, SCORED)


def test_rules_pick_the_largest_eligible_lift_and_cap_promotions_per_outlet(spark):
    items = {
        ("O1", "P1"): {"as_planned": 100.0, "deal": 130.0, "price_-20": 200.0},  # cut too deep
        ("O1", "P2"): {"as_planned": 100.0, "deal": 101.0, "price_-20": 90.0},  # lift < 2%
        ("O1", "P3"): {"as_planned": 10.0, "deal": 20.0, "price_-20": 30.0},  # +10 < +30
        ("O2", "P1"): {"as_planned": 50.0, "deal": 80.0, "price_-20": 60.0},  # holdout
    }
    rules = Rules(max_discount=0.10, max_promoted_per_outlet=1, min_lift_pct=2.0)
    out = {
        (r.outlet_id, r.product_id): r
        for r in recommend(_scored(spark, items, holdout=("O2",)), ACTIONS, rules).collect()
    }
    assert out["O1", "P1"].action == "deal" and out["O1", "P1"].lift_units == 30.0 and out["O1", "P1"].lift_pct == 30
    assert out["O1", "P1"].reason == "deal: +30.0 units (+30.0%) over the plan"
    assert out["O1", "P1"].incremental_margin == pytest.approx(30.0)  # (2 - 1) x 130 - (2 - 1) x 100
    assert out["O1", "P2"].action == "as_planned" and "no action lifts units by 2%" in out["O1", "P2"].reason
    assert out["O1", "P3"].intended_action == "as_planned" and "promotion slots" in out["O1", "P3"].reason
    held = out["O2", "P1"]
    assert (held.action, held.intended_action, held.lift_units) == ("as_planned", "deal", 0.0)
    assert held.reason.startswith("holdout outlet")
    assert {len(r.candidates) for r in out.values()} == {3}
    two_slots = Rules(max_discount=0.10, max_promoted_per_outlet=2, min_lift_pct=2.0)
    out = {
        (r.outlet_id, r.product_id): r.action for r in recommend(_scored(spark, items), ACTIONS, two_slots).collect()
    }
    assert (out["O1", "P1"], out["O1", "P3"], out["O2", "P1"]) == ("deal", "deal", "deal")


def test_no_allowed_action_keeps_every_plan(spark):
    items = {("O1", "P1"): {"as_planned": 100.0, "price_-20": 200.0}}
    actions = [Action("as_planned"), Action("price_-20", -0.2)]
    [row] = recommend(_scored(spark, items), actions, Rules(0.1, 3, 2.0)).collect()
    assert (row.action, row.intended_action) == ("as_planned", "as_planned") and row.reason.startswith("no action")


def test_margin_is_null_without_a_unit_cost(spark):
    items = {("O1", "P1"): {"as_planned": 100.0, "deal": 130.0, "price_-20": 90.0}}
    [row] = recommend(_scored(spark, items, cost=None), ACTIONS, Rules(0.1, 3, 2.0)).collect()
    assert row.action == "deal" and row.incremental_margin is None


def test_holdout_hash_is_stable_and_the_same_in_spark_and_python(spark):
    outlets = spark.createDataFrame([(f"OUT{i:06d}",) for i in range(400)], "outlet_id string")
    flagged = {r.outlet_id: r.h for r in outlets.select("outlet_id", in_holdout("exp-a", 0.3).alias("h")).collect()}
    assert flagged == {o: holdout_fraction(o, "exp-a") < 0.3 for o in flagged}
    assert 0.2 < sum(flagged.values()) / len(flagged) < 0.4
    other = {o: holdout_fraction(o, "exp-b") < 0.3 for o in flagged}
    assert other != flagged  # another experiment draws another holdout
    assert holdout_fraction("OUT000001", "exp-a") == holdout_fraction("OUT000001", "exp-a")


def test_coverage_fails_with_counts(spark):
    items = {("O1", "P1"): {"as_planned": 100.0, "deal": 130.0, "price_-20": 90.0}}
    good = recommend(_scored(spark, items), ACTIONS, Rules(0.1, 3, 2.0))
    assert coverage(good, expected_items=1)["rows"] == 1
    with pytest.raises(DataError, match="1 recommendations for 2 active"):
        coverage(good, expected_items=2)
    with pytest.raises(DataError, match="1 duplicate outlet x product rows"):
        coverage(good.unionByName(good), expected_items=2)
    bad = {("O1", "P1"): {"as_planned": 100.0, "deal": float("nan"), "price_-20": 90.0}}
    with pytest.raises(DataError, match="1 items with a null, NaN or negative prediction"):
        coverage(recommend(_scored(spark, bad), ACTIONS, Rules(0.1, 3, 2.0)), expected_items=1)

"""As-planned scoring rows (WIP, issue 4)."""

from __future__ import annotations

from datetime import date

from chispa import assert_df_equality

from lakehouse.scoring import with_planned_rows

SCHEMA = (
    "outlet_id string, product_id string, week_start date, units double, unit_price double, "
    "is_on_deal boolean, is_featured boolean, has_display boolean"
)


def test_active_items_get_an_as_planned_row_at_their_regular_price(spark):
    w = [date(2024, 1, d) for d in (1, 8, 15, 22)]
    weekly = spark.createDataFrame(
        [
            ("O1", "P1", w[0], 10.0, 2.0, False, False, False),
            ("O1", "P1", w[1], 30.0, 1.5, True, True, False),  # latest week was a deal: not the regular price
            ("O1", "P2", w[0], 5.0, 3.0, False, False, True),  # active (within 2 weeks of the target)
            ("O2", "P1", w[0], None, None, None, None, None),  # null row: no price to plan with
        ],
        SCHEMA,
    ).filter("outlet_id != 'O2'")
    actual = with_planned_rows(weekly, w[2], active_weeks=2).filter(f"week_start = '{w[2]}'")
    expected = spark.createDataFrame(
        [("O1", "P1", w[2], None, 2.0, False, False, False), ("O1", "P2", w[2], None, 3.0, False, False, False)],
        SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    stale = with_planned_rows(weekly, w[3], active_weeks=1).filter(f"week_start = '{w[3]}'")
    assert [(r.outlet_id, r.product_id) for r in stale.collect()] == []  # nothing sold in the week before


def test_candidate_actions_multiply_rows_and_apply_each_plan(spark):
    import math

    from lakehouse.features import Action, with_candidate_actions

    schema = (
        "outlet_id string, unit_price double, log_price double, price_index double, price_vs_competitors double, "
        "is_on_deal boolean, is_featured boolean, has_display boolean"
    )
    rows = spark.createDataFrame([("O1", 2.0, math.log(2.0), 1.0, None, False, False, False)], schema)
    actions = [Action("as_planned"), Action("deal+feature", deal=True, feature=True), Action("price_-10", -0.10)]
    out = {r.action: r for r in with_candidate_actions(rows, actions).collect()}
    assert set(out) == {"as_planned", "deal+feature", "price_-10"}
    assert (out["as_planned"].unit_price, out["as_planned"].is_on_deal) == (2.0, False)
    assert (out["deal+feature"].is_on_deal, out["deal+feature"].is_featured, out["deal+feature"].has_display) == (
        True,
        True,
        False,
    )
    assert out["price_-10"].unit_price == 1.8 and out["price_-10"].price_index == 0.9
    assert out["price_-10"].log_price == math.log(1.8) and out["price_-10"].price_vs_competitors is None

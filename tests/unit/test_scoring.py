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

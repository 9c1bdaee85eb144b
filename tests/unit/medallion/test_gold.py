"""Weekly facts and point-in-time-correct features."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from lakehouse.contracts.model import load_contract
from lakehouse.medallion.gold import (
    affected_feature_weeks,
    build_features,
    build_sales_weekly,
    feature_input_weeks,
    with_history,
)

W0 = date(2024, 1, 1)


def week(n: int) -> date:
    return W0 + timedelta(weeks=n)


def test_weekly_facts_weight_price_by_units(spark):
    silver = spark.createDataFrame(
        [
            ("O1", "P1", date(2024, 1, 1), week(0), 1.0, 2.0, True, False, False),
            ("O1", "P1", date(2024, 1, 3), week(0), 3.0, 4.0, False, False, True),
            ("O1", "P2", date(2024, 1, 3), week(0), 0.0, 5.0, False, None, False),  # nothing sold: mean price
        ],
        "outlet_id string, product_id string, sale_date date, week_start date, units double, unit_price double, "
        "is_on_deal boolean, is_featured boolean, has_display boolean",
    )
    actual = build_sales_weekly(silver, load_contract("gold_sales_weekly"))
    expected = spark.createDataFrame(
        [
            ("O1", "P1", week(0), 4.0, 14.0, 3.5, True, False, True, 2),
            ("O1", "P2", week(0), 0.0, 0.0, 5.0, False, False, False, 1),
        ],
        actual.schema,
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True)


def _weekly(spark, units_by_week: dict[int, float | None], product: str = "P1"):
    rows = [("O1", product, week(w), u, 2.0, w % 3 == 0) for w, u in units_by_week.items()]
    return spark.createDataFrame(
        rows,
        "outlet_id string, product_id string, week_start date, units double, unit_price double, is_on_deal boolean",
    )


def test_lags_use_calendar_weeks_so_a_gap_is_null(spark):
    hist = _weekly(spark, {0: 10.0, 1: 20.0, 3: 40.0, 4: None}).transform(with_history)
    rows = {r["week_start"]: r for r in hist.collect()}
    assert rows[week(3)]["units_lag_1"] is None  # week 2 had no sales record
    assert rows[week(3)]["units_lag_2"] == 20.0
    assert rows[week(3)]["units_mean_4w"] == pytest.approx(15.0)
    assert rows[week(1)]["units_next_week"] is None and rows[week(0)]["units_next_week"] == 20.0
    assert rows[week(0)]["units_lag_1"] is None and rows[week(0)]["units_mean_4w"] is None


def test_features_of_a_week_do_not_see_that_week_or_later(spark):
    """Changing units of weeks >= t changes no feature of week t (only its labels)."""
    outlets = spark.createDataFrame(
        [("O1", "retail", "north", 10.0)], "outlet_id string, channel string, region string, income double"
    )
    products = spark.createDataFrame(
        [("P1", "B", "M", "juice", 64.0)],
        "product_id string, brand string, manufacturer string, category string, pack_size double",
    )
    contract = load_contract("gold_features")
    base = {w: float(10 + w) for w in range(60)}
    changed = {w: (u if w < 55 else u * 100) for w, u in base.items()}
    a = build_features(_weekly(spark, base), outlets, products, contract)
    b = build_features(_weekly(spark, changed), outlets, products, contract)
    labels = ["units", "units_next_week"]
    at_55 = [df.filter(F.col("week_start") == week(55)).drop(*labels) for df in (a, b)]
    assert_approx_df_equality(at_55[0], at_55[1], 1e-9)
    row = a.filter(F.col("week_start") == week(54)).first()
    assert row["units_lag_52"] == 12.0 and row["units_next_week"] == 65.0


def test_competitor_features_exclude_own_product(spark):
    rows = [
        ("O1", p, week(0), 1.0, price, deal)
        for p, price, deal in (("P1", 2.0, True), ("P2", 4.0, False), ("P3", 6.0, True))
    ]
    weekly = spark.createDataFrame(
        rows,
        "outlet_id string, product_id string, week_start date, units double, unit_price double, is_on_deal boolean",
    )
    products = spark.createDataFrame(
        [(p, "B", "M", "juice") for p in ("P1", "P2", "P3")],
        "product_id string, brand string, manufacturer string, category string",
    )
    outlets = spark.createDataFrame([("O1", "retail", "north")], "outlet_id string, channel string, region string")
    features = {
        r["product_id"]: r for r in build_features(weekly, outlets, products, load_contract("gold_features")).collect()
    }
    assert features["P1"]["competitor_price_mean"] == pytest.approx(5.0)
    assert features["P1"]["competitor_price_min"] == pytest.approx(4.0)
    assert features["P1"]["price_index"] == pytest.approx(0.5)
    assert features["P2"]["competitor_deal_share"] == pytest.approx(1.0)
    assert features["P3"]["competitor_deal_share"] == pytest.approx(0.5)


def test_affected_weeks_cover_every_dependent_feature_week():
    (lo, hi), (lo52, hi52) = affected_feature_weeks(week(10), week(12))
    assert (lo, hi) == (week(9), week(16)) and (lo52, hi52) == (week(62), week(64))
    assert feature_input_weeks(week(10), week(12)) == [
        (week(-43), week(-36)),
        (week(5), week(17)),
        (week(10), week(12)),
        (week(58), week(65)),
    ]

"""The what-if's twins of scoring's Spark code (an action applied to a row, an outlet's segments) on the same rows,
and its interval from the effects as the recommendations compute it."""

from __future__ import annotations

import math
from datetime import date
from statistics import NormalDist

import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from lakehouse.ml.model_inputs import with_action
from lakehouse.policy import Action
from lakehouse.scoring.lifts import EffectBook, lift
from lakehouse.scoring.recommend import segment_key
from lakehouse.serving import what_if
from lakehouse.serving.what_if import Proposal, WhatIfBook
from tests.unit.scoring.test_scoring import _book, _effect

SCHEMA = (
    "outlet_id string, brand string, channel string, income double, unit_price double, log_price double, "
    "price_index double, price_vs_competitors double, is_on_deal boolean, is_featured boolean, has_display boolean"
)
ROWS = [
    ("o1", "B", "retail", 5.0, 2.0, math.log(2.0), 0.9, 1.1, False, False, False),
    ("o2", "B", "digital", 10.0, 3.5, math.log(3.5), 1.2, None, False, False, False),  # no rival price; at the split
    ("o3", "B", None, None, 1.0, 0.0, 1.0, 0.8, False, False, False),  # null attributes: no segment
    ("o4", "B", "unseen", 12.0, 1.0, 0.0, 1.0, 0.8, True, False, False),  # a channel the effects never saw
]


def _frame(df) -> pd.DataFrame:
    return pd.DataFrame([r.asDict() for r in df.orderBy("outlet_id").collect()])


def _records(df) -> list[dict]:
    return [r.asDict() for r in df.orderBy("outlet_id").collect()]


def _close(row: dict) -> dict:
    """The row with its floats compared to 1e-15 relative (for ==), the rest exactly."""
    return {k: pytest.approx(v, rel=1e-15) if isinstance(v, float) else v for k, v in row.items()}


@pytest.mark.parametrize(
    ("action", "proposal"),
    [
        (Action("cut", -0.1, deal=True), Proposal(price_change=-0.1, deal=True)),
        (Action("display", display=True, deal=False), Proposal(display=True, deal=False)),
        (Action("none"), Proposal()),
    ],
)
def test_a_proposal_changes_a_row_as_the_scoring_action_does(spark, action, proposal):
    rows = spark.createDataFrame(ROWS, SCHEMA)
    expected = _records(with_action(rows, action))
    actual = [what_if.with_proposal(row, proposal) for row in _records(rows)]
    assert actual == [_close(row) for row in expected]


def test_an_absolute_price_is_the_same_proposal_as_its_relative_change(spark):
    (planned,) = _records(spark.createDataFrame(ROWS[:1], SCHEMA))
    by_price = what_if.with_proposal(planned, Proposal(unit_price=1.5))
    by_change = what_if.with_proposal(planned, Proposal(price_change=-0.25))
    assert by_price == _close(by_change)


def test_the_flavours_columns_are_floats_for_numbers_and_flags_and_nan_for_null():
    schema = pa.schema([("outlet_id", pa.string()), ("unit_price", pa.float64()), ("is_on_deal", pa.bool_())])
    columns = what_if.columns_of([{"outlet_id": "o1", "unit_price": None, "is_on_deal": True}], schema)
    assert columns["outlet_id"].tolist() == ["o1"] and columns["is_on_deal"].tolist() == [1.0]
    assert columns["unit_price"].dtype == "float64" and math.isnan(columns["unit_price"][0])


def test_an_outlets_segments_are_those_scoring_keys_it_by(spark):
    book = EffectBook.of(
        "7",
        [
            _effect("B", "own_price", -2.0, 0.1),
            _effect("B", "own_price", -3.0, 0.2, segment="income:low", split=10.0),
            _effect("B", "own_price", -1.0, 0.2, segment="income:high", split=10.0),
            _effect("B", "own_price", -2.5, 0.2, segment="channel=retail"),
            _effect("B", "own_price", -1.5, 0.2, segment="channel=digital"),
        ],
    )
    rows = spark.createDataFrame(ROWS, SCHEMA).withColumn("_key", segment_key(book))
    expected = {r.outlet_id: tuple(r._key.split("|")) for r in rows.collect()}
    actual = {r["outlet_id"]: what_if.segments(book, r) for r in _frame(rows.drop("_key")).to_dict("records")}
    assert actual == expected
    assert expected["o2"] == ("ALL", "channel=digital", "income:low") and expected["o3"] == ("ALL",)


class _Planned:
    """A stand-in model that forecasts 100 units as planned and 130 on deal (the interval reads no model)."""

    def predict_columns(self, columns: dict) -> list[float]:
        return [130.0 if deal else 100.0 for deal in columns["is_on_deal"]]


def test_the_interval_is_the_effects_lift_of_the_proposal_as_recommendations_compute_it(spark):
    rows = spark.createDataFrame(ROWS[:1], SCHEMA).select("*", F.lit("p1").alias("product_id"))
    book = WhatIfBook.of(date(2024, 3, 4), pa.Table.from_pandas(_frame(rows)), _Planned(), "7", _book(), 0.95)
    got = what_if.answer(book, "o1", "p1", Proposal(price_change=-0.1, deal=True))
    assert got is not None
    assert (got["planned_units"], got["predicted_units"], got["lift_units"]) == (100.0, 130.0, 30.0)
    d = math.log(0.9)
    terms = _book().terms("B", ("ALL",), Action("x", -0.1, deal=True), True)
    assert not isinstance(terms, str)
    log_lift, low, high = lift(terms, d, NormalDist().inv_cdf(0.975))
    interval = got["interval"]
    assert interval["available"] and interval["explanation"] == terms.text
    assert interval["lift_pct"] == pytest.approx(100 * math.expm1(log_lift))
    assert (interval["lift_pct_low"], interval["lift_pct_high"]) == pytest.approx(
        (100 * math.expm1(low), 100 * math.expm1(high))
    )
    assert (interval["lift_units_low"], interval["lift_units_high"]) == pytest.approx(
        (100 * math.expm1(low), 100 * math.expm1(high))
    )
    unsupported = what_if.answer(book, "o1", "p1", Proposal(display=True))
    assert unsupported is not None and not unsupported["interval"]["available"]
    assert unsupported["interval"]["reason"].startswith("no estimated effect of display for B")
    assert what_if.answer(book, "o1", "p2", Proposal()) is None

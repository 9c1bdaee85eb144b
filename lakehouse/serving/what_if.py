"""Online what-if: an outlet x product of the served week under a proposed price and promotions, scored now.

The features are the row the champion scored as planned in batch (gold_planned_features); the model is
the champion's serving flavour (`lakehouse.ml.serving_flavour`: the pipeline's own fitted stages and its
booster, no Spark). A proposal changes the row as scoring's actions do (`lakehouse.ml.model_inputs`):
the own price and the price ratios that move with it (price_index, price_vs_competitors; log_price is
its log), and the promotion flags it names; lags, rolling means and the rivals' prices describe other
weeks and products and stay. Both rows go through the flavour, so the as-planned answer is the batch
forecast (tested to 1e-6) and the proposal's differs only by what the proposal changed.

The interval is the one the recommendations carry (`lakehouse.scoring.lifts`): the champion's causal
effects (gold_effects, double ML) of the proposal's log price change and promotions for the brand, in the
outlet's narrowest estimated segment, with the delta method's interval at `effects.confidence`, applied
to the as-planned forecast. It carries the effects' uncertainty, not the forecast's; where the effects do
not cover the proposal (an action the history does not support), there is no interval and the answer
says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.policy import Action
from lakehouse.scoring.lifts import ALL, EffectBook, lift
from lakehouse.serving.snapshot import compact, outlet_index

# The scoring action's rule (`model_inputs._with_plan`): columns that scale with the own price.
PRICE_SCALED = ("unit_price", "price_index", "price_vs_competitors")
FLAGS = {"deal": "is_on_deal", "feature": "is_featured", "display": "has_display"}
# gold_planned_features' lineage, the same on every row of a week: not held in memory per row.
LINEAGE_COLUMNS = ("model_name", "model_version", "model_run_id", "features_version", "inputs")


@dataclass(frozen=True)
class Proposal:
    """A proposed plan: a price (absolute or relative; None keeps the planned one) and promotion switches."""

    unit_price: float | None = None
    price_change: float | None = None
    deal: bool | None = None
    feature: bool | None = None
    display: bool | None = None


@dataclass(frozen=True)
class WhatIfBook:
    """What a snapshot needs for what-ifs: the week's planned rows, the champion's flavour and effects."""

    week: date
    rows: pa.Table  # compacted (`snapshot.compact`); a row is decoded (`to_pylist`) when answered
    schema: pa.Schema  # the rows as read: which columns the flavour gets as numbers
    # outlet_id -> its row numbers in `rows` (an outlet's few products are then searched: a dict of every
    # outlet x product's key would hold 2M tuples at 100k outlets x 20 products, about 0.5 GB)
    outlets: Mapping[str, np.ndarray]
    model: Any  # the champion's serving flavour (`serving_flavour.PipelineStages`: `predict_columns`)
    model_version: str
    effects: EffectBook
    confidence: float

    @classmethod
    def of(
        cls, week: date, rows: pa.Table, model: Any, model_version: str, effects: EffectBook, confidence: float
    ) -> WhatIfBook:
        return cls(week, compact(rows), rows.schema, outlet_index(rows), model, model_version, effects, confidence)

    def row_number(self, outlet_id: str, product_id: str) -> int | None:
        """Where the outlet x product's planned row is in `rows`, if the week has it."""
        numbers = self.outlets.get(outlet_id)
        if numbers is None:
            return None
        products = self.rows.column("product_id").take(numbers).to_pylist()
        return int(numbers[products.index(product_id)]) if product_id in products else None


def proposal_of(request: Any) -> Proposal:
    """The proposal of a request body (`schemas.WhatIfRequest`)."""
    return Proposal(request.unit_price, request.price_change, request.deal, request.feature, request.display)


def with_proposal(planned: Mapping[str, Any], proposal: Proposal) -> dict[str, Any]:
    """The planned row under the proposal (the same columns; unchanged ones as they were, null stays null)."""
    factor = 1.0 + (proposal.price_change or 0.0)
    if proposal.unit_price is not None:
        factor = proposal.unit_price / planned["unit_price"]
    row = dict(planned)
    if proposal.unit_price is not None or proposal.price_change:
        for column in PRICE_SCALED:
            row[column] = None if planned[column] is None else planned[column] * factor
        row["log_price"] = math.log(row["unit_price"])
    for name, column in FLAGS.items():
        value = getattr(proposal, name)
        if value is not None:
            row[column] = value
    return row


def columns_of(rows: list[dict[str, Any]], schema: pa.Schema) -> dict[str, np.ndarray]:
    """A few rows as the flavour's `predict_columns` takes them: numbers and flags as float64 (null: NaN),
    anything else as objects."""
    columns = {}
    for field in schema:
        values = [row[field.name] for row in rows]
        kind = field.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            columns[field.name] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            columns[field.name] = np.array(values, dtype=object)
    return columns


def segments(book: EffectBook, row: Mapping[str, Any]) -> tuple[str, ...]:
    """The outlet's segments as the effects name them (`recommend.segment_key` in Spark)."""
    keys = [ALL]
    for column in sorted(book.values):
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        split = book.splits.get(column)
        if split is None:
            segment = f"{column}={value}"
        else:
            segment = f"{column}:{'low' if value <= split else 'high'}"
        if segment in book.values[column]:
            keys.append(segment)
    return tuple(keys)


def interval(book: WhatIfBook, row: Mapping[str, Any], log_price_change: float, flags_on: dict[str, bool]) -> dict:
    """The effects' lift of the proposal for the row's brand and outlet, with its interval (or why none)."""
    action = Action("what-if", math.expm1(log_price_change), **{k: v or None for k, v in flags_on.items()})
    terms = book.effects.terms(row["brand"], segments(book.effects, row), action, log_price_change != 0.0)
    if isinstance(terms, str):
        return {"basis": "effects", "available": False, "reason": terms}
    z = NormalDist().inv_cdf(0.5 + book.confidence / 2)
    log_lift, low, high = lift(terms, log_price_change, z)
    planned = float(row["planned_units"])
    return {
        "basis": "effects",
        "available": True,
        "reason": None,
        "confidence": book.confidence,
        "lift_pct": 100 * math.expm1(log_lift),
        "lift_pct_low": 100 * math.expm1(low),
        "lift_pct_high": 100 * math.expm1(high),
        "lift_units_low": planned * math.expm1(low),
        "lift_units_high": planned * math.expm1(high),
        "explanation": terms.text,
    }


def answer(book: WhatIfBook, outlet_id: str, product_id: str, proposal: Proposal) -> dict | None:
    """The as-planned and proposed forecasts, the lift and its interval; None when the week has no such row."""
    at = book.row_number(outlet_id, product_id)
    if at is None:
        return None
    row = book.rows.slice(at, 1).to_pylist()[0]
    proposed = with_proposal(row, proposal)
    both = columns_of([row, proposed], book.schema)
    planned_units, predicted_units = (float(v) for v in book.model.predict_columns(both))
    lift_units = predicted_units - planned_units
    log_price_change = math.log(float(proposed["unit_price"]) / float(row["unit_price"]))
    flags_on = {name: bool(proposed[column]) and not bool(row[column]) for name, column in FLAGS.items()}
    return {
        "outlet_id": outlet_id,
        "product_id": product_id,
        "brand": row["brand"],
        "week": book.week,
        "model_version": book.model_version,
        "planned_unit_price": float(row["unit_price"]),
        "unit_price": float(proposed["unit_price"]),
        "is_on_deal": bool(proposed["is_on_deal"]),
        "is_featured": bool(proposed["is_featured"]),
        "has_display": bool(proposed["has_display"]),
        "planned_units": planned_units,
        "predicted_units": predicted_units,
        "lift_units": lift_units,
        "lift_pct": 100 * lift_units / planned_units if planned_units > 0 else None,
        "interval": interval(book, {**row, "planned_units": planned_units}, log_price_change, flags_on),
    }

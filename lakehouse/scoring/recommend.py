"""The recommendation per outlet x product: every candidate action priced, its lift from the effects, one chosen.

Per scoring row (its as-planned forecast `planned_units`, regular price and typical promotion cuts) and
candidate action:

- the price: a price action's configured change; a promotion's typical cut from the history
  (`lakehouse.scoring.prices`), capped at `max_discount`;
- gross lift with its interval from the effects (`lakehouse.scoring.lifts`);
- net lift: gross, plus the units the rival brands at the outlet lose (their cross-price elasticities
  to this price; a second-order expansion of exp(g d) - 1, within 1e-4 of it for cuts up to 30%), plus
  next week's post-promotion dip of a deal or feature ad. Its interval treats the three as independent;
- incremental margin: (price - cost) x units - (planned price - cost) x planned units, with the unit cost,
  or an assumed margin where it is unknown (labelled in `margin_basis`).

An action qualifies when it is offered (supported, priced, within `max_discount`), the lower bound of
its gross lift clears `min_lift_pct`, its net lift is positive, its promise is no larger than the upper
bound of what the same brand's promotions of that kind realised in the champion's back-test
(`gold_backtest`, where it has an interval) and, ranking by margin, it earns margin.
The best qualifying action by net lift (or margin) is the intended one; only the outlet's
`max_promoted_per_outlet` largest keep theirs. Holdout outlets get as planned and keep the intended action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.errors import DataError
from lakehouse.ml.model_inputs import KEYS
from lakehouse.policy import AS_PLANNED, Action
from lakehouse.scoring.lifts import ALL, EffectBook, Terms
from lakehouse.scoring.prices import NONE, state_of
from lakehouse.scoring.report import LIFT_COLUMNS

PREDICTION = "predicted_units"
UNITS, MARGIN = "units", "margin"


@dataclass(frozen=True)
class Rules:
    """Business rules for choosing an action (from the `scoring` config section)."""

    max_discount: float
    max_promoted_per_outlet: int
    min_lift_pct: float
    rank_by: str = UNITS
    assumed_margin: float = 0.3
    confidence: float = 0.95


def promotion_states(actions: list[Action]) -> list[str]:
    """The promotion states of the actions priced from the history (no configured price change)."""
    return sorted({state_of(a) for a in actions if not a.price_change and state_of(a) != NONE})


def segment_key(book: EffectBook) -> Column:
    """The outlet's segments as the effects name them, joined by '|' (ALL first). A null attribute, or a value
    the effects never saw (a new channel), is no segment: the outlet falls back to the wider ones."""
    parts = [F.lit(ALL)]
    for column in sorted(book.values):
        split = book.splits.get(column)
        if split is None:
            segment = F.concat(F.lit(f"{column}="), F.col(column).cast("string"))
        else:
            side = F.when(F.col(column) <= F.lit(split), "low").when(F.col(column) > F.lit(split), "high")
            segment = F.concat(F.lit(f"{column}:"), side)
        parts.append(F.when(segment.isin(*sorted(book.values[column])), segment))
    return F.concat_ws("|", *parts)


def _moves_price(action: Action) -> bool:
    return bool(action.price_change) or state_of(action) != NONE


def terms_df(spark, book: EffectBook, actions: list[Action], brands: list[str]) -> DataFrame:
    """Per brand and segment key, per action i: the terms of its lift (`_ok_i` ... `_text_i`) or why not."""
    rows = []
    for brand in brands:
        for segments in book.segment_keys():
            row: list = [brand, "|".join(segments)]
            for a in actions:
                t = book.terms(brand, segments, a, _moves_price(a)) if a.name != AS_PLANNED else "changes nothing"
                realised = book.realised.get((brand, state_of(a)))
                bound = [realised[2] if realised else None, book.realised_text(brand, state_of(a))]
                if isinstance(t, Terms):
                    row += [True, t.segment, t.own, t.flags, t.v2, t.v1, t.v0, t.dip, t.dip_variance, t.text, None]
                else:
                    row += [False, None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None, t]
                row += bound
            rows.append(tuple(row))
    fields = ["brand string", "_segment_key string"]
    for i in range(len(actions)):
        fields += [
            f"_ok_{i} boolean",
            f"_seg_{i} string",
            f"_own_{i} double",
            f"_flags_{i} double",
            f"_v2_{i} double",
            f"_v1_{i} double",
            f"_v0_{i} double",
            f"_dip_{i} double",
            f"_dipv_{i} double",
            f"_text_{i} string",
            f"_why_{i} string",
            f"_bt_high_{i} double",
            f"_bt_text_{i} string",
        ]
    return spark.createDataFrame(rows, ", ".join(fields))


def cross_df(rows_df: DataFrame, book: EffectBook) -> DataFrame:
    """Per outlet and brand: sums over the rival brands' planned units U and elasticities g to this brand's
    price, `_c1` = sum U g, `_c2` = sum U g^2, `_cv` = sum U^2 var(g)."""
    spark = rows_df.sparkSession
    rivals = []
    for rival, by_segment in book.estimates.items():
        for segments in book.segment_keys():
            for brand in {e.split(":", 1)[1] for s in by_segment.values() for e in s if e.startswith("cross_price:")}:
                g = book.cross(rival, segments, brand)
                if g is not None:
                    rivals.append((rival, "|".join(segments), brand, g.value, g.variance))
    gammas = spark.createDataFrame(rivals, "_rival string, _segment_key string, brand string, _g double, _gv double")
    planned = rows_df.groupBy("outlet_id", F.col("brand").alias("_rival"), "_segment_key").agg(
        F.sum("planned_units").alias("_u")
    )
    return (
        planned.join(F.broadcast(gammas), ["_rival", "_segment_key"])
        .groupBy("outlet_id", "brand")
        .agg(
            F.sum(F.col("_u") * F.col("_g")).alias("_c1"),
            F.sum(F.col("_u") * F.col("_g") * F.col("_g")).alias("_c2"),
            F.sum(F.col("_u") * F.col("_u") * F.col("_gv")).alias("_cv"),
        )
    )


def _candidate(i: int, action: Action, states: list[str], rules: Rules, z: float) -> Column:
    """Candidate i's struct: price, lifts with intervals, margin, whether it is offered and why not."""
    c = lambda name: F.col(f"_{name}_{i}")  # noqa: E731  (the action's terms columns)
    planned, planned_price = F.col("planned_units"), F.col("planned_unit_price")
    state = state_of(action)
    if action.name == AS_PLANNED:
        d, price_note, priced = F.lit(0.0), F.lit("the plan"), F.lit(True)
    elif action.price_change:
        d = F.lit(math.log1p(action.price_change))
        price_note = F.lit(f"{action.price_change:+.0%} price")
        priced = F.lit(-action.price_change <= rules.max_discount + 1e-9)
    else:
        j = states.index(state) if state in states else None
        cut = F.col(f"cut_{j}") if j is not None else F.lit(None).cast("double")
        used = F.least(cut, F.lit(rules.max_discount))
        d = F.log(F.lit(1.0) - used)
        capped = F.when(cut > F.lit(rules.max_discount), F.lit(f", capped at max_discount {rules.max_discount:.0%}"))
        where = F.col(f"cut_from_{j}") if j is not None else F.lit(None)
        price_note = F.concat(
            F.format_string(f"typical {state} cut %.0f%% (", cut * 100),
            where,
            F.lit(")"),
            F.coalesce(capped, F.lit("")),
        )
        priced = cut.isNotNull()
    offered = F.coalesce(c("ok"), F.lit(False)) & priced if action.name != AS_PLANNED else F.lit(False)
    log_lift = c("own") * d + c("flags")
    sd = F.sqrt(F.greatest(c("v2") * d * d + c("v1") * d + c("v0"), F.lit(0.0)))
    units = planned * F.exp(log_lift)
    lift_units = units - planned
    promoted = action.deal or action.feature
    cross = F.coalesce(F.col("_c1") * d + F.col("_c2") * d * d / 2, F.lit(0.0))
    dip = planned * (F.exp(c("dip")) - 1) if promoted else F.lit(0.0)
    net = lift_units + cross + dip
    net_sd = F.sqrt(
        (units * sd) ** 2
        + F.coalesce(F.col("_cv"), F.lit(0.0)) * d * d
        + ((planned * F.exp(c("dip"))) ** 2 * c("dipv") if promoted else F.lit(0.0))
    )
    price = planned_price * F.exp(d)
    cost = F.coalesce(F.col("unit_cost"), planned_price * F.lit(1.0 - rules.assumed_margin))
    margin = (price - cost) * units - (planned_price - cost) * planned
    pct = lambda x: F.lit(100.0) * (F.exp(x) - F.lit(1.0))  # noqa: E731
    lift_low = pct(log_lift - z * sd)
    if action.name == AS_PLANNED:
        why_not = F.lit("the plan")
    else:
        unpriced = (
            F.lit(f"cuts the price {-action.price_change:.0%}, beyond max_discount {rules.max_discount:.0%}")
            if action.price_change
            else F.lit(f"no {state} week of this brand in the history to price it from")
        )
        why_not = (
            F.when(~F.coalesce(c("ok"), F.lit(False)), F.coalesce(c("why"), F.lit("no effects for this brand")))
            .when(~priced, unpriced)
            .when(
                lift_low < F.lit(rules.min_lift_pct),
                F.format_string(f"lift's lower bound %+.1f%% is below min_lift_pct {rules.min_lift_pct:g}%%", lift_low),
            )
            .when(net <= 0, F.format_string("net lift %+.1f units after rivals and the dip", net))
            .when(
                pct(log_lift) > c("bt_high"),
                F.concat(F.format_string("promises %+.1f%% where ", pct(log_lift)), c("bt_text")),
            )
        )
        if rules.rank_by == MARGIN:
            why_not = why_not.when(margin <= 0, F.format_string("loses margin (%.2f)", margin))
    zero = F.lit(0.0)
    return F.struct(
        F.lit(action.name).alias("action"),
        (F.exp(d) - 1).alias("price_change"),
        price.alias("unit_price"),
        (units if action.name != AS_PLANNED else planned).alias(PREDICTION),
        (lift_units if action.name != AS_PLANNED else zero).alias("lift_units"),
        (pct(log_lift) if action.name != AS_PLANNED else zero).alias("lift_pct"),
        (lift_low if action.name != AS_PLANNED else zero).alias("lift_pct_low"),
        (pct(log_lift + z * sd) if action.name != AS_PLANNED else zero).alias("lift_pct_high"),
        (net if action.name != AS_PLANNED else zero).alias("net_lift_units"),
        (net - z * net_sd if action.name != AS_PLANNED else zero).alias("net_lift_units_low"),
        (net + z * net_sd if action.name != AS_PLANNED else zero).alias("net_lift_units_high"),
        (cross if action.name != AS_PLANNED else zero).alias("cross_units"),
        (dip if action.name != AS_PLANNED else zero).alias("dip_units"),
        (margin if action.name != AS_PLANNED else zero).alias("incremental_margin"),
        offered.alias("offered"),
        why_not.alias("why_not"),
        F.when(
            offered,
            F.concat(
                F.lit(action.name + " at "),
                F.format_string("%.2f", price),
                F.lit(" ("),
                price_note,
                F.lit("): "),
                c("text"),
            ),
        ).alias("explanation"),
    )


def recommend(rows_df: DataFrame, book: EffectBook, actions: list[Action], rules: Rules) -> DataFrame:
    """One row per outlet x product x week, from its as-planned forecast and the effects.

    `rows_df` has the keys, `brand`, `in_holdout`, `unit_cost` (null when unknown), `planned_unit_price`,
    `planned_units`, the segment columns and per promotion state i (`promotion_states`) `cut_<i>` and
    `cut_from_<i>` (`lakehouse.scoring.prices.with_typical_cuts`).
    """
    if not 0.0 <= rules.assumed_margin < 1.0 or rules.rank_by not in (UNITS, MARGIN):
        raise DataError(f"scoring.rank_by must be units or margin and assumed_margin in [0, 1): {rules}")
    z = NormalDist().inv_cdf(0.5 + rules.confidence / 2)
    states = promotion_states(actions)
    names = [a.name for a in actions]
    spark = rows_df.sparkSession
    brands = sorted({r["brand"] for r in rows_df.select("brand").distinct().collect() if r["brand"] is not None})
    keyed = rows_df.withColumn("_segment_key", segment_key(book))
    priced = keyed.join(F.broadcast(terms_df(spark, book, actions, brands)), ["brand", "_segment_key"], "left").join(
        cross_df(keyed, book), ["outlet_id", "brand"], "left"
    )
    with_candidates = priced.withColumn(
        "candidates", F.array(*[_candidate(i, a, states, rules, z) for i, a in enumerate(actions)])
    )
    key = "incremental_margin" if rules.rank_by == MARGIN else "net_lift_units"

    def ranked(i: int, only_qualifying: bool, skip: Column | None = None) -> Column:
        c = F.col("candidates")[i]
        ok = c["offered"] & (c["why_not"].isNull() if only_qualifying else F.lit(True))
        if skip is not None:
            ok = ok & (skip.isNull() | (skip != F.lit(i)))
        return F.when(ok, F.struct(c[key].alias("k"), F.lit(i).alias("i")))

    others = [i for i, a in enumerate(actions) if a.name != AS_PLANNED]

    def greatest(cols: list[Column]) -> Column:
        if not cols:
            return F.lit(None).cast("struct<k:double,i:int>")
        return cols[0] if len(cols) == 1 else F.greatest(*cols)

    best = greatest([ranked(i, True) for i in others])
    with_best = with_candidates.withColumn("_b", best)
    runner = greatest([ranked(i, False, F.col("_b.i")) for i in others])
    per_outlet = Window.partitionBy("outlet_id", "week_start").orderBy(F.desc("_b.k"), "product_id")
    chosen_df = (
        with_best.withColumn("_r", runner)
        .withColumn("_best", F.when(F.col("_b").isNotNull(), F.get(F.col("candidates"), F.col("_b.i"))))
        .withColumn("_runner", F.when(F.col("_r").isNotNull(), F.get(F.col("candidates"), F.col("_r.i"))))
        .withColumn("_planned", F.col("candidates")[names.index(AS_PLANNED)])
        .withColumn("_rank", F.when(F.col("_best").isNotNull(), F.row_number().over(per_outlet)))
    )
    within_limit = F.col("_rank") <= F.lit(rules.max_promoted_per_outlet)
    intended = F.when(F.col("_best").isNotNull() & within_limit, F.col("_best")).otherwise(F.col("_planned"))
    chosen = F.when(F.col("in_holdout"), F.col("_planned")).otherwise(F.col("_intended"))
    unit = "incremental margin" if rules.rank_by == MARGIN else "net lift"
    reason = (
        F.when(F.col("in_holdout"), F.lit("holdout outlet: no recommendation (control group)"))
        .when(
            F.col("_best").isNull(),
            F.lit(
                f"no action's lift has a lower bound of {rules.min_lift_pct:g}% or more with a positive net lift "
                f"within a {rules.max_discount:.0%} price cut: keep the plan"
            ),
        )
        .when(
            ~within_limit,
            F.lit(
                f"the outlet's {rules.max_promoted_per_outlet} larger {unit}s take its promotion slots: keep the plan"
            ),
        )
        .otherwise(
            F.format_string(
                f"%s: the largest {unit} of the qualifying actions (net %+.1f units, lift %+.1f%% [%+.1f%%, %+.1f%%])",
                F.col("_best.action"),
                F.col("_best.net_lift_units"),
                F.col("_best.lift_pct"),
                F.col("_best.lift_pct_low"),
                F.col("_best.lift_pct_high"),
            )
        )
    )
    runner_reason = F.when(
        F.col("_runner").isNotNull(),
        F.coalesce(
            F.col("_runner.why_not"),
            F.format_string(
                f"{unit} %.1f, below the chosen action's %.1f",
                F.col(f"_runner.{key}"),
                F.col(f"_best.{key}"),
            ),
        ),
    )
    return chosen_df.withColumn("_intended", intended).select(
        *KEYS,
        "brand",
        "in_holdout",
        F.col("_intended.action").alias("intended_action"),
        chosen["action"].alias("action"),
        chosen["price_change"].alias("price_change"),
        reason.alias("reason"),
        F.col("_intended.explanation").alias("explanation"),
        F.col("_runner.action").alias("runner_up"),
        runner_reason.alias("runner_up_reason"),
        "planned_unit_price",
        chosen["unit_price"].alias("unit_price"),
        F.col("planned_units"),
        chosen[PREDICTION].alias(PREDICTION),
        *[chosen[c].alias(c) for c in (*LIFT_COLUMNS, "cross_units", "dip_units", "incremental_margin")],
        "unit_cost",
        F.when(F.col("unit_cost").isNotNull(), F.lit("unit cost"))
        .otherwise(F.lit(f"assumed {rules.assumed_margin:.0%} margin"))
        .alias("margin_basis"),
        F.lit(book.model_version).alias("effects_version"),
        "candidates",
    )


def summary(recommendations_df: DataFrame) -> dict[str, int]:
    """A scored week's counts (one aggregation): rows, distinct items, invalid predictions (of the plan or an
    offered action), recommended, holdout."""
    # The plan and every offered action need a valid prediction; an action not offered has none to check.
    bad = F.exists(
        "candidates",
        lambda c: (
            (c["offered"] | (c["action"] == F.lit(AS_PLANNED)))
            & (c[PREDICTION].isNull() | F.isnan(c[PREDICTION]) | (c[PREDICTION] < F.lit(0.0)))
        ),
    )
    row = recommendations_df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct(*KEYS).alias("distinct_items"),
        F.sum(bad.cast("int")).alias("invalid_predictions"),
        F.sum((F.col("action") != F.lit(AS_PLANNED)).cast("int")).alias("recommended"),
        F.sum(F.col("in_holdout").cast("int")).alias("holdout_items"),
    ).first()
    assert row is not None
    return {k: int(row[k] or 0) for k in row.asDict()}


def coverage(recommendations_df: DataFrame, expected_items: int) -> dict[str, int]:
    """Counts that must hold for a scored week: one row per expected item, all predictions valid.

    Raises DataError with the counts when any does not.
    """
    counts = summary(recommendations_df) | {"expected_items": expected_items}
    problems = []
    if counts["rows"] != expected_items:
        problems.append(f"{counts['rows']} recommendations for {expected_items} active outlet x product")
    if counts["distinct_items"] != counts["rows"]:
        problems.append(f"{counts['rows'] - counts['distinct_items']} duplicate outlet x product rows")
    if counts["invalid_predictions"]:
        problems.append(f"{counts['invalid_predictions']} items with a null, NaN or negative prediction")
    if problems:
        raise DataError("coverage check failed: " + "; ".join(problems) + f" ({counts})")
    return counts

"""Synthetic POS deliveries with known true effects, generated in Spark (the driver never holds the rows).

Log units = product base + outlet effect + channel effect + elasticity * log(price / base price)
            + deal, feature and display effects + seasonality + noise
            + cross elasticity * mean log(price / base price) of the other products of the category
            + dip effect * (promoted last week).
The true coefficients go to `truth.json` beside the deliveries so models can be checked against them.

`Truth.confounded()` makes the data hard the way real data is: promotions are targeted where and when
demand is high (the outlet x product's level and the season, which a naive comparison mistakes for
the promotion's effect), deals come with a price cut drawn from a depth distribution, products of a
category substitute (a rival's price cut takes units), and a promotion is followed by a dip.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.draws import uniform

CHANNELS = ("retail", "foodservice", "digital")
REGIONS = ("north", "south", "east", "west")
BRANDS = ("Fizzo", "Koala Cola", "Sunny Orange", "Lemon Spark", "Aqua Pure", "Berry Burst", "Ginger Joy")


@dataclass(frozen=True)
class Truth:
    """The generating process: log-scale effects (lift in percent is exp(effect) - 1)."""

    price_elasticity: float = -2.0
    deal_effect: float = 0.25
    feature_effect: float = 0.35
    display_effect: float = 0.20
    season_amplitude: float = 0.15
    outlet_effect_sd: float = 0.3
    channel_effects: dict[str, float] = field(
        default_factory=lambda: {"retail": 0.0, "foodservice": -0.3, "digital": -0.6}
    )
    noise_sd: float = 0.2
    deal_probability: float = 0.2
    feature_probability: float = 0.1
    display_probability: float = 0.1
    deal_discount: tuple[float, float] = (0.10, 0.25)
    # Confounding and dynamics (zero: the plain generator). Targeting is the log-odds slope of a
    # promotion on the item's standardised expected log demand (its level and the season).
    targeting: float = 0.0
    cross_elasticity: float = 0.0
    dip_effect: float = 0.0

    @classmethod
    def confounded(cls) -> Truth:
        """Targeted promotions, substitution within a category and a post-promotion dip."""
        return cls(targeting=1.0, cross_elasticity=0.5, dip_effect=-0.15)

    def cross_price_effects(self, products: Shape) -> dict[str, dict[str, float]]:
        """True elasticity of each brand's units to each rival brand's price (brands x brands, within a category).

        A product's units respond to the mean log relative price of the category's other products, so a
        rival brand's weight is its share of those products.
        """
        brands = [product_brand(i) for i in range(products.products)]
        categories = [product_category(i) for i in range(products.products)]
        out: dict[str, dict[str, float]] = {}
        for i, (brand, category) in enumerate(zip(brands, categories, strict=True)):
            others = [j for j in range(products.products) if j != i and categories[j] == category]
            for j in others:
                if brands[j] != brand:
                    row = out.setdefault(brand, {})
                    row[brands[j]] = row.get(brands[j], 0.0) + self.cross_elasticity / len(others)
        return out


@dataclass(frozen=True)
class Shape:
    """How much data: outlets x products x weeks rows, starting on a Monday."""

    outlets: int = 50
    products: int = 8
    weeks: int = 30
    start: date = date(2024, 1, 1)
    seed: int = 7


@dataclass(frozen=True)
class Drift:
    """A change of regime from week index `from_week` on, for monitoring to find.

    Prices are scaled by `price_factor` (demand follows them through the true elasticity), and
    `new_outlets` outlets open: a cluster in a region of its own, `income_shift` richer than the rest.
    Their reference rows are delivered with the others; they sell from `from_week` on.
    """

    from_week: int
    price_factor: float = 1.0
    new_outlets: int = 0
    region: str = "central"
    income_shift: float = 2.0


def normal(seed: int, name: str, *keys: Column | str) -> Column:
    """Standard normal by Box-Muller from two deterministic uniforms."""
    u1, u2 = uniform(seed, name + ":1", *keys), uniform(seed, name + ":2", *keys)
    return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * math.pi * u2)


def outlets_df(spark: SparkSession, shape: Shape, truth: Truth, drift: Drift | None = None) -> DataFrame:
    """Outlet reference rows, with the (hidden) outlet effect kept for the sales generator."""
    new = drift.new_outlets if drift else 0
    is_new = F.col("outlet_idx") >= shape.outlets
    channel = F.element_at(
        F.array(*[F.lit(c) for c in CHANNELS]),
        (uniform(shape.seed, "channel", "id") * len(CHANNELS)).cast("int") + 1,
    )
    region = F.element_at(
        F.array(*[F.lit(r) for r in REGIONS]),
        (uniform(shape.seed, "region", "id") * len(REGIONS)).cast("int") + 1,
    )
    channel_effect = F.create_map(*[x for k, v in truth.channel_effects.items() for x in (F.lit(k), F.lit(v))])
    income = 10.0 + 0.5 * normal(shape.seed, "income", "id")
    if drift:
        region = F.when(is_new, F.lit(drift.region)).otherwise(region)
        income = income + F.when(is_new, 0.5 * drift.income_shift).otherwise(0.0)
    return (
        spark.range(shape.outlets + new)
        .withColumnRenamed("id", "outlet_idx")
        .withColumn("id", F.col("outlet_idx"))
        .withColumn("outlet_id", F.format_string("OUT%06d", "outlet_idx"))
        .withColumn("channel", channel)
        .withColumn("region", region)
        .withColumn("income", F.round(income, 4))
        .withColumn("share_large_households", F.round(uniform(shape.seed, "hh", "id") * 0.3, 4))
        # Personal data for the pseudonymisation path: the owner's e-mail, one owner per two outlets.
        .withColumn("contact_email", F.format_string("Owner%05d@example.com", (F.col("id") / 2).cast("int")))
        .withColumn(
            "_outlet_effect",
            truth.outlet_effect_sd * normal(shape.seed, "outlet", "id") + channel_effect[F.col("channel")],
        )
        .drop("id")
    )


def product_brand(product_idx: int) -> str:
    return BRANDS[product_idx % len(BRANDS)]


def product_category(product_idx: int) -> str:
    return "soft_drinks" if product_idx % 2 == 0 else "juice"


def products_df(spark: SparkSession, shape: Shape) -> DataFrame:
    """Product reference rows, with base demand and base price kept for the sales generator."""
    brand = F.element_at(F.array(*[F.lit(b) for b in BRANDS]), (F.col("product_idx") % len(BRANDS)).cast("int") + 1)
    return (
        spark.range(shape.products)
        .withColumnRenamed("id", "product_idx")
        .withColumn("product_id", F.format_string("SKU%04d", "product_idx"))
        .withColumn("brand", brand)
        .withColumn("manufacturer", F.concat(brand, F.lit(" Beverages")))
        .withColumn("category", F.when(F.col("product_idx") % 2 == 0, "soft_drinks").otherwise("juice"))
        .withColumn("pack_size", F.lit(12.0))
        .withColumn("_base_log_units", 3.0 + 0.5 * normal(shape.seed, "base", "product_idx"))
        .withColumn("_base_price", F.round(1.5 + 2.5 * uniform(shape.seed, "price", "product_idx"), 2))
        .withColumn("unit_cost", F.round(F.col("_base_price") * 0.55, 2))
    )


def _log_units(
    truth: Truth,
    seed: int,
    price: Column,
    deal: Column,
    feature: Column,
    display: Column,
    rival_prices: Column | None = None,
    promoted_before: Column | None = None,
) -> Column:
    """The generating model for one row (needs the hidden outlet and product columns and `sale_date`).

    `rival_prices` is the mean log(price / base price) of the category's other products at the outlet.
    """
    angle = 2 * math.pi * F.dayofyear("sale_date") / 365.25
    return (
        F.col("_base_log_units")
        + F.col("_outlet_effect")
        + truth.price_elasticity * F.log(price / F.col("_base_price"))
        + truth.deal_effect * deal.cast("int")
        + truth.feature_effect * feature.cast("int")
        + truth.display_effect * display.cast("int")
        + truth.season_amplitude * F.sin(angle)
        + (0.0 if rival_prices is None else truth.cross_elasticity * rival_prices)
        + (0.0 if promoted_before is None else truth.dip_effect * promoted_before.cast("int"))
        + truth.noise_sd * normal(seed, "noise", "outlet_idx", "product_idx", "week_idx")
    )


def _promotions(shape: Shape, truth: Truth, week: Column) -> tuple[Column, Column]:
    """(on deal, featured) of an item in a week: targeted on its expected log demand when truth says so."""
    keys = ("outlet_idx", "product_idx", week)
    angle = 2 * math.pi * F.dayofyear(F.date_add(F.lit(shape.start), (week * 7).cast("int"))) / 365.25
    expected = F.col("_outlet_effect") + F.col("_base_log_units") + truth.season_amplitude * F.sin(angle)
    z = (expected - 3.0) / 0.6  # about standardised: base 3.0, sd of outlet and product levels about 0.6

    def targeted(probability: float) -> Column:
        if not truth.targeting:
            return F.lit(probability)
        logit = math.log(probability / (1 - probability)) + truth.targeting * z
        return 1.0 / (1.0 + F.exp(-logit))

    on_deal = uniform(shape.seed, "deal", *keys) < targeted(truth.deal_probability)
    featured = uniform(shape.seed, "feat", *keys) < F.when(
        on_deal, targeted(min(3 * truth.feature_probability, 0.9))
    ).otherwise(targeted(truth.feature_probability / 2))
    return on_deal, featured


def sales_df(spark: SparkSession, shape: Shape, truth: Truth, drift: Drift | None = None) -> DataFrame:
    """outlets x products x weeks sales records in the raw interface, plus `delivery_week`."""
    s = shape.seed
    keys = ("outlet_idx", "product_idx", "week_idx")
    n_rows = (shape.outlets + (drift.new_outlets if drift else 0)) * shape.products * shape.weeks
    grid = (
        spark.range(n_rows)
        .withColumn("week_idx", F.col("id") % shape.weeks)
        .withColumn("product_idx", (F.col("id") / shape.weeks).cast("long") % shape.products)
        .withColumn("outlet_idx", (F.col("id") / (shape.weeks * shape.products)).cast("long"))
    )
    if drift:  # new outlets sell from the drift on
        grid = grid.filter((F.col("outlet_idx") < shape.outlets) | (F.col("week_idx") >= drift.from_week))
    outlets = outlets_df(spark, shape, truth, drift).select("outlet_idx", "outlet_id", "_outlet_effect")
    products = products_df(spark, shape).select(
        "product_idx", "product_id", "category", "_base_log_units", "_base_price"
    )
    lo, hi = truth.deal_discount
    on_deal, featured = _promotions(shape, truth, F.col("week_idx"))
    deal_before, featured_before = _promotions(shape, truth, F.col("week_idx") - 1)
    on_display = uniform(s, "display", *keys) < truth.display_probability
    sale_date = F.date_add(F.lit(shape.start), (F.col("week_idx") * 7).cast("int"))
    discount = F.when(F.col("on_deal"), lo + (hi - lo) * uniform(s, "disc", *keys)).otherwise(0.0)
    price = F.col("_base_price") * (1 - discount) * F.exp(0.05 * normal(s, "pnoise", *keys))
    if drift:
        price = price * F.when(F.col("week_idx") >= drift.from_week, drift.price_factor).otherwise(1.0)
    price = F.round(price, 2)
    # The category's other products at the outlet that week: their mean log relative price (a window,
    # so only computed when the truth has substitution).
    category_week = Window.partitionBy("outlet_idx", "week_idx", "category")
    relative = F.log(F.col("unit_price") / F.col("_base_price"))
    others = F.count(F.lit(1)).over(category_week) - 1
    rival_prices = F.when(others > 0, (F.sum(relative).over(category_week) - relative) / others).otherwise(0.0)
    promoted_before = (F.col("week_idx") > 0) & (deal_before | featured_before)
    log_units = _log_units(
        truth,
        s,
        F.col("unit_price"),
        F.col("on_deal"),
        F.col("featured"),
        F.col("on_display"),
        F.col("_rival_prices") if truth.cross_elasticity else None,
        promoted_before if truth.dip_effect else None,
    )
    return (
        grid.join(F.broadcast(outlets), "outlet_idx", "inner")
        .join(F.broadcast(products), "product_idx", "inner")
        .withColumn("sale_date", sale_date)
        .withColumn("on_deal", on_deal)
        .withColumn("featured", featured)
        .withColumn("on_display", on_display)
        .withColumn("unit_price", price)
        .withColumn("_rival_prices", rival_prices if truth.cross_elasticity else F.lit(0.0))
        .withColumn("units", F.round(F.exp(log_units)).cast("long"))
        .select(
            "outlet_id",
            "product_id",
            F.col("sale_date").cast("string").alias("sale_date"),
            "units",
            "unit_price",
            *[F.col(c).cast("int").alias(c) for c in ("on_deal", "featured", "on_display")],
            F.col("sale_date").cast("string").alias("delivery_week"),
        )
    )


def sales_under_plan(spark: SparkSession, shape: Shape, truth: Truth, plan_df: DataFrame, week_idx: int) -> DataFrame:
    """Sales of one week when every outlet x product follows a plan, with both potential outcomes.

    `plan_df` has outlet_id, product_id, `treated`, `planned_price`, and the action's `price`, `deal`,
    `feature`, `display`. Treated rows sell under the action, the others as planned (planned price, no
    promotion). Each row carries both outcomes under the same noise draw, `_units_if_treated` and
    `_units_if_planned`, so a test knows the true effect of the plan; `units` is the one delivered.
    The plan's week has no cross-price or dip terms, so the truth must have none.
    """
    if truth.cross_elasticity or truth.dip_effect:
        raise ValueError("sales_under_plan models no cross-price or dip effects: use a Truth without them")
    outlets = outlets_df(spark, shape, truth).select("outlet_idx", "outlet_id", "_outlet_effect")
    products = products_df(spark, shape).select("product_idx", "product_id", "_base_log_units", "_base_price")
    no = F.lit(False)
    if_treated = _log_units(truth, shape.seed, F.col("price"), F.col("deal"), F.col("feature"), F.col("display"))
    if_planned = _log_units(truth, shape.seed, F.col("planned_price"), no, no, no)
    rows = (
        plan_df.join(F.broadcast(outlets), "outlet_id", "inner")
        .join(F.broadcast(products), "product_id", "inner")
        .withColumn("week_idx", F.lit(week_idx))
        .withColumn("sale_date", F.date_add(F.lit(shape.start), week_idx * 7))
        .withColumn("_units_if_treated", F.round(F.exp(if_treated)).cast("long"))
        .withColumn("_units_if_planned", F.round(F.exp(if_planned)).cast("long"))
    )
    treated = F.col("treated")
    return rows.select(
        "outlet_id",
        "product_id",
        F.col("sale_date").cast("string").alias("sale_date"),
        F.when(treated, F.col("_units_if_treated")).otherwise(F.col("_units_if_planned")).alias("units"),
        F.round(F.when(treated, F.col("price")).otherwise(F.col("planned_price")), 2).alias("unit_price"),
        *[
            F.when(treated, F.col(c)).otherwise(no).cast("int").alias(raw)
            for c, raw in (("deal", "on_deal"), ("feature", "featured"), ("display", "on_display"))
        ],
        "_units_if_treated",
        "_units_if_planned",
    )


def write_truth(out: Path, shape: Shape, truth: Truth) -> None:
    lifts = {
        k.replace("_effect", "_lift_pct"): round(100 * (math.exp(getattr(truth, k)) - 1), 4)
        for k in ("deal_effect", "feature_effect", "display_effect")
    }
    payload = {
        "shape": {**asdict(shape), "start": shape.start.isoformat()},
        "truth": asdict(truth),
        **lifts,
        "cross_price_elasticities": truth.cross_price_effects(shape),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth.json").write_text(json.dumps(payload, indent=2))

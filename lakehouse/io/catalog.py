"""The table catalogue: every Delta table's layer, location, partitioning and contract, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.settings import Settings


@dataclass(frozen=True)
class Table:
    """A Delta table of the lakehouse."""

    name: str
    layer: str
    partition_by: tuple[str, ...] = ()
    description: str = ""
    # Columns Delta keeps min/max statistics for (data skipping). Statistics cost write time for every
    # column they cover (about 20% of a 41-column gold write), so tables name the ones queries filter on.
    stats_columns: tuple[str, ...] = ()

    @property
    def contract(self) -> str:
        """Contracts are named after their table: `contracts/<name>.yaml`."""
        return self.name

    def path(self, settings: Settings) -> str:
        return f"{settings.warehouse.rstrip('/')}/{self.layer}/{self.name}"


BRONZE_SALES = Table(
    "bronze_sales",
    "bronze",
    description="POS sales records as delivered",
    stats_columns=("outlet_id", "product_id", "sale_date", "record_id", "_batch_id", "_ingested_at"),
)
BRONZE_OUTLETS = Table("bronze_outlets", "bronze", description="outlet reference records as delivered")
BRONZE_PRODUCTS = Table("bronze_products", "bronze", description="product reference records as delivered")
BRONZE_FILES = Table("bronze_files", "bronze", description="ingest ledger: one row per delivered file")
SILVER_SALES = Table(
    "silver_sales",
    "silver",
    ("week_start",),
    "typed, valid, deduplicated sales",
    ("outlet_id", "product_id", "sale_date", "record_id"),
)
SILVER_OUTLETS = Table("silver_outlets", "silver", description="current outlet attributes")
SILVER_PRODUCTS = Table("silver_products", "silver", description="current product attributes")
# Partitioned like the weeks they describe, so a rebuild replaces partitions by metadata, not by a scan.
QUARANTINE = Table("silver_quarantine", "silver", ("table_name", "week_start"), "rejected rows with a reason")
CONSERVATION = Table("silver_conservation", "silver", ("table_name", "week_start"), "row accounting per week")
GOLD_SALES_WEEKLY = Table(
    "gold_sales_weekly", "gold", ("week_start",), "outlet x product x week facts", ("outlet_id", "product_id")
)
GOLD_FEATURES = Table(
    "gold_features", "gold", ("week_start",), "point-in-time features and labels", ("outlet_id", "product_id")
)
GOLD_RECOMMENDATIONS = Table(
    "gold_recommendations", "gold", ("week_start",), "recommended action per outlet x product", ("outlet_id",)
)
# The rows the champion scored, as planned: the online features of the serving API's what-if.
GOLD_PLANNED_FEATURES = Table(
    "gold_planned_features", "gold", ("week_start",), "as-planned feature rows of a scored week", ("outlet_id",)
)
GOLD_EFFECTS = Table("gold_effects", "gold", description="causal effects of price and promotions per brand and segment")
GOLD_BACKTEST = Table(
    "gold_backtest", "gold", description="calibration of the effects on real promotions (rolling origin)"
)
GOLD_LIFT = Table("gold_lift", "gold", ("week_start",), "measured lift of the recommendations per week")
GOLD_MONITORING = Table("gold_monitoring", "gold", ("week_start",), "drift, quality and data health per week")
RETRAIN_REQUESTS = Table(
    "audit_retrain_requests", "audit", description="append-only log of the retraining requests monitoring made"
)
MODEL_AUDIT = Table("audit_model_registry", "audit", description="append-only log of registry alias changes")

TABLES: tuple[Table, ...] = (
    BRONZE_SALES,
    BRONZE_OUTLETS,
    BRONZE_PRODUCTS,
    BRONZE_FILES,
    SILVER_SALES,
    SILVER_OUTLETS,
    SILVER_PRODUCTS,
    QUARANTINE,
    CONSERVATION,
    GOLD_SALES_WEEKLY,
    GOLD_FEATURES,
    GOLD_EFFECTS,
    GOLD_BACKTEST,
    GOLD_RECOMMENDATIONS,
    GOLD_PLANNED_FEATURES,
    GOLD_LIFT,
    GOLD_MONITORING,
    MODEL_AUDIT,
    RETRAIN_REQUESTS,
)

BRONZE_BY_KIND = {"sales": BRONZE_SALES, "outlets": BRONZE_OUTLETS, "products": BRONZE_PRODUCTS}


def by_name(name: str) -> Table:
    """Look a table up by name; unknown names list the known ones."""
    for table in TABLES:
        if table.name == name:
            return table
    raise KeyError(f"unknown table {name!r}; known: {', '.join(t.name for t in TABLES)}")

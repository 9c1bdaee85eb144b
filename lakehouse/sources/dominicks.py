"""Dominick's Finer Foods refrigerated orange juice (from Debian's r-cran-bayesm) as raw deliveries.

83 Chicago stores x 121 weeks x 11 brands with shelf prices, deals and feature ads, and store
demographics. The data is GPL-licensed, so it is fetched at setup and never committed.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

DEB_PACKAGE = "r-cran-bayesm"
RDA_PATH = "usr/lib/R/site-library/bayesm/data/orangeJuice.rda"
# Dominick's week 1 began Thursday 1989-09-14, so week 40 (the first in this extract) began 1990-06-14.
WEEK_40_DATE = date(1990, 6, 14)
# (brand, manufacturer, pack size in ounces) by bayesm brand number; prices in the data are per ounce.
BRANDS = {
    1: ("Tropicana Premium", "Tropicana", 64.0),
    2: ("Tropicana Premium", "Tropicana", 96.0),
    3: ("Florida's Natural", "Florida's Natural Growers", 64.0),
    4: ("Tropicana", "Tropicana", 64.0),
    5: ("Minute Maid", "The Coca-Cola Company", 64.0),
    6: ("Minute Maid", "The Coca-Cola Company", 96.0),
    7: ("Citrus Hill", "Procter & Gamble", 64.0),
    8: ("Tree Fresh", "Tree Fresh", 64.0),
    9: ("Florida Gold", "Florida Gold", 64.0),
    10: ("Dominick's", "Dominick's Finer Foods", 64.0),
    11: ("Dominick's", "Dominick's Finer Foods", 128.0),
}
DEMOGRAPHICS = {
    "INCOME": "income",
    "AGE60": "share_age60",
    "EDUC": "share_college",
    "ETHNIC": "share_ethnic",
    "HHLARGE": "share_large_households",
    "WORKWOM": "share_working_women",
    "HVAL150": "share_house_value_150k",
    "SSTRDIST": "dist_discounter",
    "SSTRVOL": "discounter_volume_ratio",
    "CPDIST5": "dist_competitors",
    "CPWVOL5": "competitor_volume_ratio",
}


class SourceUnavailable(RuntimeError):
    """The Debian package could not be fetched; the message says what to do."""


def fetch_rda(cache_dir: Path) -> Path:
    """Download and unpack r-cran-bayesm once into `cache_dir`; return the orangeJuice.rda path."""
    rda = cache_dir / "bayesm" / RDA_PATH
    if rda.exists():
        return rda
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "download", DEB_PACKAGE]):
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
            if done.returncode != 0 and cmd[1] == "download":
                raise SourceUnavailable(
                    f"`apt-get download {DEB_PACKAGE}` failed ({done.stderr.strip()[-200:]}); "
                    "Dominick's data comes from Debian's package mirror (needs apt and root for `apt-get update`)"
                )
        deb = next(Path(tmp).glob(f"{DEB_PACKAGE}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache_dir / "bayesm")], check=True)
    return rda


def read_rda(rda: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `yx` (store x brand x week) and `storedemo` frames."""
    import rdata

    data = rdata.read_rda(str(rda))["orangeJuice"]
    return data["yx"], data["storedemo"]


def week_date(week: int) -> date:
    return WEEK_40_DATE + timedelta(weeks=week - 40)


def sales_records(yx: pd.DataFrame) -> pd.DataFrame:
    """One record per store x brand x week in the raw sales interface (weekly grain)."""
    brand = yx["brand"].astype(int)
    pack = brand.map({b: v[2] for b, v in BRANDS.items()})
    own_price_per_oz = pd.Series([yx.at[i, f"price{b}"] for i, b in zip(yx.index, brand, strict=True)], index=yx.index)
    return pd.DataFrame(
        {
            "outlet_id": yx["store"].astype(int).map(lambda s: f"DOM{s:03d}"),
            "product_id": brand.map(lambda b: f"OJ{b:02d}"),
            "sale_date": yx["week"].astype(int).map(lambda w: week_date(w).isoformat()),
            "units": yx["logmove"].map(lambda v: round(math.exp(v))),
            "unit_price": (own_price_per_oz * pack).round(2),
            "on_deal": yx["deal"].astype(int),
            "featured": (yx["feat"] >= 0.5).astype(int),
            # Not in the silver contract: kept in bronze only, to show schema evolution on real data.
            "profit_margin_pct": yx["profit"].round(3),
        }
    )


def outlet_records(storedemo: pd.DataFrame) -> pd.DataFrame:
    out = storedemo.rename(columns=DEMOGRAPHICS)
    out.insert(0, "outlet_id", storedemo["STORE"].astype(int).map(lambda s: f"DOM{s:03d}"))
    out.insert(1, "channel", "retail")
    out.insert(2, "region", "chicago")
    return out.drop(columns=["STORE"])


def product_records() -> pd.DataFrame:
    return pd.DataFrame(
        [(f"OJ{b:02d}", name, maker, "refrigerated_orange_juice", size) for b, (name, maker, size) in BRANDS.items()],
        columns=["product_id", "brand", "manufacturer", "category", "pack_size"],
    )


def write_deliveries(rda: Path, out: Path) -> dict[str, int]:
    """Write outlets/, products/ and one sales/week=YYYY-MM-DD/ delivery per week under `out`."""
    yx, storedemo = read_rda(rda)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "outlets").mkdir(parents=True)
    (tmp / "products").mkdir(parents=True)
    outlet_records(storedemo).to_csv(tmp / "outlets" / "outlets.csv", index=False)
    product_records().to_csv(tmp / "products" / "products.csv", index=False)
    sales = sales_records(yx)
    for day, week_df in sales.groupby("sale_date"):
        folder = tmp / "sales" / f"week={day}"
        folder.mkdir(parents=True)
        week_df.sort_values(["outlet_id", "product_id"]).to_csv(folder / "sales.csv", index=False)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # the deliveries appear complete or not at all
    return {"sales_rows": len(sales), "weeks": sales["sale_date"].nunique(), "outlets": len(storedemo)}

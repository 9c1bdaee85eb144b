"""Hostile input, generated: whatever a provider delivers, every row is accounted for and no traceback reaches
the user.

Hypothesis writes deliveries of CSV (UTF-8, UTF-8 with a byte-order mark or Latin-1; LF or CRLF; any quoting),
JSON Lines and Parquet files, with odd headers (a column twice, a required one missing, one no contract names,
none at all) and odd values (huge and tiny numbers, NaN and infinity, text in number columns, quotes, commas
and line breaks inside values, very long values, non-ASCII). Each example ingests one delivery into a fresh
home and builds its weeks. Then:
- ingest and build succeed or stop with one of the platform's own errors (a message, no traceback), and a
  refused delivery writes nothing;
- every file is in bronze_files: ingested, with as many bronze rows as it has records when its records are
  one per line, or rejected with a reason;
- every bronze row is in silver, the quarantine, or counted as a duplicate or superseded version (the
  conservation rows balance and add up to bronze), and silver holds no sale a rule should have stopped;
- every table reads.

`LAKEHOUSE_HYPOTHESIS_EXAMPLES` sets how many deliveries (each a fresh home, an ingest and a build: seconds).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from lakehouse.errors import exit_code
from lakehouse.io.catalog import BRONZE_FILES, BRONZE_SALES, CONSERVATION, QUARANTINE, SILVER_SALES, TABLES
from lakehouse.io.delta_io import exists
from tests.conftest import SALES_HEADER, use_home, write_csv
from tests.integration.helpers import build, ingest, ingest_references, table, version

pytestmark = pytest.mark.world

WEEK1, WEEK2 = date(2024, 1, 1), date(2024, 1, 8)
EXAMPLES = int(os.environ.get("LAKEHOUSE_HYPOTHESIS_EXAMPLES", "6"))
NUMBER_COLUMNS = ("units", "unit_price")
FLAG_COLUMNS = ("on_deal", "featured", "on_display")

LONG = "x" * 100_000
text = st.sampled_from(["", " ", "Ö1", "Café", "a,b", 'say "hi"', "two\nlines", "cr\r\nlf", "日本", "\t", LONG])
ids = st.one_of(st.sampled_from(["O1", "O2", "O3", "O9", " O1 ", "o1"]), text)
products = st.one_of(st.sampled_from(["P1", "P2", "P3", "P9"]), text)
dates = st.sampled_from(
    ["2024-01-01", "2024-01-03", "2024-01-09", "2024-01-14", "2024-13-45", "01/02/2024", "", "yesterday", "2024-1-2"]
)
numbers = st.one_of(
    st.integers(-10, 1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 1e-300, 0.0, -0.0, 2_000_000, 150_000.0]),
    st.sampled_from(["1e308", "NaN", "Infinity", "-Inf", "lots", "1,5", "0x10", "", " 3 ", "١٢"]),
    text,
)
flags = st.one_of(st.sampled_from(["0", "1", "true", "false", "yes", "2", "", None, 1, 0, True]), text)


@st.composite
def records(draw) -> dict[str, object]:
    """One sale as a provider might send it: any column may hold anything."""
    record: dict[str, object] = {
        "outlet_id": draw(ids),
        "product_id": draw(products),
        "sale_date": draw(dates),
        "units": draw(numbers),
        "unit_price": draw(numbers),
    }
    record |= {flag: draw(flags) for flag in FLAG_COLUMNS}
    if draw(st.booleans()):
        record["record_id"] = draw(st.one_of(st.sampled_from(["r-1", "r-2"]), text))
    if draw(st.booleans()):
        record["coupon_disc"] = draw(numbers)  # a column no contract names
    return record


@dataclass(frozen=True)
class File:
    name: str
    content: bytes
    records: int | None  # records the file holds when each is one line; None when a reader may split or join them


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _one_line(rows: list[dict[str, object]]) -> bool:
    return not any("\n" in _text(v) or "\r" in _text(v) for row in rows for v in row.values())


@st.composite
def csv_files(draw, name: str) -> File:
    rows = draw(st.lists(records(), max_size=6))
    header = list(dict.fromkeys([*SALES_HEADER, *(k for row in rows for k in row)]))
    shape = draw(st.sampled_from(["plain", "plain", "shuffled", "duplicate", "missing", "unnamed", "none"]))
    if shape == "shuffled":
        header = draw(st.permutations(header))
    elif shape == "duplicate":
        header = [*header, draw(st.sampled_from(header))]
    elif shape == "missing":
        header.remove(draw(st.sampled_from(["outlet_id", "units", "unit_price"])))
    elif shape == "unnamed":
        header = [*header, ""]
    out = io.StringIO()
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    writer = csv.writer(out, lineterminator=terminator, quoting=quoting)
    if shape != "none":
        writer.writerow(header)
    writer.writerows([[_text(row.get(column)) for column in header] for row in rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
    content = out.getvalue().encode(encoding, errors="replace")
    readable = shape in ("plain", "shuffled") and encoding != "latin-1" and _one_line(rows)
    return File(name, content, len(rows) if readable else None)


@st.composite
def jsonl_files(draw, name: str) -> File:
    rows = draw(st.lists(records(), max_size=6))
    lines = [json.dumps(row, ensure_ascii=draw(st.booleans())) for row in rows]
    if lines and draw(st.booleans()):
        lines[-1] = lines[-1][: len(lines[-1]) // 2]  # cut short
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["[1, 2]", '"a string"', "42", "{not json}", "null"])))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    content = "".join(line + terminator for line in lines).encode()
    return File(name, content, len(lines))


def _column(values: list[object], kind: str) -> pa.Array:
    """A Parquet column: doubles where the values parse as such (else null), or their text."""
    if kind == "double":
        parsed = []
        for value in values:
            try:
                parsed.append(float(value))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                parsed.append(None)
        return pa.array(parsed, pa.float64())
    return pa.array([None if v is None else _text(v) for v in values], pa.string())


@st.composite
def parquet_files(draw, name: str) -> File:
    rows = draw(st.lists(records(), min_size=1, max_size=6))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    arrays = {}
    for column in columns:
        numeric = column in (*NUMBER_COLUMNS, "coupon_disc")
        kind = draw(st.sampled_from(["double", "double", "string"])) if numeric else "string"
        arrays[column] = _column([row.get(column) for row in rows], kind)
    sink = io.BytesIO()
    pq.write_table(pa.table(arrays), sink)
    return File(name, sink.getvalue(), len(rows))


@st.composite
def deliveries(draw) -> list[File]:
    makers = {"csv": csv_files, "jsonl": jsonl_files, "parquet": parquet_files}
    formats = draw(st.lists(st.sampled_from(sorted(makers)), min_size=1, max_size=4))
    return [draw(makers[fmt](f"part-{i}.{fmt}")) for i, fmt in enumerate(formats)]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("references")
    outlets = [["O1", "retail", "north", 10.1], ["O2", "foodservice", "south", 10.5], ["O3", "digital", "east", 9.9]]
    return {
        "outlets": write_csv(root / "outlets", "outlets.csv", outlets, ["outlet_id", "channel", "region", "income"]),
        "products": write_csv(
            root / "products",
            "products.csv",
            [[f"P{i}", f"Brand{i}", f"Maker{i}", "juice", 64] for i in (1, 2, 3)],
            ["product_id", "brand", "manufacturer", "category", "pack_size"],
        ),
    }


def _platform_error(exc: Exception) -> bool:
    """One of the platform's own errors: the CLI prints its message and exits with its code, no traceback."""
    return exit_code(exc) is not None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # each example costs seconds: no shrinking, the failing one is printed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(delivered=deliveries())
def test_every_delivered_row_is_accounted_for_and_no_traceback_reaches_the_user(
    spark, references, tmp_path_factory, delivered
):
    root = tmp_path_factory.mktemp("hostile")
    folder = root / "delivery"
    folder.mkdir()
    for f in delivered:
        (folder / f.name).write_bytes(f.content)
    with pytest.MonkeyPatch.context() as mp:
        settings_ = use_home(mp, root / "home")
        ingest_references(spark, settings_, {k: v.parent for k, v in references.items()})
        _check_ingest(spark, settings_, folder, delivered)
        try:
            build(spark, settings_, WEEK1, WEEK2)
        except Exception as exc:
            assert _platform_error(exc), f"build raised {type(exc).__name__}: {exc}"
            assert not exists(spark, BRONZE_SALES, settings_), f"build refused the bronze rows: {exc}"
            return
        _check_accounting(spark, settings_)


def _bronze_version(spark, settings_) -> tuple[int | None, int | None]:
    return tuple(
        version(spark, settings_, t) if exists(spark, t, settings_) else None for t in (BRONZE_SALES, BRONZE_FILES)
    )


def _check_ingest(spark, settings_, folder: Path, delivered: list[File]) -> None:
    before = _bronze_version(spark, settings_)
    try:
        ingest(spark, settings_, "sales", folder)
    except Exception as exc:
        assert _platform_error(exc), f"ingest raised {type(exc).__name__}: {exc}"
        assert str(exc), "a refusal says why"
        assert _bronze_version(spark, settings_) == before, "a refused delivery writes nothing"
        return
    files = table(spark, settings_, BRONZE_FILES).filter(F.col("kind") == "sales").collect()
    ledger = {r["_source_file"].rsplit("/", 1)[-1]: r for r in files}
    assert set(ledger) == {f.name for f in delivered}, "every file is in bronze_files"
    bronze = table(spark, settings_, BRONZE_SALES) if exists(spark, BRONZE_SALES, settings_) else None
    landed = {}
    if bronze is not None:
        per_file = bronze.groupBy("_source_file").count().collect()
        landed = {r["_source_file"].rsplit("/", 1)[-1]: r["count"] for r in per_file}
    for f in delivered:
        entry = ledger[f.name]
        if entry["status"] == "rejected":
            assert entry["error"], f"{f.name} rejected without a reason"
            assert f.name not in landed, f"{f.name} rejected but has rows in bronze"
            continue
        assert entry["status"] == "ingested", entry
        assert landed.get(f.name, 0) == entry["rows"], (
            f"{f.name}: bronze holds {landed.get(f.name, 0)} rows, the ledger {entry['rows']}"
        )
        if f.records is not None:
            assert entry["rows"] == f.records, f"{f.name}: {f.records} records delivered, {entry['rows']} landed"


def _check_accounting(spark, settings_) -> None:
    if not exists(spark, BRONZE_SALES, settings_):
        return
    bronze_rows = table(spark, settings_, BRONZE_SALES).count()
    conservation = table(spark, settings_, CONSERVATION).filter(F.col("table_name") == SILVER_SALES.name)
    assert conservation.filter(~F.col("is_balanced")).count() == 0, "a conservation row does not balance"
    # Every delivered date is in the built weeks or unparseable (undated), so the built rows are all of bronze.
    assert (conservation.agg(F.sum("bronze_rows")).first()[0] or 0) == bronze_rows, "bronze rows left uncounted"
    silver = table(spark, settings_, SILVER_SALES)
    quarantined = table(spark, settings_, QUARANTINE).filter(F.col("table_name") == SILVER_SALES.name)
    assert quarantined.filter(F.col("reason").isNull() | (F.col("reason") == "")).count() == 0, (
        "a quarantine row has no reason"
    )
    implausible = ~F.expr("units BETWEEN 0 AND 1000000 AND unit_price > 0 AND unit_price <= 100000")
    assert silver.filter(implausible | F.isnan("units") | F.isnan("unit_price")).count() == 0, (
        "silver holds an impossible sale"
    )
    for t in TABLES:
        if exists(spark, t, settings_):
            table(spark, settings_, t).count()

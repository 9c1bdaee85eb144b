"""Personal data: what a contract classifies as pii leaves bronze only as a keyed HMAC, and only with a key."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse.contracts import pii
from lakehouse.contracts.model import load_contract
from lakehouse.errors import PiiKeyError
from lakehouse.io import delta_io
from lakehouse.io.catalog import BRONZE_OUTLETS, CONSERVATION, QUARANTINE, SILVER_OUTLETS, TABLES
from lakehouse.settings import Settings
from tests.conftest import SALES_HEADER, TEST_PII_SECRET, write_csv
from tests.integration.helpers import build, ingest, ingest_references, table, version

WEEK = date(2024, 1, 1)
EMAILS = {"O1": " Ann.Owner@Example.com", "O2": "ann.owner@example.com", "O3": "bob@cafe.example", "O4": ""}


def _hmac(key: str, email: str) -> str:
    return hmac.new(key.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def deliveries(tmp_path: Path) -> dict[str, Path]:
    """Outlets with owners' e-mails (O1 and O2 share one, spelled differently; O4 has an unknown channel,
    so it is quarantined with its e-mail in the record), products and one week of sales."""
    channels = {"O1": "retail", "O2": "foodservice", "O3": "digital", "O4": "kiosk"}
    outlets = write_csv(
        tmp_path / "outlets",
        "outlets.csv",
        [[o, channels[o], "north", EMAILS[o] or "dora@kiosk.example"] for o in EMAILS],
        header=["outlet_id", "channel", "region", "contact_email"],
    ).parent
    products = write_csv(
        tmp_path / "products",
        "products.csv",
        [["P1", "Brand1", "Maker1", "juice", 64]],
        header=["product_id", "brand", "manufacturer", "category", "pack_size"],
    ).parent
    sales = write_csv(
        tmp_path / "sales",
        "sales.csv",
        [[o, "P1", "2024-01-02", 5, 2.5, "", "", ""] for o in ("O1", "O2", "O3")],
        header=SALES_HEADER,
    ).parent
    return {"outlets": outlets, "products": products, "sales": sales}


def _ingest_all(spark, settings: Settings, deliveries: dict[str, Path]) -> None:
    for kind in ("outlets", "products", "sales"):
        ingest(spark, settings, kind, deliveries[kind])


def _string_values(spark, settings: Settings, layer: str) -> set[str]:
    """Every string value of every table of a layer (quarantine records included)."""
    values: set[str] = set()
    for t in TABLES:
        if t.layer != layer or not delta_io.exists(spark, t, settings):
            continue
        df = delta_io.read(spark, t, settings)
        strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
        for row in df.select(*strings).collect():
            values.update(v for v in row if v)
    return values


def test_silver_keeps_a_keyed_hmac_and_no_pii_reaches_silver_or_gold(spark, settings, deliveries):
    _ingest_all(spark, settings, deliveries)
    raw = {e for e in EMAILS.values() if e} | {"dora@kiosk.example"}
    assert raw <= _string_values(spark, settings, "bronze"), "bronze keeps the delivery as it came"
    build(spark, settings, WEEK, WEEK)

    keys = {r["outlet_id"]: r["contact_key"] for r in table(spark, settings, SILVER_OUTLETS).collect()}
    assert keys == {o: _hmac(TEST_PII_SECRET, EMAILS[o]) for o in ("O1", "O2", "O3")}
    assert keys["O1"] == keys["O2"], "one owner, one pseudonym, however the e-mail was typed"

    (quarantined,) = table(spark, settings, QUARANTINE).filter(F.col("reason") == "unknown_channel").collect()
    assert json.loads(quarantined["record"])["contact_email"] == _hmac(TEST_PII_SECRET, "dora@kiosk.example")

    pii_names = {c for path in settings.contracts_dir.glob("*.yaml") for c in pii.pii_columns(load_contract(path.stem))}
    assert pii_names == {"contact_email"}
    for layer in ("silver", "gold"):
        for t in (t for t in TABLES if t.layer == layer and delta_io.exists(spark, t, settings)):
            assert not pii_names & set(delta_io.read(spark, t, settings).columns), f"{t.name} holds a pii column"
        leaked = {v for v in _string_values(spark, settings, layer) for e in raw if e.strip().lower() in v.lower()}
        assert not leaked, f"personal data in {layer}: {leaked}"


def test_no_gold_contract_has_a_pii_column(settings):
    contracts = [load_contract(p.stem) for p in sorted(settings.contracts_dir.glob("*.yaml"))]
    pii_names = {c for contract in contracts for c in pii.pii_columns(contract)}
    for contract in contracts:
        if contract.name.startswith("gold_"):
            assert not pii_names & set(contract.column_names), contract.name
            assert not pii.pii_columns(contract), contract.name


def test_the_key_is_required_and_nothing_is_written_without_it(spark, settings, deliveries, monkeypatch):
    _ingest_all(spark, settings, deliveries)
    monkeypatch.delenv(pii.SECRET_ENV)
    with pytest.raises(PiiKeyError, match=pii.SECRET_ENV) as missing:
        build(spark, settings, WEEK, WEEK)
    assert TEST_PII_SECRET not in str(missing.value)
    monkeypatch.setenv(pii.SECRET_ENV, "too-short")
    with pytest.raises(PiiKeyError, match="too short") as short:
        build(spark, settings, WEEK, WEEK)
    assert "too-short" not in str(short.value), "an error never echoes the key"
    assert not any(delta_io.exists(spark, t, settings) for t in TABLES if t.layer in ("silver", "gold"))


def test_a_new_key_rebuilds_the_pseudonyms_and_lineage_names_only_its_id(spark, settings, deliveries, monkeypatch):
    _ingest_all(spark, settings, deliveries)
    build(spark, settings, WEEK, WEEK)
    before = version(spark, settings, SILVER_OUTLETS)
    build(spark, settings, WEEK, WEEK)
    assert version(spark, settings, SILVER_OUTLETS) == before, "same bronze, contract and key: no rebuild"

    rotated = "rotated-pii-key-fedcba9876543210fedcba9876543210"
    monkeypatch.setenv(pii.SECRET_ENV, rotated)
    build(spark, settings, WEEK, WEEK)
    keys = {r["outlet_id"]: r["contact_key"] for r in table(spark, settings, SILVER_OUTLETS).collect()}
    assert keys["O3"] == _hmac(rotated, EMAILS["O3"])
    sources = [r["source"] for r in table(spark, settings, CONSERVATION).collect() if r["source"]]
    assert any(pii.key_id(rotated.encode()) in s for s in sources)
    assert not any(k in s for s in sources for k in (rotated, TEST_PII_SECRET))
    assert version(spark, settings, BRONZE_OUTLETS) == 0, "bronze is never rewritten"


def test_a_column_nobody_classified_never_reaches_the_quarantine_in_clear(spark, settings, deliveries, tmp_path):
    """A provider adds `customer_email` to its sales: bronze keeps it, the quarantine record only names it."""
    ingest_references(spark, settings, deliveries)
    header = [*SALES_HEADER, "customer_email"]
    rows = [["O1", "P1", "2024-01-02", 5, 2.5, "", "", "", "eve@shopper.example"]]
    rows += [["O3", "P1", "2024-01-03", -1, 2.5, "", "", "", "frank@shopper.example"]]  # negative units
    ingest(spark, settings, "sales", write_csv(tmp_path / "new-column", "sales.csv", rows, header=header).parent)
    build(spark, settings, WEEK, WEEK)

    emails = {"eve@shopper.example", "frank@shopper.example"}
    assert emails <= _string_values(spark, settings, "bronze"), "bronze keeps the delivery as it came"
    (quarantined,) = table(spark, settings, QUARANTINE).filter(F.col("reason") == "negative_units").collect()
    record = json.loads(quarantined["record"])
    assert record["_unclassified"] == ["customer_email"] and "customer_email" not in record
    assert record["outlet_id"] == "O3" and record["units"] == -1.0
    assert not {v for v in _string_values(spark, settings, "silver") for e in emails if e in v}

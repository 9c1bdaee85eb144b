"""Contracts are valid ODCS v3 and carry what the jobs need."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

from lakehouse.contracts.model import load_contract, parse_contract
from lakehouse.errors import ContractError
from lakehouse.io.catalog import TABLES
from lakehouse.settings import REPO_ROOT

CONTRACTS = sorted((REPO_ROOT / "contracts").glob("*.yaml"))


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: p.stem)
def test_contract_is_valid_odcs(path: Path):
    model = OpenDataContractStandard.from_file(str(path))
    assert model.kind == "DataContract" and model.apiVersion == "v3.1.0"
    assert model.name == path.stem and model.version


def test_every_table_has_a_contract():
    assert {t.contract for t in TABLES} == {p.stem for p in CONTRACTS}


def test_silver_sales_rules_and_references():
    contract = load_contract("silver_sales")
    assert {r.code for r in contract.rules} == {
        "negative_units",
        "non_finite_units",
        "implausible_units",
        "non_positive_price",
        "non_finite_price",
        "implausible_price",
        "future_date",
    }
    assert [(r.column, r.table) for r in contract.references] == [
        ("outlet_id", "silver_outlets"),
        ("product_id", "silver_products"),
    ]
    assert contract.primary_key == ["outlet_id", "product_id", "sale_date"]
    assert contract.column("record_id").unique


def test_invalid_contract_is_a_clear_error():
    text = yaml.safe_dump({"apiVersion": "v3.1.0", "kind": "DataContract", "id": "x", "version": "1", "bogus": 1})
    with pytest.raises(ContractError, match="not a valid ODCS v3 contract"):
        parse_contract(text, "x.yaml")
    with pytest.raises(ContractError, match="no contract for table 'nope'"):
        load_contract("nope")

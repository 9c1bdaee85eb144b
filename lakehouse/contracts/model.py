"""Data contracts (Open Data Contract Standard v3 YAML) read into what the jobs need."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from open_data_contract_standard.model import OpenDataContractStandard, SchemaProperty

from lakehouse.errors import ContractError
from lakehouse.settings import load_settings


@dataclass(frozen=True)
class Column:
    """One property of a contract's table."""

    name: str
    logical_type: str
    physical_type: str
    required: bool = False
    primary_key: bool = False
    unique: bool = False
    classification: str | None = None
    transform: str | None = None


@dataclass(frozen=True)
class Rule:
    """A row rule: rows where `expression` is not true are quarantined with reason `code`."""

    code: str
    expression: str
    column: str | None
    description: str = ""


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key: `column` must exist in `table.to_column`."""

    column: str
    table: str
    to_column: str


@dataclass(frozen=True)
class Contract:
    """What the jobs read from one contract: columns, keys, rules, references."""

    name: str
    version: str
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...]
    references: tuple[ForeignKey, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"contract {self.name} has no column {name!r}")


def _rules(quality: list | None, column: str | None) -> list[Rule]:
    rules = []
    for q in quality or []:
        if q.type == "custom" and q.engine == "spark-sql":
            if not q.name or not isinstance(q.implementation, str):
                raise ContractError(f"spark-sql rule on {column or 'table'} needs a name and an implementation")
            rules.append(Rule(q.name, q.implementation, column, q.description or ""))
    return rules


def _references(prop: SchemaProperty) -> list[ForeignKey]:
    refs = []
    for rel in prop.relationships or []:
        if rel.type == "foreignKey" and isinstance(rel.to, str) and "." in rel.to:
            table, to_column = rel.to.split(".", 1)
            refs.append(ForeignKey(str(prop.name), table, to_column))
    return refs


def parse_contract(text: str, source: str = "<string>") -> Contract:
    """Validate YAML against the ODCS model and extract columns, rules and references."""
    try:
        odcs = OpenDataContractStandard(**yaml.safe_load(text))
    except Exception as exc:  # pydantic or YAML errors: name the file
        raise ContractError(f"{source}: not a valid ODCS v3 contract: {exc}") from exc
    if not odcs.schema_ or len(odcs.schema_) != 1:
        raise ContractError(f"{source}: expected exactly one schema object (one table per contract)")
    obj = odcs.schema_[0]
    columns, rules, refs = [], _rules(obj.quality, None), []
    for prop in obj.properties or []:
        if not prop.name or not prop.physicalType:
            raise ContractError(f"{source}: every property needs a name and a physicalType")
        columns.append(
            Column(
                name=prop.name,
                logical_type=prop.logicalType or "string",
                physical_type=prop.physicalType,
                required=bool(prop.required),
                primary_key=bool(prop.primaryKey),
                unique=bool(prop.unique),
                classification=prop.classification,
                transform=prop.transformLogic,
            )
        )
        rules += _rules(prop.quality, prop.name)
        refs += _references(prop)
    return Contract(str(odcs.name or obj.name), str(odcs.version), tuple(columns), tuple(rules), tuple(refs))


@cache
def _load(path: Path, mtime: float) -> Contract:
    return parse_contract(path.read_text(), str(path))


def load_contract(name: str, contracts_dir: Path | None = None) -> Contract:
    """Load `contracts/<name>.yaml` (the directory comes from settings unless given)."""
    path = (contracts_dir or load_settings().contracts_dir) / f"{name}.yaml"
    if not path.exists():
        raise ContractError(f"no contract for table {name!r} at {path}")
    return _load(path, path.stat().st_mtime)

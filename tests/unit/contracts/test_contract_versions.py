"""Contract versions: breaking changes need a new major version; `lakehouse contracts check` refuses them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from jobs import contracts as contracts_job
from lakehouse.contracts.model import Contract, parse_contract
from lakehouse.contracts.versions import compare, is_widening, problems

BASE_COLUMNS = [
    {"name": "outlet_id", "physicalType": "string", "required": True, "primaryKey": True},
    {"name": "units", "physicalType": "int", "required": True},
    {"name": "note", "physicalType": "string", "required": False},
]


def contract_yaml(version: str, columns: list[dict], name: str = "sales") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v3.1.0",
            "kind": "DataContract",
            "id": f"urn:test:{name}",
            "name": name,
            "version": version,
            "status": "active",
            "schema": [{"name": name, "physicalType": "table", "properties": columns}],
        }
    )


def contract(version: str, columns: list[dict]) -> Contract:
    return parse_contract(contract_yaml(version, columns))


def with_column(name: str, **changes: object) -> list[dict]:
    return [{**c, **changes} if c["name"] == name else c for c in BASE_COLUMNS]


@pytest.mark.parametrize(
    ("columns", "breaking"),
    [
        ([c for c in BASE_COLUMNS if c["name"] != "note"], True),  # removed
        (with_column("units", physicalType="string"), False),  # widened to string
        (with_column("units", physicalType="bigint"), False),  # widened
        (with_column("note", physicalType="int"), True),  # narrowed
        (with_column("note", required=True), True),  # optional -> required narrows what is accepted
        ([*BASE_COLUMNS, {"name": "extra", "physicalType": "double"}], False),  # optional column added
        ([*BASE_COLUMNS, {"name": "extra", "physicalType": "double", "required": True}], True),
    ],
)
def test_changes_are_marked_breaking_or_not(columns, breaking):
    changes = compare(contract("1.0.0", BASE_COLUMNS), contract("1.0.0", columns))
    assert changes and any(c.breaking for c in changes) == breaking


def test_a_breaking_change_needs_a_major_version():
    old, removed = contract("1.4.2", BASE_COLUMNS), [c for c in BASE_COLUMNS if c["name"] != "note"]
    (refusal,) = problems(old, contract("1.5.0", removed))
    assert "needs major version 2.0.0" in refusal and "note: removed" in refusal
    assert problems(old, contract("2.0.0", removed)) == []


def test_any_change_needs_a_new_version_and_versions_never_go_down():
    old, added = contract("1.4.2", BASE_COLUMNS), [*BASE_COLUMNS, {"name": "extra", "physicalType": "double"}]
    assert "changed without a new version" in problems(old, contract("1.4.2", added))[0]
    assert problems(old, contract("1.5.0", added)) == []
    assert problems(old, contract("1.4.3", added)) == []
    assert "went down" in problems(old, contract("1.4.1", BASE_COLUMNS))[0]
    assert problems(old, contract("1.4.2", BASE_COLUMNS)) == [], "same content, same version"
    assert "deleted" in problems(old, None)[0]


def test_decimal_and_date_widening():
    assert is_widening("decimal(10,2)", "decimal(12,2)") and is_widening("date", "timestamp")
    assert not is_widening("decimal(10,2)", "decimal(10,3)") and not is_widening("timestamp", "date")


def _write(folder: Path, version: str, columns: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sales.yaml").write_text(contract_yaml(version, columns))


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_the_command_refuses_a_breaking_change_against_a_directory_or_a_git_revision(tmp_path, monkeypatch, capsys):
    repo, previous = tmp_path / "repo", tmp_path / "previous"
    current = repo / "contracts"
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(current))
    _write(previous, "1.0.0", BASE_COLUMNS)
    _write(current, "1.0.0", BASE_COLUMNS)
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-q", "--allow-empty", "-m", "0")
    _git(repo, "add", "contracts")
    _git(repo, "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-q", "-m", "contracts")

    narrowed = with_column("note", physicalType="int")
    _write(current, "1.1.0", narrowed)
    for against in (str(previous), "HEAD"):
        assert contracts_job.main(["check", "--against", against]) == 1
        assert "needs major version 2.0.0" in capsys.readouterr().err
    assert contracts_job.main(["check", "--against", "HEAD~1"]) == 0, "a new contract is no change"
    _write(current, "2.0.0", narrowed)
    assert contracts_job.main(["check", "--against", "HEAD"]) == 0
    assert "note: type narrowed string -> int" in capsys.readouterr().out
    assert contracts_job.main(["check", "--against", "no-such-rev"]) == 2

"""The generated reference pages match the code: a new flag, table column or variable shows up in docs/."""

from __future__ import annotations

from lakehouse.cli import reference
from lakehouse.settings import VARIABLES


def test_generated_reference_pages_are_current():
    assert reference.stale() == [], "run `make docs`"


def test_the_pages_hold_every_command_table_and_variable():
    cli, tables, configuration = reference.cli(), reference.tables(), reference.configuration()
    for command in reference.COMMANDS:
        assert f"## `lakehouse {command}`" in cli
    assert "### `lakehouse models promote`" in cli and "--reason" in cli
    for table in reference.TABLES:
        assert f"## `{table.name}`" in tables
    for variable in VARIABLES:
        assert f"| `{variable.name}` |" in configuration


def test_a_stale_page_is_reported(tmp_path):
    for name, page in reference.PAGES.items():
        (tmp_path / name).write_text(page())
    assert reference.stale(tmp_path) == []
    (tmp_path / "configuration.md").write_text("old\n")
    assert reference.stale(tmp_path) == ["configuration.md"]

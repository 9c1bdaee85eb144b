"""The generated reference pages (docs/reference/): the CLI, the tables and the configuration, from the code.

`python -m lakehouse.cli.reference` (`make docs`) writes them; `--check` exits 1 naming the stale pages, and
tests/unit/cli/test_reference.py fails the same way, so a new flag, column or variable cannot go undocumented.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from lakehouse.cli.args import Parser
from lakehouse.cli.main import COMMANDS
from lakehouse.contracts.model import load_contract
from lakehouse.io.catalog import TABLES
from lakehouse.settings import REPO_ROOT, VARIABLES, load_settings

DOCS = REPO_ROOT / "docs" / "reference"
WIDTH = 100  # help text wraps at this width whatever the terminal is


def _header(title: str, source: str) -> list[str]:
    return [f"# {title}", "", f"<!-- Generated from {source} by `make docs`; a test fails when this page is stale. -->"]


def configuration() -> str:
    lines = _header("Configuration", "lakehouse/settings.py")
    lines += [
        "",
        "Every environment variable the platform reads (`lakehouse.settings.VARIABLES`). Policy (training, gate,",
        "effects, scoring, monitoring) is YAML: `lakehouse/policy.yaml`, overridden by the file `LAKEHOUSE_CONFIG`",
        "names.",
    ]
    for group in dict.fromkeys(v.group for v in VARIABLES):
        lines += ["", f"## {group.capitalize()}", "", "| variable | default | meaning |", "|---|---|---|"]
        lines += [f"| `{v.name}` | {v.default} | {v.meaning} |" for v in VARIABLES if v.group == group]
    return "\n".join(lines) + "\n"


def _helps(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(prog, help) of a parser and of every sub-command below it."""
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=WIDTH)
    found = [(parser.prog, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _helps(child)
    return found


def cli() -> str:
    lines = _header("CLI", "the job modules' arguments (jobs/*.py)")
    lines += [
        "",
        "`lakehouse <command>`; every command is also `python -m jobs.<module>`. Exit codes: lakehouse/errors.py.",
    ]
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        parser = Parser(prog=f"lakehouse {name}", description=module.__doc__)
        module.add_arguments(parser)
        for prog, text in _helps(parser):
            lines += ["", f"{'#' * (prog.count(' ') + 1)} `{prog}`", "", "```text", text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def tables() -> str:
    settings = load_settings({})
    lines = _header("Tables", "lakehouse/io/catalog.py and contracts/")
    lines += [
        "",
        "Every Delta table, under `$LAKEHOUSE_WAREHOUSE/<layer>/<table>`, with the columns its contract gives.",
    ]
    for table in TABLES:
        contract = load_contract(table.contract, settings.contracts_dir)
        lines += ["", f"## `{table.name}`", "", f"{table.description}.", ""]
        lines.append(f"Layer `{table.layer}`; contract `contracts/{table.contract}.yaml` version {contract.version}")
        if table.partition_by:
            lines[-1] += f"; partitioned by {', '.join(f'`{c}`' for c in table.partition_by)}"
        if contract.primary_key:
            lines[-1] += f"; key {', '.join(f'`{c}`' for c in contract.primary_key)}"
        lines[-1] += f"; {len(contract.rules)} row rules."
        lines += ["", "| column | type | required | classification |", "|---|---|---|---|"]
        for column in contract.columns:
            required = "yes" if column.required else ""
            lines.append(f"| `{column.name}` | {column.physical_type} | {required} | {column.classification or ''} |")
    return "\n".join(lines) + "\n"


PAGES = {"configuration.md": configuration, "cli.md": cli, "tables.md": tables}


def stale(docs: Path = DOCS) -> list[str]:
    """The generated pages whose file differs from what the code gives now."""
    return [name for name, page in PAGES.items() if not (docs / name).is_file() or (docs / name).read_text() != page()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakehouse.cli.reference", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale pages (exit 1 when any)")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        for name in names:
            print(f"docs/reference/{name} is stale: run `make docs`", file=sys.stderr)
        return 1 if names else 0
    DOCS.mkdir(parents=True, exist_ok=True)
    for name, page in PAGES.items():
        (DOCS / name).write_text(page())
        print(f"wrote docs/reference/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line: help, one-line errors with exit code 2, and the whole flow through `lakehouse`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lakehouse.catalog import TABLES
from lakehouse.cli import COMMANDS, main
from tests.conftest import write_csv


@pytest.mark.parametrize("module", sorted(set(COMMANDS.values())))
def test_every_job_module_runs_with_help(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "usage:" in done.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build", "--from", "someday", "--to", "2024-01-01"], "not a date (YYYY-MM-DD): 'someday'"),
        (["build", "--from", "2024-02-01", "--to", "2024-01-01"], "--to 2024-01-01 is before --from 2024-02-01"),
        (["ingest", "--source", "/no/such/delivery"], "--source /no/such/delivery does not exist"),
        (["ingest", "--kind", "customers", "--source", "."], "invalid choice: 'customers'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_are_one_line_errors_with_exit_code_2(argv, message, capsys, settings):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_whole_flow_through_the_cli(spark, settings, tmp_path, reference_deliveries, capsys):
    sales = write_csv(
        tmp_path / "s1",
        "s.csv",
        [["O1", "P1", "2024-01-01", 5, 2.5, 1, 0, 0], ["O1", "P2", "2024-01-02", -3, 1.5, 0, 1, 0]],
    ).parent
    assert main(["ingest", "--kind", "outlets", "--source", str(reference_deliveries["outlets"])]) == 0
    assert main(["ingest", "--kind", "products", "--source", str(reference_deliveries["products"])]) == 0
    assert main(["ingest", "--source", str(sales)]) == 0
    assert main(["build", "--from", "2024-01-01", "--to", "2024-01-07"]) == 0
    capsys.readouterr()
    assert main(["quarantine", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"rows": [{"table": "silver_sales", "reason": "negative_units", "rows": 1}], "rejected_files": []}
    assert main(["tables", "--json"]) == 0
    tables = {t["table"]: t for t in json.loads(capsys.readouterr().out)}
    assert set(tables) == {t.name for t in TABLES}
    assert tables["silver_sales"]["rows"] == 1 and tables["gold_features"]["rows"] == 1
    assert tables["bronze_sales"]["layer"] == "bronze" and isinstance(tables["bronze_sales"]["version"], int)

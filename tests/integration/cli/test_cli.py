"""The command line: help, one-line errors with exit code 2, and the whole flow through `lakehouse`."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from lakehouse.cli.main import COMMANDS, main
from lakehouse.errors import guarded
from lakehouse.io.catalog import TABLES
from tests.conftest import write_csv


@pytest.mark.parametrize("module", sorted(set(COMMANDS.values())))
def test_every_job_module_runs_with_help(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "usage:" in done.stdout


# Runs `lakehouse ARGV` in a fresh interpreter; its last stderr line names the job modules it imported.
LISTS_IMPORTED_JOBS = (
    "import sys; from lakehouse.cli.main import main\n"
    "try:\n    main(sys.argv[1:])\nfinally:\n"
    "    print(sorted(m for m in sys.modules if m.startswith('jobs.')), file=sys.stderr)"
)


def test_help_lists_every_command_without_importing_the_jobs():
    done = subprocess.run(
        [sys.executable, "-c", LISTS_IMPORTED_JOBS, "--help"], capture_output=True, text=True, check=False
    )
    assert done.stderr.strip().splitlines()[-1] == "[]"
    listed = " ".join(done.stdout.split())  # argparse wraps long summaries
    for name, module in COMMANDS.items():
        first_line = (importlib.import_module(module).__doc__ or "").strip().splitlines()[0]
        assert f"{name} {first_line}" in listed


def test_a_command_imports_only_its_own_job():
    done = subprocess.run(
        [sys.executable, "-c", LISTS_IMPORTED_JOBS, "tables", "--help"], capture_output=True, text=True, check=False
    )
    assert "--json" in done.stdout and "List every table" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "['jobs.tables']"


def test_errors_of_spark_side_modules_keep_their_exit_code(capsys):
    from lakehouse.errors import DeliveryError

    def refused() -> int:
        raise DeliveryError("delivery d1 refused")

    def broken() -> int:
        raise KeyError("not one of the platform's errors")

    assert guarded("lakehouse ingest", refused) == 1
    assert capsys.readouterr().err == "lakehouse ingest: error: delivery d1 refused\n"
    with pytest.raises(KeyError):
        guarded("lakehouse ingest", broken)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build", "--from", "someday", "--to", "2024-01-01"], "not a date (YYYY-MM-DD): 'someday'"),
        (["build", "--from", "2024-02-01", "--to", "2024-01-01"], "--to 2024-01-01 is before --from 2024-02-01"),
        (["ingest", "--source", "/no/such/delivery"], "--source /no/such/delivery does not exist"),
        (["ingest", "--kind", "customers", "--source", "."], "invalid choice: 'customers'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["recommendations", "--top", "-1"], "must be 0 or more: -1"),
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

"""Command times: what a user waits for. Imports with and without bytecode, `make run` on a fresh and on a used
home (Dominick's), and single CLI commands on that home, each timed by /usr/bin/time in a fresh process.

- imports: the same `python -c "import ..."` twice: with the venv's .pyc files (what setup leaves), and with
  bytecode out of reach (`PYTHONPYCACHEPREFIX` an empty folder and `PYTHONDONTWRITEBYTECODE=1`), which is what
  every process paid before setup compiled the venv.
- make run: `scripts/airflow_run.py` (what `make run` runs after setup) on a fresh LAKEHOUSE_HOME, then again
  on the same home; every table's Delta version before and after the second run.
  With --spark-submit, a third run on another fresh home with every Spark task a spark-submit (the production
  path), and its top recommendations against the in-process run's.
- commands: `lakehouse tables`, `models list`, `recommendations` on the make-run home; `ingest` of a one-file
  delivery into a fresh home, with the JVM class archive setup made (`make jvm-archive`) and without it
  (the two alternate, twice; the better of each is kept).
- where make run's time goes: each task's seconds as it printed them, per run.

- tests (--tests, a separate section): `make test-fast` and `make test` after setup, wall time and the
  pytest summary line.

Usage: python -m bench.commands [--results bench/RESULTS.md] [--spark-submit] [--tests | --only-tests]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import machine, write_section

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IMPORTS = {
    "Airflow (DagBag)": "import airflow.models.dagbag",
    "xgboost.spark + mlflow + sklearn": "import xgboost.spark, mlflow, sklearn",
    "Evidently": "import evidently, evidently.presets",
    "pyspark + delta + mlflow + pandas": "import pyspark.sql, delta, mlflow, pandas",
    "lakehouse CLI": "import lakehouse.cli.main",
}


def timed(argv: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> dict:
    """Wall seconds and peak RSS (MB) of one command, from /usr/bin/time; fails loudly if the command fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        done = subprocess.run(
            ["/usr/bin/time", "-o", out.name, "-f", "%e %M", *argv],
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        if log is not None:
            log.write_text(done.stdout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
        seconds, kb = out.read().split()[-2:]
    return {"s": float(seconds), "rss_mb": round(int(kb) / 1024), "stdout": done.stdout}


def imports() -> list[dict]:
    rows = []
    empty = Path(tempfile.mkdtemp(prefix="no-bytecode-"))
    uncompiled = {"PYTHONPYCACHEPREFIX": str(empty), "PYTHONDONTWRITEBYTECODE": "1"}
    for name, code in IMPORTS.items():
        timed([sys.executable, "-c", code])  # warm the OS file cache, so both rows read from memory
        without = timed([sys.executable, "-c", code], uncompiled)["s"]
        with_pyc = timed([sys.executable, "-c", code])["s"]
        rows.append({"what": name, "without_s": without, "with_s": with_pyc, "ratio": round(without / with_pyc, 1)})
    shutil.rmtree(empty, ignore_errors=True)
    return rows


def versions(home: Path) -> dict[str, int | None]:
    """Every table's Delta version, read by `lakehouse tables --json`."""
    out = timed([str(BIN / "lakehouse"), "tables", "--json"], {"LAKEHOUSE_HOME": str(home)})["stdout"]
    return {t["table"]: t["version"] for t in json.loads(out[out.index("[") :])}


def make_run(home: Path, connection: str | None = None) -> dict:
    """`make run`'s driver on `home` (scripts/airflow-env.sh sourced, as the Makefile does)."""
    env = {"LAKEHOUSE_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow")}
    if connection:
        env["AIRFLOW_CONN_SPARK_DEFAULT"] = connection
    command = f"source scripts/airflow-env.sh && exec {sys.executable} scripts/airflow_run.py"
    return timed(["bash", "-c", command], env, log=home.parent / f"{home.name}.out")


def top(stdout: str) -> list[str]:
    """The top-10 lines `make run` prints last (outlet, product, action, lift)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "outlet x product pairs have an action" in line)
    return [line for line in lines[start + 1 :] if line.strip()]


TASK_LINE = re.compile(r"\] +(\w+)\.(\w+): (\w+)(?: in (\d+)s)?$")


def task_times(stdout: str) -> list[tuple[str, str]]:
    """(dag.task, seconds or state) in the order make run printed them."""
    found = (TASK_LINE.search(line) for line in stdout.splitlines())
    return [(f"{m[1]}.{m[2]}", m[4] or m[3]) for m in found if m]


def test_suites(results: Path | None) -> None:
    """`make test-fast` then `make test` (setup already done, so make only runs pytest), timed."""
    lines = [f"Machine: {machine()}", "", "| command | wall s | pytest says |", "|---|---|---|"]
    for target in ("test-fast", "test"):
        done = timed(["make", "--no-print-directory", target])
        said = next((x.strip("= ") for x in reversed(done["stdout"].splitlines()) if " passed" in x), "?")
        lines.append(f"| make {target} | {done['s']:.0f} | {said} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if results:
        write_section(results, "tests", table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, help="write the tables into this file's `commands` section")
    parser.add_argument("--spark-submit", action="store_true", help="also run make run with spark-submit tasks")
    parser.add_argument("--work", type=Path, help="keep the homes here (default: a temporary folder)")
    parser.add_argument("--tests", action="store_true", help="also time make test-fast and make test")
    parser.add_argument("--only-tests", action="store_true", help="only time make test-fast and make test")
    args = parser.parse_args()
    if args.only_tests:
        test_suites(args.results)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-commands-"))
    work.mkdir(parents=True, exist_ok=True)
    data = REPO / ".lakehouse" / "deliveries"  # `make data`'s Dominick's deliveries, shared by every home
    os.environ.setdefault("LAKEHOUSE_DATA_DIR", str(data))

    import_rows = imports()
    home = work / "dominicks"
    shutil.rmtree(home, ignore_errors=True)
    first = make_run(home)
    before = versions(home)
    second = make_run(home)
    after = versions(home)
    changed = sorted(t for t in before if before[t] != after[t])
    lakehouse = str(BIN / "lakehouse")
    env = {"LAKEHOUSE_HOME": str(home)}
    commands = {
        "lakehouse tables": timed([lakehouse, "tables"], env),
        "lakehouse models list": timed([lakehouse, "models", "list"], env),
        "lakehouse recommendations": timed([lakehouse, "recommendations"], env),
    }
    one = work / "one-file" / "sales"
    one.mkdir(parents=True, exist_ok=True)
    (one / "sales.csv").write_text("outlet_id,product_id,sale_date,units,unit_price\nS1,P1,2024-01-02,3,2.5\n")
    ingests: dict[str, list[dict]] = {"with": [], "without": []}
    for _ in range(2):
        for archive in ingests:
            fresh = work / "one-file-home"
            shutil.rmtree(fresh, ignore_errors=True)
            env = {"LAKEHOUSE_HOME": str(fresh)} | ({} if archive == "with" else {"LAKEHOUSE_JVM_ARCHIVE": "/none"})
            ingests[archive].append(timed([lakehouse, "ingest", "--source", str(one)], env))
    for archive, runs in ingests.items():
        name = f"lakehouse ingest (one-file delivery, fresh home), {archive} the JVM class archive"
        commands[name] = min(runs, key=lambda r: r["s"])
    rows = [
        ("make run, fresh home (in-process Spark tasks)", first),
        ("make run again, same home", second),
        *commands.items(),
    ]
    same_top = None
    if args.spark_submit:
        connection = json.dumps({"conn_type": "spark", "host": "local[*]", "extra": {"deploy-mode": "client"}})
        submitted = make_run(work / "dominicks-spark-submit", connection)
        rows.insert(1, ("make run, fresh home (spark-submit per task)", submitted))
        same_top = top(submitted["stdout"]) == top(first["stdout"])

    lines = [
        f"Machine: {machine()}",
        "",
        "| imports | without bytecode s | with bytecode s | ratio |",
        "|---|---|---|---|",
        *(f"| {r['what']} | {r['without_s']} | {r['with_s']} | {r['ratio']} |" for r in import_rows),
        "",
        "| command | wall s | peak RSS MB |",
        "|---|---|---|",
        *(f"| {name} | {r['s']:.1f} | {r['rss_mb']} |" for name, r in rows),
        "",
        f"Second make run: Delta versions changed for {changed or 'no table'} ({len(after)} tables).",
        "",
        "| make run task | fresh home s | same home again s |",
        "|---|---|---|",
        *(
            f"| {a[0]} | {a[1]} | {b[1] if b[0] == a[0] else '?'} |"
            for a, b in zip(task_times(first["stdout"]), task_times(second["stdout"]), strict=False)
        ),
    ]
    if same_top is not None:
        lines.append(f"Top 10 recommendations of the spark-submit and in-process runs identical: {same_top}.")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.results:
        write_section(args.results, "commands", table)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    if args.tests:
        test_suites(args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

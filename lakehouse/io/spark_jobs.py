"""A platform job run inside the calling process, on that process's warm Spark session.

`make run` runs the DAGs with `dag.test()`, which runs every task in one process. Started there, the jobs
share one Spark session instead of paying a cold JVM per `spark-submit` (about 25 s each). The job's code
path is the same `jobs.<name>.main(argv)` that spark-submit runs; what this module adds is that a job
finds the session as a fresh spark-submit would: its own environment (the actor, the PII key), and no
SQL conf, cached data, temporary view or function, or open MLflow run left by the job before it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@contextmanager
def environment(extra: Mapping[str, str]) -> Iterator[None]:
    """`os.environ` with `extra` for the duration, then exactly as before (nothing added stays)."""
    saved = dict(os.environ)
    os.environ.update(extra)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class SessionState:
    """What a job may change in a shared session: SQL conf, temporary views and functions."""

    conf: dict[str, str]
    views: frozenset[str]
    functions: frozenset[str]


def session_state(spark: Any) -> SessionState:
    views = frozenset(t.name for t in spark.catalog.listTables() if t.isTemporary)
    functions = frozenset(r[0] for r in spark.sql("SHOW USER FUNCTIONS").collect())
    return SessionState(dict(spark.conf.getAll), views, functions)


def restore(spark: Any, before: SessionState) -> None:
    """Undo what a job left in the session (see SessionState), and drop everything it cached."""
    after = session_state(spark)
    for key, value in after.conf.items():
        if key not in before.conf and spark.conf.isModifiable(key):
            spark.conf.unset(key)
        elif before.conf.get(key, value) != value and spark.conf.isModifiable(key):
            spark.conf.set(key, before.conf[key])
    for view in after.views - before.views:
        spark.catalog.dropTempView(view)
    for function in after.functions - before.functions:
        spark.sql(f"DROP TEMPORARY FUNCTION IF EXISTS {function}")
    spark.catalog.clearCache()
    for rdd in list(spark.sparkContext._jsc.getPersistentRDDs().values()):
        rdd.unpersist(False)


def _end_mlflow_runs() -> None:
    """A job that failed inside an MLflow run leaves it open in this process; close it as FAILED."""
    if "mlflow" not in sys.modules:
        return
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run(status="FAILED")


def run_job(module: str, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """`python -m <module> <argv>` in this process with `env` added; returns the job's exit code.

    The session is the active one, or one made by `get_spark` from the settings in `env` (the Spark
    master, driver memory) and then kept for the next job.
    """
    from lakehouse.io.spark import get_spark

    with environment(env):
        spark = get_spark("lakehouse-in-process")
        before = session_state(spark)
        try:
            code = importlib.import_module(module).main(list(argv))
        finally:
            _end_mlflow_runs()
            restore(spark, before)
    return int(code or 0)

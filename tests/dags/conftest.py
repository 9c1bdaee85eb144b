"""Airflow for the DAG tests: a throwaway AIRFLOW_HOME with SQLite, set before anything imports Airflow
(its configuration is read at import), the repository's dags/ folder, and spark_default on local[2]."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
SPARK_DEFAULT = '{"conn_type": "spark", "host": "local[2]", "extra": {"deploy-mode": "client"}}'

os.environ.update(
    AIRFLOW_HOME=tempfile.mkdtemp(prefix="airflow-home-"),
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW_CONN_SPARK_DEFAULT=SPARK_DEFAULT,
)


@pytest.fixture(scope="session")
def dagbag():
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), include_examples=False)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh metadata database (dag.test needs one)."""
    from airflow.utils import db

    db.resetdb()

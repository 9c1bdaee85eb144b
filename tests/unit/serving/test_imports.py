"""The serving path loads no pyspark: neither its modules nor `lakehouse serve`'s job, nor MLflow's client and
the serving flavour there."""

from __future__ import annotations

import json
import subprocess
import sys

from lakehouse.settings import REPO_ROOT

PROBE = """
import json, sys
import jobs.serve, jobs.serve_token, lakehouse.serving.app, lakehouse.serving.serve_flow
def pyspark():
    return [m for m in sys.modules if m.split(".")[0] == "pyspark" and sys.modules[m] is not None]
loaded = pyspark()
from lakehouse.serving.serve_flow import keep_pyspark_out
keep_pyspark_out()
from mlflow import MlflowClient  # what the refresher imports to read @champion
import lakehouse.ml.serving_flavour, xgboost  # the what-if's model: the pyfunc flavour and its booster
print(json.dumps({"before": loaded, "after": pyspark()}))
"""


def test_serving_imports_no_pyspark_and_mlflow_does_without_it():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == {"before": [], "after": []}


def test_without_the_guard_mlflow_would_load_pyspark():
    """What keep_pyspark_out is for: the probe above would find pyspark modules without it."""
    probe = "import sys; from mlflow import MlflowClient; print(sum(m.startswith('pyspark') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) > 0

#!/usr/bin/env bash
# Install the platform under PREFIX: what docker/Dockerfile RUNs, and what tests/deploy/test_image.py runs
# outside Docker. Steps, in order (all of them by default):
#   deps     a venv at PREFIX/venv holding exactly docker/requirements.lock (uv; hashes checked)
#   jars     the Spark jars of scripts/jars.pom.xml in PREFIX/jars (Maven; kept if already complete)
#   project  this checkout into the venv, editable and without deps, so the code runs from the checkout:
#            the DAGs find scripts/spark_job.py and contracts/ beside the package, as in a checkout
#   check    docker/smoke_check.py: the CLI, the DAGs parse, Spark writes and reads a Delta table
# Needs uv on PATH and a Python 3.11 (PYTHON: a version or an interpreter, default 3.11); the jars step
# needs Java 17 and Maven.
set -euo pipefail
usage="usage: install.sh PREFIX [deps|jars|project|check ...]"
prefix="${1:?$usage}"
shift
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(deps jars project check)
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$prefix/venv"

deps() {
  command -v uv >/dev/null || { echo "uv not found: install it (pip install uv)" >&2; exit 1; }
  [ -x "$venv/bin/python" ] || uv venv -q --python "${PYTHON:-3.11}" "$venv"
  # nvidia-nccl-cu12 (xgboost's multi-GPU collectives, ~470 MB) is left out of the lock: training runs on CPUs.
  uv pip sync -q --python "$venv/bin/python" --require-hashes --compile-bytecode "$repo/docker/requirements.lock"
}

jars() {
  [ -f "$prefix/jars/.complete" ] || "$repo/scripts/fetch_jars.sh" "$prefix/jars"
}

project() {
  command -v uv >/dev/null || { echo "uv not found: install it (pip install uv)" >&2; exit 1; }
  uv pip install -q --python "$venv/bin/python" --no-deps -e "$repo"
  # The image runs from compiled modules: Python cannot write .pyc files under a read-only root.
  "$venv/bin/python" -m compileall -q -j 0 "$repo/lakehouse" "$repo/jobs" "$repo/dags" "$repo/scripts" >/dev/null
}

check() {
  local scratch
  scratch="$(mktemp -d)"
  # The image's PATH (spark-submit finds Spark through the venv's python3) and a throwaway home: the check
  # never writes the image's (or the caller's) Airflow or lakehouse state.
  PATH="$venv/bin:$PATH" AIRFLOW_HOME="$scratch/airflow" AIRFLOW__CORE__LOAD_EXAMPLES=False LAKEHOUSE_HOME="$scratch/home" \
    LAKEHOUSE_JARS_DIR="$prefix/jars" LAKEHOUSE_DRIVER_MEMORY=1g LAKEHOUSE_SPARK_MASTER='local[1]' \
    "$venv/bin/python" "$repo/docker/smoke_check.py" "$repo/dags"
  rm -rf "$scratch"
}

for step in "${steps[@]}"; do
  case "$step" in deps | jars | project | check) ;; *) echo "$usage" >&2 && exit 2 ;; esac
done
for step in "${steps[@]}"; do
  echo "install.sh: $step"
  "$step"
done

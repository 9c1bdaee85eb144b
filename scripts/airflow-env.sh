# Airflow on embedded defaults, for `make up` and by hand: `source scripts/airflow-env.sh`.
# State under $LAKEHOUSE_HOME/airflow (SQLite metadata), the repository's dags/, local Spark.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LAKEHOUSE_HOME="${LAKEHOUSE_HOME:-$repo/.lakehouse}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$LAKEHOUSE_HOME/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# The LocalExecutor starts one worker process per slot (32 by default, ~150 MB each). The writers' pool
# runs one Spark task at a time anyway; four slots leave room for sensors and short Python tasks.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
# Tasks report to the API server's execution API: without this they fail with 'Connection refused'.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${AIRFLOW__API__PORT}/execution/"
# Local use only: every UI user is an admin, no password. Never set this in a deployment.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
# Without a spark_default connection the Spark provider silently submits to YARN. On a local master the jobs run
# inside the task's process ("in-process", lakehouse.orchestration.SparkJob): `make run`'s dag.test() runs every
# task in one process, so they share one warm Spark session instead of a cold spark-submit each. Any other
# master (a cluster) gets spark-submit, as in a deployment.
spark_master="${LAKEHOUSE_SPARK_MASTER:-local[*]}"
case "$spark_master" in
  local*) spark_extra='{"deploy-mode": "client", "in-process": true}' ;;
  *) spark_extra='{"deploy-mode": "client"}' ;;
esac
export AIRFLOW_CONN_SPARK_DEFAULT="${AIRFLOW_CONN_SPARK_DEFAULT:-{\"conn_type\": \"spark\", \"host\": \"$spark_master\", \"extra\": $spark_extra}}"
export PATH="$repo/.venv/bin:$PATH"
# The key that pseudonymises personal data in silver, as Airflow's connection `lakehouse_pii` (password).
# Local use: a random key made once per LAKEHOUSE_HOME, kept readable by its owner only. A deployment
# gives the connection from its secrets instead (helm/). Keep the key: a new one changes every pseudonym.
if [ -z "${AIRFLOW_CONN_LAKEHOUSE_PII:-}" ]; then
  pii_key_file="$LAKEHOUSE_HOME/pii.key"
  if [ ! -s "$pii_key_file" ]; then
    mkdir -p "$LAKEHOUSE_HOME"
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' > "$pii_key_file")
  fi
  export AIRFLOW_CONN_LAKEHOUSE_PII="{\"conn_type\": \"generic\", \"password\": \"$(cat "$pii_key_file")\"}"
fi

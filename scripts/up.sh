#!/usr/bin/env bash
# `make up`: the Airflow UI (api-server, scheduler, dag-processor) and the MLflow UI on localhost,
# in the background, logs and pids under $AIRFLOW_HOME/services. `make down` (scripts/up.sh stop) stops them.
set -euo pipefail
source "$(dirname "$0")/airflow-env.sh"
services="$AIRFLOW_HOME/services"
mkdir -p "$services"

stop() {
  for pidfile in "$services"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null && echo "stopped $(basename "$pidfile" .pid)"
    rm -f "$pidfile"
  done
}

start() {  # name, command...
  local name=$1; shift
  if [ -e "$services/$name.pid" ] && kill -0 "$(cat "$services/$name.pid")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$services/$name.pid"))"; return
  fi
  nohup "$@" >"$services/$name.log" 2>&1 &
  echo $! >"$services/$name.pid"
  echo "started $name (log $services/$name.log)"
}

if [ "${1:-start}" = stop ]; then stop; exit 0; fi

airflow db migrate >"$services/db-migrate.log" 2>&1 || { cat "$services/db-migrate.log"; exit 1; }
python -c 'from lakehouse.orchestration import create_pools; create_pools()' >>"$services/db-migrate.log" 2>&1 \
  || { cat "$services/db-migrate.log"; exit 1; }
start api-server airflow api-server --port "$AIRFLOW__API__PORT"
start scheduler airflow scheduler
start dag-processor airflow dag-processor
mkdir -p "$LAKEHOUSE_HOME/mlflow"
start mlflow mlflow ui --host 127.0.0.1 --port "${MLFLOW_PORT:-5000}" \
  --backend-store-uri "sqlite:///$LAKEHOUSE_HOME/mlflow/mlflow.db"
for _ in $(seq 60); do
  curl -sf "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" >/dev/null && break
  sleep 2
done
echo "Airflow UI: http://127.0.0.1:$AIRFLOW__API__PORT   MLflow UI: http://127.0.0.1:${MLFLOW_PORT:-5000}"
echo "CLI: source scripts/airflow-env.sh && airflow dags list   Stop: make down"

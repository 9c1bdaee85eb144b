#!/usr/bin/env bash
# The image's entrypoint, under tini. Any command runs as given: `airflow ...`, the official chart's
# `bash -c "exec airflow scheduler"`, `lakehouse ...`, `spark-submit ...`. Spark on Kubernetes starts its
# driver and executor pods from an image with `driver ...` or `executor` as arguments and the settings in
# SPARK_* variables, as Spark's own images' entrypoint expects: those two are handled here the same way,
# with the pyspark installed in the venv as SPARK_HOME, so this image is also spark.kubernetes.container.image.
# `serve` runs the recommendations API (`lakehouse serve`, its settings from LAKEHOUSE_SERVE_* variables), as
# helm/lakehouse's serving Deployment starts it.
set -euo pipefail

case "${1:-}" in
  serve)
    shift
    exec lakehouse serve "$@"
    ;;
  driver)
    shift
    exec spark-submit --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}" --deploy-mode client "$@"
    ;;
  executor)
    # The executor's JVM options arrive as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in order.
    readarray -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
    classpath="${SPARK_CONF_DIR:-$SPARK_HOME/conf}:${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}$SPARK_HOME/jars/*"
    exec java "${java_opts[@]}" -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" -cp "$classpath" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" --cores "$SPARK_EXECUTOR_CORES" \
      --app-id "$SPARK_APPLICATION_ID" --hostname "$SPARK_EXECUTOR_POD_IP" \
      --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  *)
    exec "$@"
    ;;
esac

#!/usr/bin/env bash
# Resolve the Delta Lake jars from Maven Central into a local cache dir (once); Spark loads them from there.
set -euo pipefail
dest="${1:?usage: fetch_jars.sh DEST_DIR}"
artifacts=(io.delta:delta-spark_2.13:4.0.1 io.delta:delta-storage:4.0.1)
command -v java >/dev/null || { echo "Java not found: install OpenJDK 17 (apt-get install -y openjdk-17-jdk-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "Maven not found: install it (apt-get install -y maven) to fetch the Delta jars" >&2; exit 1; }
mkdir -p "$dest"
for gav in "${artifacts[@]}"; do
  IFS=: read -r _group artifact version <<<"$gav"
  [ -f "$dest/$artifact-$version.jar" ] && continue
  mvn -q -B dependency:copy -Dartifact="$gav" -DoutputDirectory="$dest" -Dmdep.overWriteIfNewer=true
done
ls "$dest"

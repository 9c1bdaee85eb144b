#!/usr/bin/env bash
# Resolve the jars of scripts/jars.pom.xml (Delta Lake, hadoop-aws + AWS SDK) from Maven Central into a
# local cache dir, once; Spark loads every jar there. Maven keeps its own cache in ~/.m2.
set -euo pipefail
dest="${1:?usage: fetch_jars.sh DEST_DIR}"
pom="$(dirname "$0")/jars.pom.xml"
command -v java >/dev/null || { echo "Java not found: install OpenJDK 17 (apt-get install -y openjdk-17-jdk-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "Maven not found: install it (apt-get install -y maven) to fetch the Spark jars" >&2; exit 1; }
mkdir -p "$dest"
rm -f "$dest"/*.jar
mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest"
touch "$dest/.complete"
echo "jars in $dest: $(ls "$dest"/*.jar | wc -l)"

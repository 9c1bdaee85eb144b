"""The class-data-sharing archive setup makes (scripts/jvm_archive.py) is what a Spark driver maps.

A driver started as the jobs start it, with the JVM's class-load log on, must take Spark's and Delta's
classes from the archive ("shared objects file"), not from their jars.
"""

from __future__ import annotations

import os
import subprocess
import sys

from lakehouse.settings import load_settings


def test_a_driver_maps_spark_and_delta_classes_from_the_archive(tmp_path):
    archive = load_settings().jvm_archive
    assert archive.is_file(), f"setup (`make jvm-archive`) made no archive at {archive}"
    log = tmp_path / "classes.log"
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(tmp_path / "home"),
        "LAKEHOUSE_DRIVER_JAVA_OPTIONS": f"-Xlog:class+load=info:file={log}",
    }
    code = (
        "from lakehouse.io.spark import get_spark; "
        f"spark = get_spark('archive-check'); spark.range(3).write.format('delta').save({str(tmp_path / 't')!r})"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=300)
    sources = {}
    for line in log.read_text().splitlines():
        for name in ("org.apache.spark.SparkContext ", "org.apache.spark.sql.delta.DeltaLog "):
            if name in line:
                sources[name.strip()] = line.split("source:", 1)[1].strip()
    assert sources == {
        "org.apache.spark.SparkContext": "shared objects file (top)",
        "org.apache.spark.sql.delta.DeltaLog": "shared objects file (top)",
    }, sources

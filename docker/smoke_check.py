"""Smoke check of an installed image (docker/install.sh's last step): `python smoke_check.py DAGS_DIR`.

Run with the installed venv's Python and a throwaway LAKEHOUSE_HOME and AIRFLOW_HOME. Checks what every
deployment needs: the CLI starts, every DAG file parses, the venv's spark-submit is the pinned Spark, the
model libraries load, and Spark with the installed jars writes and reads a Delta table and finds S3A.
Exits non-zero at the first failure; prints `smoke check: ok` at the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
JVM_CLASSES = (
    "org.apache.hadoop.fs.s3a.S3AFileSystem",  # hadoop-aws
    "software.amazon.awssdk.services.s3.S3Client",  # the AWS SDK v2 modules S3A uses
    "software.amazon.awssdk.services.sts.StsClient",
)


def check_cli() -> None:
    """`lakehouse --help` lists the commands."""
    out = subprocess.run([BIN / "lakehouse", "--help"], check=True, capture_output=True, text=True).stdout
    assert "ingest" in out and "train" in out, out


def check_dags(dags_dir: Path) -> None:
    """Every DAG file imports without error and defines a DAG."""
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_dir), include_examples=False)
    assert not bag.import_errors, bag.import_errors
    files = sorted(path.name for path in dags_dir.glob("*.py"))
    loaded = sorted({Path(dag.fileloc).name for dag in bag.dags.values()})
    assert loaded == files, f"DAG files {files}, files that define a DAG {loaded}"
    print(f"dags: {', '.join(sorted(bag.dag_ids))}")


def check_spark_submit() -> None:
    """The venv's spark-submit, which the DAGs' Spark tasks run, is the pinned Spark."""
    import pyspark

    result = subprocess.run([BIN / "spark-submit", "--version"], check=True, capture_output=True, text=True)
    assert f"version {pyspark.__version__}" in result.stdout + result.stderr, result.stderr


def check_models() -> None:
    """xgboost's native library trains (without the NCCL wheel), and MLflow and Evidently import."""
    import evidently  # noqa: F401
    import mlflow  # noqa: F401
    import numpy as np
    import xgboost

    x = np.arange(20, dtype=float).reshape(10, 2)
    model = xgboost.XGBRegressor(n_estimators=2, max_depth=2).fit(x, x[:, 0])
    assert model.predict(x).shape == (10,)


def check_delta(home: Path) -> None:
    """Spark with the installed jars writes, appends and reads a Delta table, and loads the S3A classes."""
    from delta.tables import DeltaTable

    from lakehouse.io.spark import get_spark

    spark = get_spark("smoke-check", conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "1"})
    try:
        path = str(home / "smoke_delta")
        spark.range(3).write.format("delta").save(path)
        spark.range(3, 5).write.format("delta").mode("append").save(path)
        ids = sorted(row.id for row in spark.read.format("delta").load(path).collect())
        assert ids == [0, 1, 2, 3, 4], ids
        versions = sorted(row.version for row in DeltaTable.forPath(spark, path).history().collect())
        assert versions == [0, 1], versions
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        for name in JVM_CLASSES:
            jvm.java.lang.Class.forName(name, False, loader)
    finally:
        spark.stop()


def main() -> None:
    from lakehouse.settings import load_settings

    check_cli()
    check_dags(Path(sys.argv[1]))
    check_spark_submit()
    check_models()
    check_delta(load_settings().home)
    print("smoke check: ok")


if __name__ == "__main__":
    main()

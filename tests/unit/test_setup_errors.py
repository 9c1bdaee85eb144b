"""A machine without Java or the Delta jars gets one actionable line, not a stack trace."""

from __future__ import annotations

import pytest

from lakehouse.errors import SetupError, UnavailableError, guarded, unavailable
from lakehouse.io.spark import _check_java, jar_paths
from lakehouse.settings import driver_java_options, load_settings


def test_missing_delta_jars_name_the_files_and_the_fix(tmp_path):
    settings = load_settings({"LAKEHOUSE_JARS_DIR": str(tmp_path), "LAKEHOUSE_HOME": str(tmp_path)})
    expected = r"delta-spark_2.13-4.0.1.jar, delta-storage-4.0.1.jar, hadoop-aws-3.4.1.jar; run `make jars`"
    with pytest.raises(SetupError, match=expected):
        jar_paths(settings)


def test_missing_java_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SetupError, match="Java not found: install OpenJDK 17"):
        _check_java(load_settings({"LAKEHOUSE_HOME": str(tmp_path)}))
    with pytest.raises(SetupError, match="Java not found"):
        _check_java(load_settings({"LAKEHOUSE_HOME": str(tmp_path), "JAVA_HOME": str(tmp_path)}))


def test_setup_errors_exit_3_with_one_line(capsys):
    def fail() -> int:
        raise SetupError("Java not found: install OpenJDK 17")

    assert guarded("lakehouse build", fail) == 3
    assert capsys.readouterr().err == "lakehouse build: setup error: Java not found: install OpenJDK 17\n"


def test_local_drivers_map_the_class_archive_when_setup_made_one(tmp_path):
    archive = tmp_path / "spark.jsa"
    env = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_JVM_ARCHIVE": str(archive)}
    settings = load_settings(env)
    assert "SharedArchiveFile" not in driver_java_options(settings)  # none made yet
    archive.write_bytes(b"an archive")
    assert f"-XX:SharedArchiveFile={archive}" in driver_java_options(settings).split()
    # A driver pod on Kubernetes has another file system: it gets no path of this machine.
    assert "SharedArchiveFile" not in driver_java_options(settings, master="k8s://https://kube:443")
    extra = {**env, "LAKEHOUSE_DRIVER_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1"}
    assert driver_java_options(load_settings(extra)).endswith("-XX:TieredStopAtLevel=1")


def test_an_mlflow_server_that_does_not_answer_exits_4_with_one_line(monkeypatch, capsys):
    """The real MLflow client against a port nobody listens on: its error after the retries becomes exit code 4."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from tests.integration.servers import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    url = f"http://127.0.0.1:{free_port()}"

    def train() -> int:
        mlflow.MlflowClient(tracking_uri=url, registry_uri=url).search_experiments()
        return 0

    with pytest.raises(MlflowException) as raised:
        train()
    assert isinstance(unavailable(raised.value), UnavailableError)
    assert unavailable(MlflowException("RESOURCE_DOES_NOT_EXIST: no model 'x'")) is None
    assert unavailable(ValueError("API request to x failed with exception Max retries exceeded")) is None

    assert guarded("lakehouse train", train) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"lakehouse train: error: the MLflow tracking server did not answer {url}/api/")
    assert "run it again once the server is back" in err and "Traceback" not in err

"""One module reads the environment: lakehouse/settings.py, whose VARIABLES declare every variable read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lakehouse.errors import UsageError
from lakehouse.settings import REPO_ROOT, VARIABLES, _read, load_settings, pii_secret

# Modules that change the process environment without reading configuration from it: pyspark's workers
# need PYSPARK_PYTHON & co. exported, and an in-process job runs in a scoped copy of the environment.
WRITERS = {"lakehouse/io/spark.py": {"setdefault"}, "lakehouse/io/spark_jobs.py": {"update", "clear", "dict"}}


def environment_uses(path: Path) -> list[tuple[int, str]]:
    """(line, how) for each use of os.environ / os.getenv in a module: the method called on it, or 'read'."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            if node.attr == "getenv":
                uses.append((node.lineno, "read"))
            elif node.attr == "environ":
                parent = parents.get(node)
                if isinstance(parent, ast.Attribute):
                    how = parent.attr
                elif isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name):
                    how = parent.func.id
                else:
                    how = "read"
                uses.append((node.lineno, how))
    return sorted(uses)


def test_only_settings_reads_the_environment():
    offenders = []
    for folder in ("lakehouse", "jobs", "dags"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            name = path.relative_to(REPO_ROOT).as_posix()
            if name == "lakehouse/settings.py":
                continue
            allowed = WRITERS.get(name, set())
            offenders += [f"{name}:{line} ({how})" for line, how in environment_uses(path) if how not in allowed]
    assert not offenders, f"read the environment through lakehouse.settings: {offenders}"


def test_the_check_sees_a_read(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nA = os.environ.get('X')\nB = os.getenv('Y')\nC = 'Z' in os.environ\n")
    assert sorted(environment_uses(probe)) == [(2, "get"), (3, "read"), (4, "read")]


def test_defaults_are_written_once_and_resolve_under_the_home(tmp_path):
    settings = load_settings({"LAKEHOUSE_HOME": str(tmp_path)})
    assert settings.warehouse == str(tmp_path / "warehouse")
    assert settings.landing == str(tmp_path / "deliveries" / "dominicks")
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert (settings.driver_memory, settings.shuffle_partitions, settings.spark_master) == ("4g", "8", "local[*]")
    assert settings.config_file is None and not settings.under_spark_submit and not settings.spark_paths_in_image
    assert settings.aws_region == "us-east-1" and settings.s3_endpoint is None


def test_variables_override_and_empty_counts_as_unset(tmp_path):
    env = {
        "LAKEHOUSE_HOME": str(tmp_path),
        "LAKEHOUSE_DRIVER_MEMORY": "2g",
        "LAKEHOUSE_LANDING": "s3a://bucket/landing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "LAKEHOUSE_SPARK_PATHS_IN_IMAGE": "true",
        "MLFLOW_TRACKING_URI": "",
        "PYSPARK_GATEWAY_PORT": "40000",
    }
    settings = load_settings(env)
    assert settings.driver_memory == "2g" and settings.landing == "s3a://bucket/landing"
    assert settings.s3_endpoint == "http://127.0.0.1:9000" and settings.aws_region == "eu-west-1"
    assert settings.spark_paths_in_image and settings.under_spark_submit
    assert settings.tracking_uri.startswith("sqlite:///")
    assert load_settings({**env, "AWS_ENDPOINT_URL_S3": "http://s3:9000"}).s3_endpoint == "http://s3:9000"


def test_the_pii_key_stays_out_of_settings():
    env = {"LAKEHOUSE_PII_SECRET": " k" * 20}
    assert pii_secret(env) == ("k " * 20).strip()
    assert "LAKEHOUSE_PII_SECRET" not in repr(load_settings(env)) and "k k" not in repr(load_settings(env))


def test_an_undeclared_variable_cannot_be_read():
    with pytest.raises(KeyError, match="not declared"):
        _read({}, "LAKEHOUSE_SOMETHING_NEW")
    assert len({v.name for v in VARIABLES}) == len(VARIABLES)


def test_the_service_listens_on_loopback_by_default_and_reads_its_tokens_under_the_home(tmp_path):
    settings = load_settings({"LAKEHOUSE_HOME": str(tmp_path)})
    assert (settings.serve_host, settings.serve_port) == ("127.0.0.1", 8000)
    assert settings.tokens_file == tmp_path / "serving" / "tokens.yaml"
    mounted = load_settings({"LAKEHOUSE_SERVE_TOKENS": "/etc/lakehouse/tokens", "LAKEHOUSE_SERVE_PORT": "9001"})
    assert mounted.tokens_file == Path("/etc/lakehouse/tokens") and mounted.serve_port == 9001
    with pytest.raises(UsageError, match="LAKEHOUSE_SERVE_PORT"):
        load_settings({"LAKEHOUSE_SERVE_PORT": "http"})

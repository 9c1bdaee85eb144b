"""A machine without Java or the Delta jars gets one actionable line, not a stack trace."""

from __future__ import annotations

import pytest

from lakehouse.config import load_settings
from lakehouse.runtime import guarded
from lakehouse.spark import SetupError, _check_java, jar_paths


def test_missing_delta_jars_name_the_files_and_the_fix(tmp_path):
    settings = load_settings({"LAKEHOUSE_JARS_DIR": str(tmp_path), "LAKEHOUSE_HOME": str(tmp_path)})
    expected = r"delta-spark_2.13-4.0.1.jar, delta-storage-4.0.1.jar, hadoop-aws-3.4.1.jar; run `make jars`"
    with pytest.raises(SetupError, match=expected):
        jar_paths(settings)


def test_missing_java_says_how_to_install_it(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SetupError, match="Java not found: install OpenJDK 17"):
        _check_java()


def test_setup_errors_exit_3_with_one_line(capsys):
    def fail() -> int:
        raise SetupError("Java not found: install OpenJDK 17")

    assert guarded("lakehouse build", fail) == 3
    assert capsys.readouterr().err == "lakehouse build: setup error: Java not found: install OpenJDK 17\n"

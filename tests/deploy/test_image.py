"""The image's install steps (docker/install.sh) outside Docker, and that docker/Dockerfile runs them.

No Docker engine runs here: the slow test installs into a temporary prefix with the same script the
Dockerfile RUNs (uv's cache and ~/.m2 make a second run quick) and checks what it installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from lakehouse.io.spark import REQUIRED_JARS
from lakehouse.settings import load_settings
from tests.integration.servers import HOST, _answers, _wait, free_port

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
INSTALL = REPO / "docker" / "install.sh"
LOCK = REPO / "docker" / "requirements.lock"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) per Dockerfile line, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def locked_pins() -> dict[str, str]:
    """Package name (normalised) -> version pinned in docker/requirements.lock."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", LOCK.read_text(), flags=re.M)
    return {normalise(name): version for name, version in pins}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def install_steps() -> list[str]:
    """The steps install.sh runs by default, from its `steps=(...)` line."""
    match = re.search(r"steps=\(([a-z ]+)\)", INSTALL.read_text())
    assert match, "install.sh lost its default steps line"
    return match.group(1).split()


def test_dockerfile_runs_every_install_step() -> None:
    runs = [args for instruction, args in dockerfile_instructions() if instruction == "RUN"]
    steps_run = [
        step
        for args in runs
        for m in re.finditer(r"docker/install\.sh /opt/lakehouse ([a-z ]+)", args)
        for step in m.group(1).split()
    ]
    assert sorted(steps_run) == sorted(install_steps())
    # The jars stage resolves with the script install.sh's jars step runs (no second list of jars).
    assert any("scripts/fetch_jars.sh /opt/lakehouse/jars" in args for args in runs)
    assert "scripts/fetch_jars.sh" in INSTALL.read_text()


def test_dockerfile_pins_its_bases_and_runs_as_non_root() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    stages: set[str] = set()
    for instruction, value in instructions:
        if instruction != "FROM":
            continue
        image, *alias = value.split(" AS ")
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image.strip())
        if image not in stages:
            _, _, tag = image.partition(":")
            assert re.match(r"\d+\.\d+\.\d+", tag), f"base image {image} is not pinned to a release"
        stages.update(a.strip() for a in alias)
    users = [value for instruction, value in instructions if instruction == "USER"]
    assert users and users[-1] == "50000", users
    entrypoints = [value for instruction, value in instructions if instruction == "ENTRYPOINT"]
    assert entrypoints and "tini" in entrypoints[-1], entrypoints


def test_dockerfile_bakes_no_secrets() -> None:
    for instruction, value in dockerfile_instructions():
        if instruction in ("ENV", "ARG"):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|_CONN_|CREDENTIAL", value, re.I), value


def test_lock_satisfies_pyproject() -> None:
    """Every dependency of pyproject.toml is pinned in the lock at a version it allows (regenerate otherwise)."""
    pins = locked_pins()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = normalise(requirement.name)
        assert name in pins, f"{name} is not in docker/requirements.lock: regenerate it (see its first lines)"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{spec} vs locked {pins[name]}"


def test_spark_kubernetes_backend_is_in_pyspark() -> None:
    """docker/entrypoint.sh starts executors with this class from the installed pyspark's jars."""
    import pyspark

    entrypoint = (REPO / "docker" / "entrypoint.sh").read_text()
    backend = re.search(r"(org\.apache\.spark\.\S+KubernetesExecutorBackend)", entrypoint).group(1)
    jars = list((Path(pyspark.__file__).parent / "jars").glob("spark-kubernetes_*.jar"))
    assert jars, "pyspark ships no spark-kubernetes jar"
    with zipfile.ZipFile(jars[0]) as jar:
        assert backend.replace(".", "/") + ".class" in jar.namelist()


def test_entrypoint_passes_other_commands_through() -> None:
    out = subprocess.run(
        [REPO / "docker" / "entrypoint.sh", "bash", "-c", "echo through $0", "x"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out == "through x\n"


@pytest.mark.slow
def test_entrypoint_serves_the_api_with_the_settings_the_chart_gives(tmp_path: Path) -> None:
    """`serve`, as helm/lakehouse's Deployment runs it: host and port from LAKEHOUSE_SERVE_*, no arguments."""
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    env |= {"LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_SERVE_HOST": HOST, "LAKEHOUSE_SERVE_PORT": str(port)}
    for name in ("LAKEHOUSE_WAREHOUSE", "LAKEHOUSE_CONFIG", "MLFLOW_TRACKING_URI", "LAKEHOUSE_SERVE_TOKENS"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [REPO / "docker" / "entrypoint.sh", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    try:
        url = f"http://{HOST}:{port}"
        _wait(lambda: _answers(f"{url}/healthz"), 120, "docker/entrypoint.sh serve", log, proc)
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and "no week has been scored yet" in ready.json()["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert f"Uvicorn running on http://{HOST}:{port}" in log.read_text()


def test_install_refuses_an_unknown_step(tmp_path: Path) -> None:
    result = subprocess.run(["bash", INSTALL, str(tmp_path), "deps", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
    assert not (tmp_path / "venv").exists()  # refused before any step ran


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """docker/install.sh with every step into a temporary prefix; (prefix, its output)."""
    prefix = tmp_path_factory.mktemp("image") / "opt"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = {**os.environ, "PATH": f"{Path(uv).parent}:{os.environ['PATH']}"}
    for name in ("LAKEHOUSE_HOME", "LAKEHOUSE_JARS_DIR", "AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "SPARK_HOME"):
        env.pop(name, None)
    result = subprocess.run(["bash", INSTALL, str(prefix)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return prefix, result.stdout


@pytest.mark.slow
def test_install_passes_its_smoke_check(installed: tuple[Path, str]) -> None:
    _, out = installed
    assert "dags: ingest_and_build, monitor, score, train" in out
    assert out.rstrip().endswith("smoke check: ok")


@pytest.mark.slow
def test_installed_packages_are_the_lock(installed: tuple[Path, str]) -> None:
    prefix, _ = installed
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    freeze = subprocess.run(
        [uv, "pip", "freeze", "--python", str(prefix / "venv" / "bin" / "python")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    installed_pins = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    editable = [line for line in freeze.splitlines() if line.startswith("-e ")]
    assert {normalise(name): version for name, version in installed_pins.items()} == locked_pins()
    assert editable == [f"-e file://{REPO}"]


@pytest.mark.slow
def test_installed_code_runs_from_the_checkout(installed: tuple[Path, str]) -> None:
    """The DAGs' launcher and the contracts are found beside the installed package, as in the image."""
    prefix, _ = installed
    code = "from lakehouse.orchestration import LAUNCHER; print(LAUNCHER)"
    out = subprocess.run(
        [prefix / "venv" / "bin" / "python", "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == str(REPO / "scripts" / "spark_job.py")


@pytest.mark.slow
def test_installed_jars_are_the_poms(installed: tuple[Path, str]) -> None:
    prefix, _ = installed
    jars = {path.name for path in (prefix / "jars").glob("*.jar")}
    assert set(REQUIRED_JARS) <= jars
    assert any(name.startswith("s3-2.") for name in jars)  # the AWS SDK v2 modules S3A uses
    assert (prefix / "jars" / ".complete").exists()
    # The same pom resolved by `make jars` (the jars this test session's Spark loads) gives the same jars.
    local = load_settings().jars_dir
    if (local / ".complete").exists():
        assert jars == {path.name for path in local.glob("*.jar")}

"""Real servers on 127.0.0.1 for integration tests: a throwaway PostgreSQL cluster and an `mlflow server`.

Both are context managers so that a module-scoped fixture can hold them (and a later test can pair
the MLflow server with another backend or artifact store, e.g. s3:// on a local S3 server):

    with postgres() as pg, mlflow_server(pg.url("mlflow"), str(tmp / "artifacts"), tmp) as server:
        ...  # MLFLOW_TRACKING_URI=server.url

PostgreSQL refuses to run as root: when the tests run as root, initdb and postgres run as the
unprivileged `postgres` user (the Debian package creates it; `setpriv` switches to it) in a data
directory it owns.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
DB_USER = "lakehouse"  # the cluster's superuser; trust auth, so no password
OS_USER = "postgres"  # who runs the server when the tests run as root
INSTALL_HINT = "apt-get install -y postgresql (Debian puts initdb in /usr/lib/postgresql/<version>/bin)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """Where initdb and postgres are: on PATH, else the newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(
    ready: Callable[[], bool], timeout: float, what: str, log: Path, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what} exited with code {proc.returncode}:\n{_tail(log)}")
        time.sleep(0.25)
    pytest.fail(f"{what} did not become ready within {timeout:.0f} s:\n{_tail(log)}")


@dataclass
class Postgres:
    port: int
    base: Path  # data dir, socket and log live under it
    command: list[str]  # the server in the foreground, as the unprivileged user when we are root
    proc: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        """SQLAlchemy URL. The driver is named: SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3."""
        return f"postgresql+psycopg2://{DB_USER}@{HOST}:{self.port}/{database}"

    def connect(self, database: str) -> Any:
        import psycopg2

        return psycopg2.connect(host=HOST, port=self.port, user=DB_USER, dbname=database, connect_timeout=5)

    def start(self, timeout: float = 60) -> None:
        """Start the server on its port and data directory (output appended to its log); wait until it accepts."""
        log = self.base / "postgres.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, cwd="/")
        _wait(lambda: _accepts_connections(self), timeout, "postgres", log, self.proc)

    def stop(self) -> None:
        """PostgreSQL's "fast" shutdown (SIGINT: open sessions are ended, no recovery needed), then harder."""
        for sig, grace in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
            if self.proc is None or self.proc.poll() is not None:
                return
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue

    def restart(self, down: float) -> None:
        """Stop the server as `pg_ctl restart -m fast` does, stay down `down` seconds, start it again."""
        self.stop()
        time.sleep(down)
        self.start()


def _as_server_user() -> list[str]:
    """Command prefix that drops root to `postgres` (setpriv execs, so signals reach postgres itself)."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam(OS_USER)
    except KeyError:
        pytest.fail(f"running as root, but there is no unprivileged '{OS_USER}' user to run PostgreSQL as")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]


def _accepts_connections(server: Postgres) -> bool:
    try:
        server.connect("postgres").close()
        return True
    except Exception:  # psycopg2.OperationalError until it listens
        return False


@contextmanager
def postgres(databases: Sequence[str] = ("mlflow",), timeout: float = 60) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on a free port of 127.0.0.1 (trust auth), with `databases` created.

    `postgres` runs in the foreground as our child (not daemonized by pg_ctl), so it is stopped and
    reaped here even where PID 1 does not reap orphans, as in many containers.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(f"PostgreSQL server binaries (initdb, postgres) not found: {INSTALL_HINT}")
    prefix = _as_server_user()
    # Not under pytest's tmp_path: pytest makes /tmp/pytest-of-<user> private, so `postgres` could not enter it.
    base = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    if prefix:
        user = pwd.getpwnam(OS_USER)
        os.chown(base, user.pw_uid, user.pw_gid)
    data, port = base / "data", free_port()
    # -F: no fsync (a throwaway cluster); -k: the socket in our own directory, not /var/run/postgresql.
    server_cmd = [str(bin_dir / "postgres"), "-D", str(data), "-h", HOST, "-p", str(port), "-k", str(base), "-F"]
    server = Postgres(port, base, [*prefix, *server_cmd])
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", DB_USER, "-A", "trust", "--no-sync"]
        done = subprocess.run([*prefix, *initdb, "-E", "UTF8", "--locale=C"], capture_output=True, text=True, cwd="/")
        if done.returncode != 0:
            pytest.fail(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        server.start(timeout)
        conn = server.connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for name in databases:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    log: Path
    proc: subprocess.Popen
    timeout: float

    def wait_until_ready(self) -> None:
        """Block until /health answers (fails the test, with the server's log, if it exits or times out)."""
        _wait(lambda: _answers(f"{self.url}/health"), self.timeout, "mlflow server", self.log, self.proc)


def _answers(url: str) -> bool:
    """GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def mlflow_server(
    backend_store_uri: str,
    artifacts_destination: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
    wait: bool = True,
) -> Iterator[MlflowServer]:
    """`mlflow server` (this venv's) on a free port, proxying artifacts to `artifacts_destination`.

    `env` is added to the server's environment (e.g. MLFLOW_S3_ENDPOINT_URL and AWS_* for an s3://
    destination). With `wait=False` it yields as soon as the process is started (start-up takes
    10-30 s, mostly imports: do other work, then call `wait_until_ready`). The server and its
    uvicorn worker get their own process group, stopped together.
    """
    port = free_port()
    url = f"http://{HOST}:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "mlflow-server.log"
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts_destination,
        "--serve-artifacts",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    # The GenAI job runner (a Huey consumer per job type, 7 processes) is not needed here and doubles start-up time.
    server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    server_env |= dict(env or {})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=server_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = MlflowServer(url, log, proc, timeout)
    try:
        if wait:
            server.wait_until_ready()
        yield server
    finally:
        stop_group(proc)


@contextmanager
def s3_server(timeout: float = 30) -> Iterator[str]:
    """`moto_server` (S3 API over HTTP, any credentials) on a free port; yields its endpoint URL."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    log = Path(tempfile.mkdtemp(prefix="moto-")) / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(lambda: _answers(f"{url}/moto-api/"), timeout, "moto_server", log, proc)
        yield url
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group (the CLI forwards it to its uvicorn worker), SIGKILL whatever lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
        time.sleep(0.1)
    if proc.poll() is None or _group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class Airflow:
    env: dict[str, str]  # the environment every `airflow` command of this instance needs
    url: str
    home: Path
    workdir: Path  # where each component's log is: <workdir>/<component>.log
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)  # the components started, by name

    def start(self, component: str, *args: str) -> None:
        """`airflow <component> <args>` in the background, in its own process group, appending to its log.

        Starting a component again (after it exited) is what a supervisor such as Kubernetes does.
        """
        with self.log(component).open("ab") as out:
            self.procs[component] = subprocess.Popen(
                [str(Path(sys.executable).with_name("airflow")), component, *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
            )

    def log(self, component: str) -> Path:
        return self.workdir / f"{component}.log"

    def cli(self, *args: str, timeout: float = 300) -> str:
        """`airflow <args>` against this instance; fails the test with its output on a non-zero exit."""
        cmd = [str(Path(sys.executable).with_name("airflow")), *args]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        """A call of the REST API (`/api/v2/...`) with a token of the simple auth manager (all admins)."""
        with urllib.request.urlopen(f"{self.url}/auth/token", timeout=30) as response:
            token = json.load(response)["access_token"]
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{method} {path} answered {exc.code}: {exc.read().decode(errors='replace')[:2000]}")


@contextmanager
def airflow(
    database_url: str,
    dags: Path,
    workdir: Path,
    env: Mapping[str, str],
    without: tuple[str, ...] = (),
    timeout: float = 180,
) -> Iterator[Airflow]:
    """A migrated Airflow metadata database at `database_url`, the DAGs in `dags` serialized, then
    `airflow api-server` (on a free port) and `airflow scheduler` (LocalExecutor) running, with this
    process's environment but Airflow's own variables and `without`, plus `env`.

    No dag-processor: the DAGs are serialized once (`airflow dags reserialize`), which is all the
    scheduler and the backfill command need. Tasks report to the API server's execution API.
    """
    port = free_port()
    url = f"http://{HOST}:{port}"
    home = workdir / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k not in without}
    full_env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",  # worker processes the LocalExecutor starts (default 32)
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # The API server signs the tokens the tasks present: every process must share the secret.
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
        **env,
    }
    instance = Airflow(full_env, url, home, workdir)
    instance.cli("db", "migrate")
    instance.cli("dags", "reserialize")
    try:
        instance.start("api-server", "--port", str(port))
        instance.start("scheduler")
        api_server = instance.procs["api-server"]
        _wait(
            lambda: _answers(f"{url}/api/v2/monitor/health"),
            timeout,
            "airflow api-server",
            instance.log("api-server"),
            api_server,
        )
        yield instance
    finally:
        for proc in instance.procs.values():
            stop_group(proc)


@dataclass(frozen=True)
class LakehouseServer:
    url: str
    log: Path
    proc: subprocess.Popen

    def wait_until_ready(self, timeout: float = 120) -> None:
        """Block until /readyz answers 200: tables and champion loaded (fails the test, with the log, if not)."""
        _wait(lambda: _answers(f"{self.url}/readyz"), timeout, "lakehouse serve's /readyz", self.log, self.proc)


@contextmanager
def lakehouse_server(workdir: Path, timeout: float = 120) -> Iterator[LakehouseServer]:
    """`lakehouse serve` on a free 127.0.0.1 port, over the home the environment names; its stdout and stderr
    (uvicorn's access log and the service's own) go to `log`. Yields once /healthz answers (ready or not)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "serve.log"
    cmd = [sys.executable, "-m", "lakehouse.cli.main", "serve", "--host", HOST, "--port", str(port)]
    with log.open("wb") as out:
        repo = Path(__file__).resolve().parents[2]  # this checkout's lakehouse, whatever the venv installed
        proc = subprocess.Popen(cmd, cwd=repo, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        _wait(lambda: _answers(f"{url}/healthz"), timeout, "lakehouse serve", log, proc)
        yield LakehouseServer(url, log, proc)
    finally:
        stop_group(proc)

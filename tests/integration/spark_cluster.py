"""A Spark standalone cluster on 127.0.0.1 from the installed pyspark: one master and N workers.

The pyspark wheel has no sbin/start-master.sh, so the daemons start with `bin/spark-class`, as the
scripts would, each in its own process group. Workers run this interpreter's Python (PYSPARK_PYTHON)
and can import the repository (PYTHONPATH), as an image with the project installed would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark

from lakehouse.settings import REPO_ROOT
from tests.integration.servers import HOST, _answers, _wait, free_port, stop_group

SPARK_HOME = Path(pyspark.__file__).parent


@dataclass(frozen=True)
class SparkCluster:
    master_url: str  # spark://127.0.0.1:PORT
    ui_url: str
    logs: Path

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
            return int(json.load(response).get("aliveworkers", 0))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP=HOST,
        PYSPARK_PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
        SPARK_NO_DAEMONIZE="1",
    )
    return env


def _daemon(stack: ExitStack, log: Path, *args: str) -> subprocess.Popen:
    cmd = [str(SPARK_HOME / "bin" / "spark-class"), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack.callback(stop_group, proc)
    return proc


@contextmanager
def spark_standalone(workdir: Path, workers: int = 2, cores: int = 1, memory: str = "2g") -> Iterator[SparkCluster]:
    """Start the master and `workers` workers (`cores` and `memory` each); stop them all on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, ui_port = free_port(), free_port()  # not 8080: Airflow's api-server wants it
    cluster = SparkCluster(f"spark://{HOST}:{port}", f"http://{HOST}:{ui_port}", workdir)
    with ExitStack() as stack:
        master_log = workdir / "master.log"
        master = _daemon(
            stack,
            master_log,
            "org.apache.spark.deploy.master.Master",
            *("--host", HOST, "--port", str(port), "--webui-port", str(ui_port)),
        )
        _wait(lambda: _answers(f"{cluster.ui_url}/json/"), 60, "spark master", master_log, master)
        for i in range(workers):
            log = workdir / f"worker-{i}.log"
            _daemon(
                stack,
                log,
                "org.apache.spark.deploy.worker.Worker",
                cluster.master_url,
                *("--host", HOST, "--cores", str(cores), "--memory", memory),
                *("--webui-port", str(free_port()), "--work-dir", str(workdir / f"worker-{i}")),
            )
        _wait(lambda: cluster.alive_workers() == workers, 60, f"{workers} spark workers", master_log, master)
        yield cluster

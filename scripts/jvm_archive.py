"""Make the driver JVM's class-data-sharing archive (`make jvm-archive`, part of `make setup`).

A warm-up job runs in a fresh driver JVM started with `-XX:ArchiveClassesAtExit`: it generates a small
synthetic delivery, ingests and builds it (CSV reads, Delta writes and reads, shuffles, the job code's
usual classes). When that JVM exits, the JDK writes every class it loaded beyond its own base archive
to one file; later drivers map it (lakehouse.settings.driver_java_options) instead of loading those classes
from the jars. The archive is tied to this JDK and class path: it is remade when the JDK, pyspark or the
jars change (the JVM itself ignores an archive that does not match, so a stale one only costs time).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lakehouse.settings import load_settings  # noqa: E402

WARM_UP = """
import os
from datetime import date
from jobs import build, ingest, sample_data
from lakehouse.io.spark import get_spark

out = os.path.join(os.environ["LAKEHOUSE_HOME"], "landing")
args = ["--outlets", "4", "--products", "2", "--weeks", "3", "--start", "2024-01-01"]
assert sample_data.main(["synthetic", "--out", out, *args]) == 0
assert ingest.main(["--landing", out]) == 0
assert build.main(["--from", "2024-01-01", "--to", "2024-01-15"]) == 0
print("driver-jvm-pid", get_spark()._jvm.java.lang.ProcessHandle.current().pid())
"""


def made_from() -> str:
    """What the archive depends on: the JDK build, pyspark's version (its jars) and the platform's jars."""
    from importlib.metadata import version

    java = (
        shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")) if "JAVA_HOME" in os.environ else "java"
    )
    jdk = subprocess.run([java or "java", "-version"], capture_output=True, text=True).stderr
    jars = sorted(f"{p.name}:{p.stat().st_size}" for p in load_settings().jars_dir.glob("*.jar"))
    return hashlib.sha256("\n".join([jdk, version("pyspark"), *jars]).encode()).hexdigest()


def main() -> int:
    archive = load_settings().jvm_archive
    stamp = archive.with_name(archive.name + ".made-from")
    inputs = made_from()
    if archive.is_file() and stamp.is_file() and stamp.read_text() == inputs:
        print(f"jvm-archive: {archive} is up to date")
        return 0
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="jvm-archive-") as home:
        env = {
            **os.environ,
            "LAKEHOUSE_HOME": home,
            "LAKEHOUSE_PII_SECRET": "jvm-archive-warm-up-only-0123456789abcdef",
            "LAKEHOUSE_JVM_ARCHIVE": str(partial),  # not there yet: the warm-up JVM must not map an archive
            "LAKEHOUSE_DRIVER_JAVA_OPTIONS": f"-XX:ArchiveClassesAtExit={partial} -Xlog:cds=off -Xlog:cds+dynamic=off",
        }
        done = subprocess.run([sys.executable, "-c", WARM_UP], env=env, cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
            print("jvm-archive: the warm-up job failed (the platform works without the archive)", file=sys.stderr)
            return 1
        [pid] = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("driver-jvm-pid ")]
        # The JVM exits when its Python driver does, and writes the archive on its way out (the captured
        # output ends when it closes; this waits in case it closed early).
        deadline = time.monotonic() + 300
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    if not partial.is_file():
        print(f"jvm-archive: the warm-up JVM wrote no archive at {partial}", file=sys.stderr)
        return 1
    partial.replace(archive)
    stamp.write_text(inputs)
    print(f"jvm-archive: {archive} ({archive.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

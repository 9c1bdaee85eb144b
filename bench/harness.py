"""What every benchmark shares: the machine line, peak memory, steps in child processes, RESULTS.md sections.

Each measured step runs in a fresh process (`run_child`), so its peak memory is its own; a benchmark over
several sizes prepares a temporary home per size and runs its steps there (`run_sizes`).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def machine() -> str:
    """Cores, CPU, memory, OS, Python, Java and Spark: the line every table in RESULTS.md starts with."""
    from lakehouse.settings import load_settings

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    import pyspark

    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {java}, Spark {pyspark.__version__} local[*], "
        f"driver memory {load_settings().driver_memory}"
    )


def python_peak_rss_mb() -> int:
    """Peak resident memory of this Python process so far (each benchmark step runs in its own)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def jvm_peak_heap_mb(spark: Any) -> float:
    jvm = spark.sparkContext._jvm
    pools = jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
    return sum(p.getPeakUsage().getUsed() for p in pools if p.getType().name() == "HEAP") / 2**20


def jvm_peak_rss_mb(spark: Any) -> float:
    pid = spark.sparkContext._jvm.ProcessHandle.current().pid()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(module: str, *args: str) -> dict:
    """Run `python -m module args` in a fresh process (so peak memory is its own); its RESULT line as a dict."""
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def run_sizes(
    module: str, flag: str, sizes: Sequence[int], steps: Sequence[str], known: Callable[[int], dict] | None = None
) -> list[dict]:
    """For each size, a fresh temporary home: the `prepare` child, then each of `steps` as a child on that home.

    Each result is `{flag: size, **known(size), step: the step's RESULT, ...}`; children are called
    `python -m module --child STEP HOME --<flag> SIZE`.
    """
    name = flag.removeprefix("--")
    results = []
    for size in sizes:
        home = Path(tempfile.mkdtemp(prefix=f"{module.replace('.', '-')}-"))
        try:
            run_child(module, "--child", "prepare", str(home), flag, str(size))
            result: dict[str, Any] = {name: size, **(known(size) if known else {})}
            for step in steps:
                result[step] = run_child(module, "--child", step, str(home), flag, str(size))
            results.append(result)
            print(json.dumps(result), flush=True)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    return results


def publish(section: str, report: str, results_file: Path | None) -> None:
    """Print the machine line and the table; write them into `results_file`'s section when one is given."""
    table = f"Machine: {machine()}\n\n{report}\n"
    print(table)
    if results_file:
        write_section(results_file, section, table)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the text between `<!-- name -->` and `<!-- /name -->` markers (other sections are kept)."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{body}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)

"""The library's layering, read from the imports of every module: a stage never imports a later one.

From the bottom: the base (errors, settings, the week calendar, progress lines, deterministic draws, the
policy), then storage and contracts (`io/`, `contracts/`), then the stages in the order data flows
(medallion <- ml <- scoring <- monitoring <- serving), then what sits on top of them all (the CLI, the DAGs' shared
orchestration, the sample-data sources), and last `jobs/`: each job parses its arguments and calls one
flow, so it may import any of the library but never another job.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lakehouse.settings import REPO_ROOT

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "settings", "weeks", "progress", "draws", "policy"}),
    frozenset({"contracts", "io"}),
    frozenset({"medallion"}),
    frozenset({"ml"}),
    frozenset({"scoring"}),
    frozenset({"monitoring"}),
    frozenset({"serving"}),
    frozenset({"cli", "orchestration", "sources"}),
)
LIBRARY = REPO_ROOT / "lakehouse"
JOBS = len(LAYERS)  # the layer of `jobs.<name>`


def layer_of(module: str) -> int | None:
    """The layer of a `lakehouse.<part>...` or `jobs.<name>` module; None for other packages."""
    parts = module.split(".")
    if parts[0] == "jobs":
        return JOBS
    if parts[0] != "lakehouse" or len(parts) < 2:
        return None
    found = [i for i, names in enumerate(LAYERS) if parts[1] in names]
    assert found, f"lakehouse.{parts[1]} has no layer: add it to LAYERS"
    return found[0]


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def imported(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions (`from lakehouse import x` as lakehouse.x)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names if node.module == "lakehouse"}
    return names - {"lakehouse"}


def upward_imports(paths: list[Path], root: Path = REPO_ROOT) -> list[str]:
    found = []
    for path in paths:
        own = layer_of(module_name(path, root))
        for name in sorted(imported(path)):
            other = layer_of(name)
            if own is not None and other is not None and other > own:
                found.append(f"{module_name(path, root)} (layer {own}) imports {name} (layer {other})")
    return found


def test_every_module_has_a_layer():
    for path in LIBRARY.rglob("*.py"):
        if path.name != "__init__.py" or path.parent != LIBRARY:
            layer_of(module_name(path))


def test_no_module_imports_a_later_stage_or_the_cli():
    assert upward_imports(sorted(LIBRARY.rglob("*.py"))) == []


def test_no_job_imports_a_job():
    """What two jobs share lives in a flow, so every command's code is its job plus the library."""
    jobs = sorted((REPO_ROOT / "jobs").glob("*.py"))
    assert len(jobs) > 10
    assert [f"{module_name(p)} imports {n}" for p in jobs for n in sorted(imported(p)) if layer_of(n) == JOBS] == []


def test_the_check_finds_an_upward_import(tmp_path):
    """A medallion module that imported scoring, the CLI or a job, even inside a function, would be reported."""
    probe = tmp_path / "lakehouse" / "medallion" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from lakehouse.scoring.rows import in_holdout\n\ndef f():\n    from lakehouse.cli import args\n"
        "    import jobs.score\n"
    )
    assert upward_imports([probe], tmp_path) == [
        "lakehouse.medallion.probe (layer 2) imports jobs.score (layer 8)",
        "lakehouse.medallion.probe (layer 2) imports lakehouse.cli (layer 7)",
        "lakehouse.medallion.probe (layer 2) imports lakehouse.scoring.rows (layer 4)",
    ]


@pytest.mark.parametrize("module", ["lakehouse.policy", "lakehouse.settings", "lakehouse.errors"])
def test_what_a_dag_may_load_needs_no_pyspark(module):
    """DAG files may load the settings and the policy: neither may pull in pyspark."""
    path = REPO_ROOT / (module.replace(".", "/") + ".py")
    assert not {name for name in imported(path) if name.split(".")[0] in ("pyspark", "delta", "mlflow")}
    assert all(layer_of(name) == 0 for name in imported(path) if layer_of(name) is not None)

"""What a job's output is a function of, as one short id: input versions, contracts, config and code.

A job records the id beside what it writes; a re-run that computes the same id finds its output already
there and writes nothing (so the tables keep their Delta versions). Anything the output depends on
must be a part, or a change to it would be missed: input tables' Delta versions, the model version,
contract versions, the config sections the job reads, and the source of the modules it runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lakehouse.settings import REPO_ROOT


def code_id(modules: Iterable[str]) -> str:
    """A digest of the modules' source files: a changed transform changes the id."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(Path(importlib.import_module(name).__file__ or "").read_bytes())
    return digest.hexdigest()[:12]


def inputs_id(parts: Mapping[str, object]) -> str:
    """A digest of the parts (JSON with sorted keys; dataclasses as dicts, other values as str)."""

    def plain(value: object) -> object:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return str(value)

    text = json.dumps(parts, sort_keys=True, default=plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit() -> str:
    """The checkout's commit (with `+dirty` when it has uncommitted changes), or 'unknown' outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def lineage_tags(
    tables: dict[str, tuple[str, int]], contracts: dict[str, str], spark_master: str | None
) -> dict[str, Any]:
    """Tags that let a run be reproduced: table -> (path, Delta version), contract versions, commit, master."""
    tags: dict[str, Any] = {"git_commit": git_commit(), "spark_master": spark_master}
    for name, (path, table_version) in tables.items():
        tags[f"lineage.{name}.path"] = path
        tags[f"lineage.{name}.version"] = str(table_version)
    for name, contract_version in contracts.items():
        tags[f"contract.{name}.version"] = contract_version
    return tags

"""Contract versions: what changed between two versions of a contract, and whether the version says so.

Contracts follow semantic versioning. A breaking change (a column removed, its type narrowed, an optional
column made required, the primary key changed, or the contract deleted) breaks readers or deliveries
that matched the old version, so it needs a new major version. Any other change to what the jobs read
(a column or rule added, a type widened) needs at least a new minor or patch version. Descriptions
are documentation and need none. The previous versions come from git (a revision) or a directory.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lakehouse.contracts.model import Column, Contract, parse_contract
from lakehouse.errors import ContractError, UsageError

# (from, to) physical types where every old value still fits; anything may widen to string.
WIDENING = {
    ("int", "bigint"),
    ("int", "double"),
    ("bigint", "double"),
    ("float", "double"),
    ("date", "timestamp"),
}
ALIASES = {"integer": "int", "long": "bigint", "real": "float"}
DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


@dataclass(frozen=True)
class Change:
    """One difference between two versions of a contract."""

    what: str
    breaking: bool


def semver(version: str) -> tuple[int, int, int]:
    """'1.2.3' -> (1, 2, 3); a clear error for anything else."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version.strip())
    if not match:
        raise ContractError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def is_widening(old: str, new: str) -> bool:
    """True when every value of physical type `old` is a value of `new`."""
    old, new = ALIASES.get(old.lower(), old.lower()), ALIASES.get(new.lower(), new.lower())
    if old == new or new == "string" or (old, new) in WIDENING:
        return True
    old_dec, new_dec = DECIMAL.fullmatch(old), DECIMAL.fullmatch(new)
    if old_dec and new_dec:
        (p1, s1), (p2, s2) = (int(g) for g in old_dec.groups()), (int(g) for g in new_dec.groups())
        return s2 >= s1 and p2 - s2 >= p1 - s1
    return False


def _column_changes(old: Column, new: Column) -> list[Change]:
    changes = []
    if old.physical_type != new.physical_type:
        widened = is_widening(old.physical_type, new.physical_type)
        verb = "widened" if widened else "narrowed"
        changes.append(Change(f"{old.name}: type {verb} {old.physical_type} -> {new.physical_type}", not widened))
    if old.required != new.required:
        verb = "now required" if new.required else "now optional"
        changes.append(Change(f"{old.name}: {verb}", new.required))
    for field in ("unique", "classification", "transform"):
        if getattr(old, field) != getattr(new, field):
            changes.append(Change(f"{old.name}: {field} {getattr(old, field)} -> {getattr(new, field)}", False))
    return changes


def compare(old: Contract, new: Contract) -> list[Change]:
    """Every change from `old` to `new` that the jobs can see, each marked breaking or not."""
    changes: list[Change] = []
    old_cols, new_cols = {c.name: c for c in old.columns}, {c.name: c for c in new.columns}
    changes += [Change(f"{name}: removed", True) for name in old_cols if name not in new_cols]
    changes += [Change(f"{name}: added", new_cols[name].required) for name in new_cols if name not in old_cols]
    for name in old_cols.keys() & new_cols.keys():
        changes += _column_changes(old_cols[name], new_cols[name])
    if old.primary_key != new.primary_key:
        changes.append(Change(f"primary key {old.primary_key} -> {new.primary_key}", True))
    old_rules, new_rules = set(old.rules), set(new.rules)
    changes += [Change(f"rule {r.code} removed", False) for r in old_rules - new_rules]
    changes += [Change(f"rule {r.code} added", False) for r in new_rules - old_rules]
    if set(old.references) != set(new.references):
        changes.append(Change("foreign keys changed", False))
    return sorted(changes, key=lambda c: (not c.breaking, c.what))


def problems(old: Contract | None, new: Contract | None) -> list[str]:
    """Why this version change is refused (empty when it is acceptable)."""
    if old is None:
        return []
    if new is None:
        return [f"{old.name}: contract deleted (breaking): readers of {old.name} {old.version} lose the table"]
    before, after = semver(old.version), semver(new.version)
    changes = compare(old, new)
    if after < before:
        return [f"{new.name}: version went down, {old.version} -> {new.version}"]
    if changes and after == before:
        return [f"{new.name}: changed without a new version ({old.version}): " + "; ".join(c.what for c in changes)]
    breaking = [c.what for c in changes if c.breaking]
    if breaking and after[0] == before[0]:
        needed = f"{before[0] + 1}.0.0"
        return [f"{new.name}: breaking change needs major version {needed}, not {new.version}: " + "; ".join(breaking)]
    return []


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UsageError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout


def contracts_at(baseline: str, contracts_dir: Path) -> dict[str, Contract]:
    """The contracts of a directory, or of `contracts_dir` as git revision `baseline` has it."""
    if Path(baseline).is_dir():
        return {p.stem: parse_contract(p.read_text(), str(p)) for p in sorted(Path(baseline).glob("*.yaml"))}
    top = Path(_git(contracts_dir, "rev-parse", "--show-toplevel").strip())
    folder = contracts_dir.resolve().relative_to(top.resolve()).as_posix()
    try:
        _git(top, "rev-parse", "--verify", "--quiet", f"{baseline}^{{commit}}")
    except UsageError:
        raise UsageError(f"--against {baseline!r} is neither a directory nor a git revision") from None
    names = _git(top, "ls-tree", "--name-only", baseline, "--", f"{folder}/").split()
    contracts = {}
    for name in (n for n in names if n.endswith(".yaml")):
        text = _git(top, "show", f"{baseline}:{name}")
        contracts[Path(name).stem] = parse_contract(text, f"{baseline}:{name}")
    return contracts

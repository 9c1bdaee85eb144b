"""Compare every table of two LAKEHOUSE_HOMEs: the check that a refactoring changed no result.

    python scripts/compare_homes.py HOME_A HOME_B

Reads both warehouses with delta-rs (no JVM) and, table by table, compares the rows as sets after leaving
out what differs by construction between two runs: times (`*_at`), MLflow run ids and the lineage ids
that hash the code (`inputs`, the conservation's `source`). Floats are compared to 1e-9 relative, also inside
nested columns (sums over shuffled partitions may differ in the last digit from run to run).
Prints one line per table and exits 1 when any table differs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lakehouse.io.catalog import TABLES  # noqa: E402

RUN_IDS = {"run_id", "model_run_id", "monitor_run_id", "event_id"}
CODE_IDS = {"inputs", "source"}


def volatile(column: str) -> bool:
    return column.endswith("_at") or column in RUN_IDS or column in CODE_IDS


def rounded(value: Any) -> Any:
    """A nested value with its floats to 10 significant digits, for comparing structs and arrays as text."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [rounded(v) for v in value]
    return value


def frame(home: Path, layer: str, name: str) -> pd.DataFrame | None:
    try:
        table = DeltaTable(str(home / "warehouse" / layer / name))
    except TableNotFoundError:
        return None
    df = table.to_pandas()
    df = df[[c for c in sorted(df.columns) if not volatile(c)]]
    return df.sort_values(list(df.columns), ignore_index=True, key=lambda s: s.astype(str))


def same(a: pd.DataFrame, b: pd.DataFrame) -> str | None:
    """None when equal, else which columns differ."""
    if list(a.columns) != list(b.columns):
        return f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"
    if len(a) != len(b):
        return f"rows {len(a)} vs {len(b)}"
    differ = []
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            close = (x - y).abs() <= 1e-9 * pd.concat([x.abs(), y.abs()], axis=1).max(axis=1).clip(lower=1.0)
            if not (close | (x.isna() & y.isna())).all():
                differ.append(column)
        elif not x.map(rounded).astype(str).equals(y.map(rounded).astype(str)):
            differ.append(column)
    return f"values differ in {differ}" if differ else None


def main(argv: list[str]) -> int:
    home_a, home_b = (Path(p) for p in argv)
    failed = False
    for t in TABLES:
        a, b = frame(home_a, t.layer, t.name), frame(home_b, t.layer, t.name)
        if a is None or b is None:
            verdict = "absent in both" if a is None and b is None else "absent in one home"
            failed |= verdict != "absent in both"
        else:
            why = same(a, b)
            verdict = f"same ({len(a)} rows)" if why is None else why
            failed |= why is not None
        print(f"{t.name:24} {verdict}")
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

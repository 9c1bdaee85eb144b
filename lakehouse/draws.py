"""Deterministic draws per key: the same rows give the same draw on every run and partitioning (unlike F.rand).

The sample data generator draws its worlds with them and monitoring its samples, so neither depends on the other.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def uniform(seed: int, name: str, *keys: Column | str) -> Column:
    """A deterministic uniform(0, 1) per key, independent of partitioning (unlike F.rand)."""
    bits = F.xxhash64(F.lit(seed), F.lit(name), *keys).bitwiseAND(F.lit((1 << 52) - 1))
    return (bits.cast("double") + 0.5) / F.lit(float(1 << 52))

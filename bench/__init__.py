"""Benchmarks; each module is `python -m bench.<name>` and prints its figures."""

import os

# Benchmarks build throwaway warehouses from synthetic data: a fixed key for its pseudonyms will do.
os.environ.setdefault("LAKEHOUSE_PII_SECRET", "bench-only-pii-key-not-for-real-data-0123456789")

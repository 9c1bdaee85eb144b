"""Spark job entry points: `python -m jobs.<name> --help`, or the same through `lakehouse <name>`."""

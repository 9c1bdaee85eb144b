"""The `lakehouse` command line: `main.py` dispatches to the jobs, `args.py` holds what they share."""

"""spark-submit's application for every job: `spark-submit scripts/spark_job.py jobs.build --from D --to D`
runs `python -m jobs.build --from D --to D` inside the driver spark-submit started.

Kept out of jobs/ on purpose: Python puts the application's folder first on sys.path, where job modules
named like packages (`tables`, `models`) would shadow them.
"""

import runpy
import sys

if __name__ == "__main__":
    if len(sys.argv) < 2 or not sys.argv[1].startswith("jobs."):
        sys.exit("usage: spark_job.py jobs.<name> [args ...]")
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)

"""A monitored week's Evidently reports, wherever `lakehouse monitor` left them: the home's reports folder, or
the week's MLflow monitoring run.

The monitoring job saves each report as `reports/<week>/<check>.html` under its LAKEHOUSE_HOME and logs it
on its MLflow run under `evidently/` (lakehouse.monitoring.monitor_flow). On one machine the service shares
that home; on Kubernetes the job ran in a Spark driver pod whose disk is gone, and the run is where the
reports are. Names are listed when a snapshot is loaded; a file is fetched when a person opens one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

EVIDENTLY = "evidently"  # the run's artifact folder holding the week's reports


@dataclass(frozen=True)
class ReportFiles:
    folder: Path  # the home's reports folder: <folder>/<week>/<check>.html
    mlflow: Callable[[], Any]  # the MLflow client, asked only for a week the folder lacks

    def names(self, week: date, run_id: str | None) -> tuple[str, ...]:
        """The week's report file names, sorted: those in the folder, else those on the run (none without one)."""
        here = tuple(sorted(p.name for p in (self.folder / week.isoformat()).glob("*.html") if p.is_file()))
        if here or run_id is None:
            return here
        artifacts = self.mlflow().list_artifacts(run_id, EVIDENTLY)
        return tuple(sorted(PurePosixPath(a.path).name for a in artifacts if a.path.endswith(".html")))

    def fetch(self, week: date, name: str, run_id: str | None, scratch: Path) -> Path | None:
        """The report's file: the folder's, else the run's downloaded into `scratch`; None when neither has it.

        `name` must be one `names` listed for the week (the caller checks): it is never a path of its own.
        """
        here = (self.folder / week.isoformat() / name).resolve()
        if here.is_relative_to(self.folder.resolve()) and here.is_file():
            return here
        if run_id is None:
            return None
        return Path(self.mlflow().download_artifacts(run_id, f"{EVIDENTLY}/{name}", str(scratch)))

"""`lakehouse serve`: read the gold tables (delta-rs) and the @champion into a snapshot, keep it current, serve it.

A refresher thread looks every `serving.refresh_seconds`: a new Delta version of a served table or a new
@champion version means a new snapshot, read from the table versions it opened (so the snapshot is of one
moment), built whole, then swapped in. Until it is, the previous one serves; if building fails, it
serves on and the next look tries again. The snapshot holds the what-if's too (`read_what_if`): the
served week's as-planned rows and the champion's serving flavour, loaded once per champion.
"""

from __future__ import annotations

import copy
import logging
import logging.config
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.errors import UsageError
from lakehouse.io import delta_log
from lakehouse.io.catalog import (
    GOLD_EFFECTS,
    GOLD_LIFT,
    GOLD_MONITORING,
    GOLD_PLANNED_FEATURES,
    GOLD_RECOMMENDATIONS,
    RETRAIN_REQUESTS,
    SILVER_OUTLETS,
)
from lakehouse.ml.registry import CHAMPION
from lakehouse.policy import MLConfig
from lakehouse.serving.app import Service, create_app
from lakehouse.serving.metrics import Metrics
from lakehouse.serving.model_health import MONITORING_COLUMNS, REQUEST_COLUMNS, MonitoredWeek, monitored_weeks
from lakehouse.serving.ratelimit import RateLimiter
from lakehouse.serving.reports import ReportFiles
from lakehouse.serving.snapshot import (
    EFFECT_COLUMNS,
    MEASURED_LIFT_COLUMNS,
    RECOMMENDATION_COLUMNS,
    Champion,
    Current,
    Snapshot,
    Versions,
    build_snapshot,
)
from lakehouse.serving.tokens import read_tokens
from lakehouse.serving.what_if import LINEAGE_COLUMNS, WhatIfBook
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from fastapi import FastAPI

log = logging.getLogger("lakehouse.serving")


class NotReady(Exception):
    """There is nothing to serve yet; the message says what is missing and which command makes it."""


def keep_pyspark_out() -> None:
    """Make `import pyspark` fail in this process, as if pyspark were not installed.

    MLflow's client imports `mlflow.types`, which probes `import pyspark` to map Spark types: 87 modules
    of pyspark the service has no use for. A None entry in `sys.modules` is Python's way to
    make an import raise ImportError, and MLflow then takes its path without Spark. `serve` calls it
    first, so serving code that needed pyspark would fail in the server tests rather than load it.
    A process that has already loaded pyspark (a test session) keeps it.
    """
    sys.modules.setdefault("pyspark", None)  # type: ignore[arg-type]


@cache
def registry_client(tracking_uri: str) -> Any:
    """One MLflow client per store for the process (each would open its own database engine)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def read_champion(settings: Settings, model_name: str) -> Champion | None:
    """The registry's @champion now, or None when there is none (no store yet, no model, no alias)."""
    from mlflow.exceptions import MlflowException

    if settings.mlflow_tracking_uri is None and not (settings.mlflow_dir / "mlflow.db").exists():
        return None  # nothing trained in this home: do not create a store only to find it empty
    try:
        version = registry_client(settings.tracking_uri).get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        # No such model; a model without the alias. Anything else (the store unreachable) is a failed load.
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    registered_at = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
    return Champion(model_name, str(version.version), version.run_id, registered_at)


@lru_cache(maxsize=2)  # the champion's and, during a swap, the one before
def serving_flavour(tracking_uri: str, run_id: str) -> Any:
    """The serving flavour logged in a champion's run (loaded once per champion), or why there is none."""
    import mlflow

    from lakehouse.ml import serving_flavour as flavour

    tags = registry_client(tracking_uri).get_run(run_id).data.tags
    if flavour.URI_TAG not in tags:
        return f"the champion (run {run_id}) has no serving flavour: {tags.get('serving.flavour', 'trained before it')}"
    mlflow.set_tracking_uri(tracking_uri)  # the service reads one store; the flavour's artifacts are in it
    return flavour.stages_of(flavour.load_serving_flavour(tags[flavour.URI_TAG]))


def read_what_if(
    settings: Settings,
    config: MLConfig,
    week: Any,
    planned: DeltaTable | None,
    effects: DeltaTable | None,
    champion: Champion,
) -> WhatIfBook | str:
    """The what-if's book of the served week (its planned rows, the champion's flavour and effects), or why not."""
    from lakehouse.scoring.lifts import EffectBook

    if planned is None:
        return f"no planned rows (gold_planned_features): score week {week} again with `lakehouse score`"
    columns = [f.name for f in planned.schema().fields if f.name not in LINEAGE_COLUMNS]
    rows = delta_log.snapshot_arrow(planned, columns, [("week_start", "=", week)])
    if rows.num_rows == 0:
        return f"week {week} has no planned rows (gold_planned_features): score it again with `lakehouse score`"
    try:
        model = serving_flavour(settings.tracking_uri, champion.run_id)
    except Exception as exc:  # the rest of the snapshot serves on without what-ifs
        log.exception("loading the serving flavour of run %s failed", champion.run_id)
        return f"the champion's serving flavour did not load ({type(exc).__name__}); see the service log"
    if isinstance(model, str):
        return model
    of_champion = [("model_name", "=", champion.name), ("model_version", "=", champion.version)]
    effect_rows = [] if effects is None else delta_log.records(delta_log.snapshot_arrow(effects, None, of_champion))
    book = EffectBook.of(champion.version, effect_rows)
    rows = rows.combine_chunks()  # here, so the rows as read are let go before the book compacts them
    return WhatIfBook.of(week, rows, model, champion.version, book, config.effects.confidence)


def _version(delta_table: DeltaTable | None) -> int | None:
    return None if delta_table is None else delta_table.version()


def load(settings: Settings, config: MLConfig, served: Snapshot | None) -> Snapshot | None:
    """A snapshot of the tables and the champion now; None when they are still those `served` was read from.

    What has not moved since `served` is kept rather than read and built again: the week's ranking when
    neither its recommendations nor the outlets changed, the what-if's book when neither the planned rows,
    the effects nor the champion did. A score commits its planned rows and its recommendations apart, so a
    refresh can see one without the other; building the 2M rows of 100k outlets twice kept one core busy
    for most of a minute (bench/RESULTS.md).
    """
    recommendations = delta_log.open_table(GOLD_RECOMMENDATIONS, settings)
    if recommendations is None:
        raise NotReady("no week has been scored yet: run `lakehouse score --week W`")
    name = config.registry.model_name
    champion = read_champion(settings, name)
    if champion is None:
        raise NotReady(f"model {name!r} has no @champion yet: run `lakehouse train` (the gate promotes)")
    effects, lift, outlets, monitoring, requests, planned = (
        delta_log.open_table(t, settings)
        for t in (GOLD_EFFECTS, GOLD_LIFT, SILVER_OUTLETS, GOLD_MONITORING, RETRAIN_REQUESTS, GOLD_PLANNED_FEATURES)
    )
    versions = Versions(
        recommendations.version(),
        _version(effects),
        _version(lift),
        _version(outlets),
        champion.version,
        monitoring=_version(monitoring),
        retrain_requests=_version(requests),
        planned=_version(planned),
    )
    if served is not None and versions == served.versions:
        return None
    week = delta_log.latest_partition(recommendations, "week_start")
    kept = served if served is not None and served.week == week else None

    def unchanged(*tables: str) -> bool:
        """Whether the kept snapshot was read from these same versions (fields of `Versions`)."""
        return kept is not None and all(getattr(kept.versions, t) == getattr(versions, t) for t in tables)

    keep_ranking = unchanged("recommendations", "outlets")
    champion_rows = [("model_name", "=", name), ("model_version", "=", champion.version)]
    snapshot = build_snapshot(
        week,
        kept if keep_ranking and kept is not None else _week_rows(recommendations, week),
        None if outlets is None or keep_ranking else delta_log.snapshot_arrow(outlets, ["outlet_id", "channel"]),
        None if effects is None else delta_log.snapshot_arrow(effects, list(EFFECT_COLUMNS), champion_rows),
        None if lift is None else delta_log.snapshot_arrow(lift, list(MEASURED_LIFT_COLUMNS)),
        champion,
        versions,
        datetime.now(UTC),
        datetime.fromtimestamp(recommendations.history(1)[0]["timestamp"] / 1000, UTC),
        _monitored(settings, monitoring, requests),
    )
    if kept is not None and unchanged("planned", "effects", "champion") and isinstance(kept.what_if, WhatIfBook):
        return replace(snapshot, what_if=kept.what_if)
    return replace(snapshot, what_if=read_what_if(settings, config, week, planned, effects, champion))


def _week_rows(recommendations: DeltaTable, week: Any) -> Any:
    return delta_log.snapshot_arrow(recommendations, list(RECOMMENDATION_COLUMNS), [("week_start", "=", week)])


def _monitored(
    settings: Settings, monitoring: DeltaTable | None, requests: DeltaTable | None
) -> tuple[MonitoredWeek, ...]:
    """The model's health by week: a few hundred rows a week, read whole (per-column drift rows are left out
    after reading, as delta-rs filters cannot say "is null"), and the week's report files."""
    if monitoring is None:
        return ()
    rows = delta_log.snapshot_arrow(monitoring, list(MONITORING_COLUMNS))
    asked = None if requests is None else delta_log.snapshot_arrow(requests, list(REQUEST_COLUMNS))
    files = report_files(settings)

    def names(week: date, run_id: str | None) -> tuple[str, ...]:
        try:
            return files.names(week, run_id)
        except Exception:  # the registry unreachable: the week shows its figures without report links
            log.warning("reports of week %s not listed (MLflow run %s)", week, run_id, exc_info=True)
            return ()

    return monitored_weeks(rows, asked, names)


def report_files(settings: Settings) -> ReportFiles:
    """The Evidently reports: the home's reports folder, else each week's monitoring run in MLflow."""
    return ReportFiles(settings.reports_dir, lambda: registry_client(settings.tracking_uri))


class Refresher:
    """Keeps `svc.current` and `svc.tokens` up to date with the tables, the registry and the tokens file."""

    def __init__(self, svc: Service, settings: Settings, config: MLConfig) -> None:
        self.svc, self.settings, self.config = svc, settings, config
        self._tokens_stat = _stat(settings.tokens_file)
        self._stop = threading.Event()

    def refresh(self) -> None:
        """One look: re-read a changed tokens file, swap in a new snapshot if a table or the champion changed."""
        self._reload_tokens()
        current = self.svc.current
        try:
            snapshot = load(self.settings, self.config, current.snapshot)
        except NotReady as exc:
            if current.snapshot is None and current.not_ready != str(exc):
                current.not_ready = str(exc)
                log.warning("not ready: %s", exc)
            return
        except Exception:
            self.svc.metrics.loaded("failed")
            log.exception("loading a new snapshot failed; the one before serves on")
            return
        if snapshot is not None:
            current.swap(snapshot)
            self.svc.metrics.loaded("swapped")
            log.info("serving week %s: %s rows, %s", snapshot.week, snapshot.ranked.num_rows, snapshot.versions)
        # Each look, as the snapshot replaced is freed only once the requests that took it have answered.
        _release_memory()

    def _reload_tokens(self) -> None:
        stat = _stat(self.settings.tokens_file)
        if stat == self._tokens_stat:
            return
        try:
            self.svc.tokens = read_tokens(self.settings.tokens_file)
            log.info("tokens file changed: %d tokens", len(self.svc.tokens.by_hash))
        except UsageError as exc:
            log.error("tokens file not re-read, the tokens before stay: %s", exc)
        self._tokens_stat = stat

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.config.serving.refresh_seconds)

    @asynccontextmanager
    async def running(self, app: FastAPI) -> AsyncIterator[None]:
        """The app's lifespan: the refresher thread runs while the server does (the first load included, so
        /healthz answers at once and /readyz once loaded)."""
        thread = threading.Thread(target=self._run, name="snapshot-refresher", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=30)


def _release_memory() -> None:
    """Hand back to the OS what building a snapshot (and the one it replaced, once unused) left in Arrow's pool:
    mimalloc keeps freed pages for reuse, and the resident size stayed hundreds of MB above the data served."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with the service's own logger beside its access and error logs."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["lakehouse"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(settings: Settings, config: MLConfig, host: str, port: int) -> None:
    """Serve the API on host:port until stopped (SIGINT/SIGTERM)."""
    keep_pyspark_out()
    import uvicorn

    logging.config.dictConfig(log_config())
    tokens = read_tokens(settings.tokens_file)
    if not tokens.by_hash:
        log.warning(
            "no tokens in %s: every request will be refused; add one with `lakehouse serve-token`", settings.tokens_file
        )
    serving = config.serving
    svc = Service(
        Current(),
        tokens,
        RateLimiter(serving.rate_per_second, serving.burst),
        Metrics(),
        serving.page_size,
        serving.max_page_size,
        report_files(settings),
    )
    app = create_app(svc, Refresher(svc, settings, config).running)
    uvicorn.run(app, host=host, port=port, log_config=log_config())

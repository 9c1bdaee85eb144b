"""The service's Prometheus metrics in the text exposition format (0.0.4), written by hand.

A few counters, one histogram and gauges of the snapshot do not justify a client library, and one more
package would be one more pin in the image's lock. Routes are labelled by their template
(`/v1/outlets/{outlet_id}/recommendations`), so the label set stays small whatever ids are asked for.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter, defaultdict

from lakehouse.serving.snapshot import Snapshot

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Request counts by route and status, latency by route, snapshot loads by outcome; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._buckets: dict[str, list[int]] = {}  # route -> requests per bucket (the first bound >= the time)
        self._seconds: defaultdict[str, float] = defaultdict(float)
        self._count: Counter[str] = Counter()
        self._loads: Counter[str] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            cells = self._buckets.setdefault(route, [0] * len(BUCKETS))
            bucket = bisect.bisect_left(BUCKETS, seconds)
            if bucket < len(BUCKETS):  # slower than the last bound: only in +Inf (the count)
                cells[bucket] += 1
            self._seconds[route] += seconds
            self._count[route] += 1

    def loaded(self, outcome: str) -> None:
        """Count a snapshot load by outcome: `swapped` or `failed`."""
        with self._lock:
            self._loads[outcome] += 1

    def exposition(self, snapshot: Snapshot | None) -> str:
        """Every metric, as Prometheus scrapes it."""
        with self._lock:
            requests, loads = sorted(self._requests.items()), sorted(self._loads.items())
            latency = [
                (route, list(cells), self._seconds[route], self._count[route]) for route, cells in self._buckets.items()
            ]
        lines = ["# HELP lakehouse_http_requests_total Requests answered, by method, route and status."]
        lines.append("# TYPE lakehouse_http_requests_total counter")
        for (method, route, status), n in requests:
            lines.append(f"lakehouse_http_requests_total{_labels(method=method, route=route, status=status)} {n}")
        lines += [
            "# HELP lakehouse_http_request_seconds Time to answer a request, by route.",
            "# TYPE lakehouse_http_request_seconds histogram",
        ]
        for route, cells, seconds, count in sorted(latency):
            running = 0
            for bound, n in zip(BUCKETS, cells, strict=True):
                running += n
                lines.append(f"lakehouse_http_request_seconds_bucket{_labels(route=route, le=str(bound))} {running}")
            lines.append(f"lakehouse_http_request_seconds_bucket{_labels(route=route, le='+Inf')} {count}")
            lines.append(f"lakehouse_http_request_seconds_sum{_labels(route=route)} {seconds:.6f}")
            lines.append(f"lakehouse_http_request_seconds_count{_labels(route=route)} {count}")
        lines += [
            "# HELP lakehouse_serving_snapshot_loads_total Snapshots loaded (swapped in) or failed to load.",
            "# TYPE lakehouse_serving_snapshot_loads_total counter",
            *(f"lakehouse_serving_snapshot_loads_total{_labels(outcome=k)} {n}" for k, n in loads),
        ]
        return "\n".join(lines + _snapshot_gauges(snapshot)) + "\n"


def _snapshot_gauges(snapshot: Snapshot | None) -> list[str]:
    lines = [
        "# HELP lakehouse_serving_ready 1 when a snapshot of the tables and the champion is served.",
        "# TYPE lakehouse_serving_ready gauge",
        f"lakehouse_serving_ready {int(snapshot is not None)}",
    ]
    if snapshot is None:
        return lines
    versions = snapshot.versions
    tables = {"gold_recommendations": versions.recommendations, "gold_effects": versions.effects}
    tables |= {"gold_lift": versions.lift, "silver_outlets": versions.outlets}
    tables |= {"gold_monitoring": versions.monitoring, "audit_retrain_requests": versions.retrain_requests}
    tables |= {"gold_planned_features": versions.planned}
    return [
        *lines,
        "# HELP lakehouse_serving_table_version Delta version of each table the snapshot was read from.",
        "# TYPE lakehouse_serving_table_version gauge",
        *(f"lakehouse_serving_table_version{_labels(table=t)} {v}" for t, v in tables.items() if v is not None),
        "# HELP lakehouse_serving_champion_version Registry version of the @champion served.",
        "# TYPE lakehouse_serving_champion_version gauge",
        f"lakehouse_serving_champion_version{_labels(model=snapshot.champion.name)} {snapshot.champion.version}",
        "# HELP lakehouse_serving_recommendations Recommendations of the served week.",
        "# TYPE lakehouse_serving_recommendations gauge",
        f"lakehouse_serving_recommendations{_labels(week=snapshot.week.isoformat())} {snapshot.ranked.num_rows}",
        "# HELP lakehouse_serving_snapshot_loaded_seconds When the served snapshot was loaded (Unix time).",
        "# TYPE lakehouse_serving_snapshot_loaded_seconds gauge",
        f"lakehouse_serving_snapshot_loaded_seconds {snapshot.loaded_at.timestamp():.3f}",
    ]

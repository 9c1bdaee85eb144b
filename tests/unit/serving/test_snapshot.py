"""A snapshot ranks the week's recommendations, indexes each outlet's rows and pages them; swaps are whole."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pytest

from lakehouse.io.delta_log import records
from lakehouse.serving.metrics import Metrics
from lakehouse.serving.schemas import Recommendation
from lakehouse.serving.snapshot import (
    RECOMMENDATION_COLUMNS,
    Champion,
    Current,
    RowReader,
    Versions,
    build_snapshot,
    compact,
    lift_rows,
    outlet_rows,
    page,
    ranked_rows,
)

WEEK = date(2024, 3, 4)
CHAMPION = Champion("m", "3", "run-3", datetime(2024, 3, 1, tzinfo=UTC))
VERSIONS = Versions(7, 2, None, 1, "3")


def _snapshot(net_lifts: dict[tuple[str, str], float | None], channels: pa.Table | None = None):
    keys = list(net_lifts)
    recommendations = pa.table(
        {
            "outlet_id": [o for o, _ in keys],
            "product_id": [p for _, p in keys],
            "brand": ["B" + p[-1] for _, p in keys],
            "net_lift_units": pa.array(list(net_lifts.values()), pa.float64()),
        }
    )
    lift = pa.table({"week_start": [WEEK, date(2024, 2, 26)], "experiment": ["e", "e"], "brand": ["ALL", "ALL"]})
    return build_snapshot(WEEK, recommendations, channels, None, lift, CHAMPION, VERSIONS, datetime.now(UTC))


def test_rows_rank_by_net_lift_with_ties_by_outlet_then_product_and_nulls_last():
    snapshot = _snapshot({("O2", "P1"): 5.0, ("O1", "P2"): None, ("O1", "P1"): 5.0, ("O3", "P1"): 9.0})
    ranked = [(r["outlet_id"], r["product_id"]) for r in page(ranked_rows(snapshot, None, None, None), 0, 10)[0]]
    assert ranked == [("O3", "P1"), ("O1", "P1"), ("O2", "P1"), ("O1", "P2")]
    assert [r["product_id"] for r in outlet_rows(snapshot, "O1") or []] == ["P1", "P2"]
    assert outlet_rows(snapshot, "O9") is None
    assert [r["channel"] for r in outlet_rows(snapshot, "O3") or []] == [None]  # no outlets table yet


def test_nan_is_served_as_null_and_channels_join_by_outlet():
    channels = pa.table({"outlet_id": ["O1", "O2"], "channel": ["retail", "digital"], "region": ["n", "s"]})
    snapshot = _snapshot({("O1", "P1"): math.nan, ("O2", "P1"): 1.0}, channels)
    assert [
        (r["outlet_id"], r["net_lift_units"], r["channel"])
        for r in page(ranked_rows(snapshot, None, None, None), 0, 5)[0]
    ] == [
        ("O2", 1.0, "digital"),
        ("O1", None, "retail"),
    ]
    assert [r["outlet_id"] for r in page(ranked_rows(snapshot, None, "retail", None), 0, 5)[0]] == ["O1"]


def test_filters_top_and_pages_walk_the_ranking_once():
    lifts = {(f"O{i}", f"P{j}"): float(i * 10 + j) for i in range(1, 6) for j in (1, 2)}
    snapshot = _snapshot(lifts)
    only_b1 = ranked_rows(snapshot, "B1", None, 4)
    assert [r["outlet_id"] for r in page(only_b1, 0, 10)[0]] == ["O5", "O4", "O3", "O2"]
    assert ranked_rows(snapshot, "B9", None, None).num_rows == 0
    pages, offset = [], 0
    while offset is not None:
        rows, offset = page(ranked_rows(snapshot, None, None, None), offset, 3)
        pages.append([r["net_lift_units"] for r in rows])
    assert pages == [[52.0, 51.0, 42.0], [41.0, 32.0, 31.0], [22.0, 21.0, 12.0], [11.0]]
    assert page(ranked_rows(snapshot, None, None, None), 12, 3) == ([], None)


def test_lift_rows_are_every_week_or_one():
    snapshot = _snapshot({("O1", "P1"): 1.0})
    assert [r["week_start"] for r in lift_rows(snapshot, None)] == [date(2024, 2, 26), WEEK]
    assert [r["week_start"] for r in lift_rows(snapshot, WEEK)] == [WEEK]
    assert lift_rows(snapshot, date(2020, 1, 6)) == [] and snapshot.effects == []


def test_a_swap_replaces_the_whole_snapshot_at_once():
    current = Current()
    assert current.snapshot is None and "loading" in current.not_ready
    first, second = _snapshot({("O1", "P1"): 1.0}), _snapshot({("O2", "P1"): 2.0})
    current.swap(first)
    held = current.snapshot  # what a request in flight holds
    current.swap(second)
    assert held is first and outlet_rows(held, "O1") is not None and outlet_rows(held, "O2") is None
    assert current.snapshot is second


def test_the_served_columns_are_the_response_fields():
    assert set(Recommendation.model_fields) == {*RECOMMENDATION_COLUMNS, "channel"}


def test_metrics_count_by_route_template_and_expose_the_snapshot():
    metrics = Metrics()
    metrics.observe("GET", "/v1/outlets/{outlet_id}/recommendations", 200, 0.003)
    metrics.observe("GET", "/v1/outlets/{outlet_id}/recommendations", 403, 9.0)
    metrics.loaded("swapped")
    text = metrics.exposition(_snapshot({("O1", "P1"): 1.0}))
    route = 'route="/v1/outlets/{outlet_id}/recommendations"'
    assert f'lakehouse_http_requests_total{{method="GET",{route},status="403"}} 1' in text
    assert f'lakehouse_http_request_seconds_bucket{{{route},le="0.005"}} 1' in text
    assert f'lakehouse_http_request_seconds_bucket{{{route},le="+Inf"}} 2' in text
    assert 'lakehouse_serving_table_version{table="gold_recommendations"} 7' in text
    assert 'table="gold_lift"' not in text  # never written
    assert "lakehouse_serving_ready 1" in text and 'lakehouse_serving_snapshot_loads_total{outcome="swapped"} 1' in text
    assert "lakehouse_serving_ready 0" in Metrics().exposition(None)


def test_the_row_reader_reads_what_arrow_reads_of_the_table_before_compacting():
    # Every kind of column the snapshot holds, each with nulls: few and many distinct texts and doubles
    # (compacted to dictionaries of a Python list, of numpy and of Arrow), plain doubles, long texts, dates,
    # flags and integers.
    rows = 4 * 5000
    rng = np.random.default_rng(7)
    many = [f"reason {i}" for i in range(5000)]

    def with_nulls(values: list, every: int) -> list:
        return [None if i % every == 0 else v for i, v in enumerate(values)]

    table = pa.table(
        {
            "brand": with_nulls([f"B{i % 7}" for i in range(rows)], 11),
            "reason": with_nulls([many[i % 5000] for i in range(rows)], 13),
            "lift": pa.array(with_nulls([float(i % 900) / 8 for i in range(rows)], 17), pa.float64()),
            "margin": pa.array(with_nulls(list(rng.normal(size=rows)), 19), pa.float64()),
            "explanation": with_nulls([f"text {i}" for i in range(rows)], 23),
            "week_start": with_nulls([date(2024, 3, 4 + i % 3) for i in range(rows)], 29),
            "in_holdout": with_nulls([i % 3 == 0 for i in range(rows)], 31),
            "rows": pa.array(range(rows), pa.int64()),
        }
    )
    compacted = compact(table)
    kinds = {f.name: str(f.type) for f in compacted.schema}
    assert kinds["brand"].startswith("dictionary") and kinds["reason"].startswith("dictionary"), kinds
    assert kinds["lift"].startswith("dictionary<values=double") and kinds["margin"] == "double", kinds
    reader = RowReader(compacted)
    for numbers in (np.array([0, 1, 11, 13, 19999]), rng.integers(0, rows, 100), np.arange(40, 140), np.arange(0)):
        assert reader.rows(numbers) == records(table.take(numbers))


def test_the_row_reader_reads_nan_as_null_and_refuses_zoned_timestamps():
    table = pa.table({"x": pa.array([1.5, math.nan, None], pa.float64())})
    assert RowReader(table).rows(np.arange(3)) == [{"x": 1.5}, {"x": None}, {"x": None}]
    with pytest.raises(ValueError, match="zoned timestamp"):
        RowReader(pa.table({"at": pa.array([datetime(2024, 3, 4, tzinfo=UTC)])}))

"""Recognising what a delivered file is before Spark reads it."""

from __future__ import annotations

import pytest

from lakehouse.errors import DeliveryError
from lakehouse.medallion.deliveries import DeliveredFile, batch_id, csv_header


def test_csv_header_parses_quoted_names():
    assert csv_header(b'outlet_id,"product_id", units\nO1,P1,3\n') == ["outlet_id", "product_id", "units"]


def test_csv_header_survives_a_byte_order_mark_and_a_probe_cut_mid_character():
    head = "\ufeffoutlet_id,units\r\nO1,caf\u00e9".encode()[:-1]
    assert csv_header(head) == ["outlet_id", "units"]


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"", "empty file"),
        (b"\n\n", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        (b"\xff\xfeo\x00u\x00", "binary"),
    ],
)
def test_csv_header_rejects_files_that_are_not_csv(head, message):
    with pytest.raises(DeliveryError, match=message):
        csv_header(head)


def test_batch_id_is_stable_and_changes_with_any_file():
    a = DeliveredFile("file:/d/a.csv", 10, 1)
    b = DeliveredFile("file:/d/b.csv", 20, 2)
    assert batch_id("sales", [a, b]) == batch_id("sales", [a, b])
    assert batch_id("sales", [a, b]) != batch_id("outlets", [a, b])
    assert batch_id("sales", [a, b]) != batch_id("sales", [a, DeliveredFile("file:/d/b.csv", 21, 2)])


def test_format_comes_from_the_extension():
    formats = [DeliveredFile(f"file:/d/x.{ext}", 1, 1).file_format for ext in ("csv", "JSONL", "parquet", "xlsx")]
    assert formats == ["csv", "json", "parquet", "unsupported"]


def test_local_sources_may_be_glob_patterns_and_a_pattern_matching_nothing_is_an_error(tmp_path):
    from jobs.ingest import expand_sources
    from lakehouse.errors import UsageError

    for week in ("2024-01-08", "2024-01-01"):
        (tmp_path / "sales" / f"week={week}").mkdir(parents=True)
    pattern = str(tmp_path / "sales" / "week=*")
    assert expand_sources([pattern, "s3a://bucket/x"]) == [
        str(tmp_path / "sales" / "week=2024-01-01"),
        str(tmp_path / "sales" / "week=2024-01-08"),
        "s3a://bucket/x",
    ]
    with pytest.raises(UsageError, match="matches no delivery folder"):
        expand_sources([str(tmp_path / "landing" / "week=*")])


def test_relative_sources_resolve_against_the_callers_directory(tmp_path, monkeypatch):
    """A shared Spark JVM (jobs run in-process) would resolve them against the directory it started in."""
    from jobs.ingest import expand_sources

    (tmp_path / "deliveries" / "sales" / "week=2024-01-01").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert expand_sources(["deliveries/sales/week=*", "deliveries/outlets"]) == [
        str(tmp_path / "deliveries" / "sales" / "week=2024-01-01"),
        str(tmp_path / "deliveries" / "outlets"),
    ]

"""Delta tables read without Spark (delta-rs): a table's facts and small reads, for the quick commands.

`lakehouse tables`, `quarantine`, `recommendations` and `models history` only read a log or a few
thousand rows; a JVM would cost them 20 s. What they print must not depend on which engine read it,
so `describe` returns what `lakehouse.delta_io.describe` does, and `records` gives rows as Spark's
`collect()` does (timestamps as naive local time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.errors import DataError
from lakehouse.io.catalog import Table
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable

# DNF filters as delta-rs and pyarrow take them: [("week_start", "=", date(2024, 1, 1))].
Filters = Sequence[tuple[str, str, Any]]


def storage_uri(path: str) -> str:
    """The table path as delta-rs names it: Hadoop's `s3a://bucket/key` is `s3://bucket/key`."""
    return "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path


def storage_options(uri: str, settings: Settings) -> dict[str, str]:
    """Object-store settings for an S3-compatible endpoint, from the variables `lakehouse.spark.s3a_conf` reads.

    Credentials are not passed: delta-rs reads `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` from the
    environment itself (or an instance/pod role), as S3A does.
    """
    if not uri.startswith("s3://"):
        return {}
    options = {"AWS_REGION": settings.aws_region}
    endpoint = settings.s3_endpoint
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def open_table(table: Table, settings: Settings) -> DeltaTable | None:
    """The table's latest snapshot, or None when it was never written."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = storage_uri(table.path(settings))
    try:
        return DeltaTable(uri, storage_options=storage_options(uri, settings))
    except TableNotFoundError:
        return None


def exists(table: Table, settings: Settings) -> bool:
    return open_table(table, settings) is not None


def _must_open(table: Table, settings: Settings) -> DeltaTable:
    delta_table = open_table(table, settings)
    if delta_table is None:  # the message of lakehouse.delta_io.read, so both engines fail alike
        raise FileNotFoundError(
            f"table {table.name} does not exist yet at {table.path(settings)}; "
            "run `lakehouse ingest` and `lakehouse build` first"
        )
    return delta_table


def read_arrow(
    table: Table, settings: Settings, columns: list[str] | None = None, filters: Filters | None = None
) -> pa.Table:
    """Read a small table, or the columns and rows of one that `filters` select (partitions are pruned)."""
    return snapshot_arrow(_must_open(table, settings), columns, filters)


def snapshot_arrow(
    delta_table: DeltaTable, columns: list[str] | None = None, filters: Filters | None = None
) -> pa.Table:
    """Read from an opened table's snapshot: what it held when opened, whatever was committed since."""
    return delta_table.to_pyarrow_table(columns=columns, filters=list(filters) if filters else None)


def latest_partition(delta_table: DeltaTable, column: str) -> Any:
    """The largest value of a partition column (e.g. the latest week written), from the log alone; None if empty."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.max(pa.table(delta_table.get_add_actions(flatten=True)).column(f"partition.{column}")).as_py()


def records(arrow_table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts of Python values, as Spark's `collect()` gives them (timestamps naive, in local time)."""
    import pyarrow as pa

    rows = arrow_table.to_pylist()
    zoned = [f.name for f in arrow_table.schema if pa.types.is_timestamp(f.type) and f.type.tz is not None]
    for row in rows if zoned else ():
        for key in zoned:
            value = row[key]
            if value is not None:
                row[key] = value.astimezone().replace(tzinfo=None)
    return rows


def row_count(delta_table: DeltaTable) -> int:
    """Rows of the snapshot: the files' `numRecords` statistics when every file has them, else a scan.

    Deletion vectors would make the statistics overcount, so such tables are scanned (delta-rs then
    says plainly if it cannot read them); the platform does not enable them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    features = delta_table.protocol().reader_features or []
    actions = pa.table(delta_table.get_add_actions(flatten=True))
    counts = actions.column("num_records") if "num_records" in actions.column_names else None
    if "deletionVectors" not in features and counts is not None and counts.null_count == 0:
        return int(pc.sum(counts).as_py() or 0)
    return int(delta_table.to_pyarrow_dataset().count_rows())


def commit_time(uri: str, commit: dict[str, Any], settings: Settings) -> datetime:
    """When a commit was made, as Spark's `DeltaTable.history()` reports it (naive, local time).

    Spark takes the in-commit timestamp when the table records one, else the commit file's modification
    time, not the `timestamp` in commitInfo (which may be a second earlier).
    """
    millis = commit.get("inCommitTimestamp")
    if millis is None:
        log_file = f"{uri.rstrip('/')}/_delta_log/{commit['version']:020d}.json"
        millis = _modified_millis(log_file, settings)
    return datetime.fromtimestamp(int(millis) // 1000)


def _modified_millis(uri: str, settings: Settings) -> int:
    """Modification time of a local file or an S3 object, in epoch milliseconds."""
    if not uri.startswith("s3://"):
        return Path(uri.removeprefix("file://")).stat().st_mtime_ns // 1_000_000
    options = storage_options(uri, settings)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    client = _s3_client(options.get("AWS_ENDPOINT_URL"), options["AWS_REGION"])
    modified = client.head_object(Bucket=bucket, Key=key)["LastModified"]
    return int(modified.timestamp() * 1000)


@cache
def _s3_client(endpoint: str | None, region: str) -> Any:
    """One boto3 client per endpoint (`lakehouse tables` asks about every table's last commit)."""
    import boto3
    from botocore.config import Config

    # Path-style addressing with an endpoint of one's own, as S3A is configured (lakehouse.spark.s3a_conf).
    config = Config(s3={"addressing_style": "path"}) if endpoint else None
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def describe(table: Table, settings: Settings) -> dict[str, object]:
    """What `lakehouse.delta_io.describe` returns (layer, path, version, rows, columns, last write), without Spark."""
    info: dict[str, object] = {"table": table.name, "layer": table.layer, "path": table.path(settings)}
    delta_table = open_table(table, settings)
    if delta_table is None:
        return {**info, "version": None, "rows": 0, "columns": [], "last_write": None}
    [last] = delta_table.history(1)
    written_at = commit_time(storage_uri(table.path(settings)), last, settings)
    return {
        **info,
        "version": delta_table.version(),
        "rows": row_count(delta_table),
        "columns": [field.name for field in delta_table.schema().fields],
        "last_write": f"{written_at.isoformat(timespec='seconds')} {last['operation']}",
    }


def model_version_records(table: Table, settings: Settings, name: str, version: str | None, command: str) -> list[dict]:
    """The rows of one model version in a per-version table (default: its latest version), or a DataError
    naming the `command` that writes them."""
    import pyarrow.compute as pc

    if not exists(table, settings):
        raise DataError(f"{table.name} is empty: run `{command}` first")
    rows = read_arrow(table, settings, filters=[("model_name", "=", name)])
    versions = rows.column("model_version").to_pylist()
    if not versions:
        raise DataError(f"{table.name} has no rows of model {name!r}: run `{command}` first")
    wanted = version or max(versions, key=int)
    chosen = rows.filter(pc.field("model_version") == wanted)
    if chosen.num_rows == 0:
        raise DataError(
            f"{table.name} has no rows of {name} version {wanted}: run `{command} --model-version {wanted}`"
        )
    return records(chosen)

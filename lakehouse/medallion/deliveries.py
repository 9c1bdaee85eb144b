"""Reading a raw delivery: list its files, check each one, and read the readable ones as one DataFrame."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.contracts.model import Contract
from lakehouse.errors import DeliveryError, UsageError

FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".ndjson": "json", ".parquet": "parquet"}
CORRUPT = "_corrupt_record"
HEADER_PROBE_BYTES = 64 * 1024


@dataclass(frozen=True)
class DeliveredFile:
    """One file of a delivery, as the file system reports it."""

    path: str
    size: int
    mtime: int

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def file_format(self) -> str:
        suffix = "." + self.name.rsplit(".", 1)[-1].lower() if "." in self.name else ""
        return FORMATS.get(suffix, "unsupported")


class Frame(NamedTuple):
    """Rows read from some files; `typed` when the format carries types (Parquet), not text (CSV, JSON)."""

    paths: list[str]
    df: DataFrame
    typed: bool


@dataclass
class ReadResult:
    """The readable files, as DataFrames with the paths each one reads, and the rejected files' errors.

    CSV files sharing a header are read as one frame (one scan for many deliveries); JSON and Parquet
    files one frame each. Every frame carries `_source_file`; types are conformed per frame before
    frames of different formats are combined.
    """

    frames: list[Frame] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)


def _hadoop_fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    return jpath, jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def expand_uri_patterns(spark: SparkSession, sources: list[str]) -> list[str]:
    """URIs with a glob pattern (`*`, `?`, `[...]`, `{a,b}`) replaced by what they match, through Hadoop's
    FileSystem for their scheme (s3a://, hdfs://), sorted; other sources as they are (the CLI expands local
    patterns itself, before any JVM starts).

    Marker files are skipped, as listings skip them. A pattern that matches nothing is an error, as for
    local patterns, so a wrong landing path does not pass as 'nothing new'.
    """
    out = []
    for source in sources:
        if "://" not in source or not any(c in source for c in "*?[{"):
            out.append(source)
            continue
        jpath, fs = _hadoop_fs(spark, source)
        statuses = fs.globStatus(jpath) or []
        matched = sorted(s.getPath().toString() for s in statuses if _is_data_file(s.getPath().getName()))
        if not matched:
            raise UsageError(f"--source {source} matches no delivery folder")
        out += matched
    return out


def list_delivery(spark: SparkSession, source: str) -> list[DeliveredFile]:
    """Files of a delivery folder (local or s3a://), skipping `_`/`.` marker files, sorted by path."""
    jpath, fs = _hadoop_fs(spark, source)
    if not fs.exists(jpath):
        raise DeliveryError(f"delivery {source} does not exist")
    statuses = fs.listStatus(jpath) if fs.getFileStatus(jpath).isDirectory() else [fs.getFileStatus(jpath)]
    files = [
        DeliveredFile(s.getPath().toString(), s.getLen(), s.getModificationTime())
        for s in statuses
        if s.isFile() and _is_data_file(s.getPath().getName())
    ]
    if not files:
        raise DeliveryError(f"delivery {source} holds no files")
    return sorted(files, key=lambda f: f.path)


def _is_data_file(name: str) -> bool:
    """Not a marker file (`_SUCCESS`, `.crc`): both listings skip those."""
    return not name.startswith(("_", "."))


def list_local_delivery(source: str) -> list[DeliveredFile] | None:
    """A local delivery's files as `list_delivery` names them (Hadoop's `file:` path, modification time in
    whole milliseconds), read without a JVM; None for a URI, a missing path or a folder with no files."""
    if "://" in source or not os.path.exists(source):
        return None
    path = os.path.abspath(source)
    if os.path.isdir(path):
        entries = [(e.path, e.stat()) for e in os.scandir(path) if e.is_file()]
    else:
        entries = [(path, os.stat(path))]
    files = [
        DeliveredFile(f"file:{p}", st.st_size, st.st_mtime_ns // 1_000_000)
        for p, st in entries
        if _is_data_file(os.path.basename(p))
    ]
    return sorted(files, key=lambda f: f.path) or None


def batch_id(kind: str, files: list[DeliveredFile]) -> str:
    """A delivery's identity: the same files (name, size, modification time) give the same id."""
    digest = hashlib.sha256(kind.encode())
    for f in files:
        digest.update(f"{f.path}|{f.size}|{f.mtime}\n".encode())
    return digest.hexdigest()[:16]


def _read_head(spark: SparkSession, path: str) -> bytes:
    jpath, fs = _hadoop_fs(spark, path)
    stream = fs.open(jpath)
    try:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        buf = jvm.java.io.ByteArrayOutputStream()
        jvm.org.apache.hadoop.io.IOUtils.copyBytes(
            jvm.org.apache.commons.io.input.BoundedInputStream(stream, HEADER_PROBE_BYTES), buf, 4096, False
        )
        return bytes(buf.toByteArray())
    finally:
        stream.close()


def csv_header(head: bytes) -> list[str]:
    """Column names from the first line of a CSV file; a clear error if it is not a CSV header."""
    if not head.strip():
        raise DeliveryError("empty file: no header line")
    if b"\x00" in head:
        raise DeliveryError("not a text file (binary content)")
    try:  # decode the first line only: the probe may end inside a multi-byte character
        first_line = head.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeliveryError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    return [name.strip() for name in next(csv.reader([first_line]))]


def _check_columns(columns: list[str], contract: Contract) -> None:
    data_required = [c for c in contract.required if not c.startswith("_")]
    missing = [c for c in data_required if c not in columns]
    if missing:
        shown = ",".join(columns)[:120]
        hint = " (is the delimiter a comma?)" if len(columns) == 1 else ""
        raise DeliveryError(f"missing required column(s) {', '.join(missing)}; header is {shown!r}{hint}")
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DeliveryError(f"duplicate column(s) {', '.join(dupes)}")


def _read_csv(spark: SparkSession, paths: list[str], columns: list[str]) -> DataFrame:
    schema = T.StructType([T.StructField(c, T.StringType()) for c in [*columns, CORRUPT]])
    return (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("enforceSchema", False)
        .schema(schema)
        .csv(paths)
    )


def _read_one(spark: SparkSession, f: DeliveredFile, contract: Contract) -> DataFrame:
    """Read a JSON Lines or Parquet file; CSV files are grouped by header and read together."""
    if f.file_format == "json":
        df = spark.read.option("primitivesAsString", True).option("columnNameOfCorruptRecord", CORRUPT).json(f.path)
        if not df.columns:
            raise DeliveryError("empty file: no records")
    else:
        try:
            df = spark.read.parquet(f.path)
            df.schema  # noqa: B018 - forces the footer read so a bad file fails here
        except Exception as exc:
            raise DeliveryError(f"unreadable Parquet: {str(exc).splitlines()[0][:200]}") from exc
    _check_columns([c for c in df.columns if c != CORRUPT], contract)
    return df


def read_files(spark: SparkSession, files: list[DeliveredFile], contract: Contract) -> ReadResult:
    """Read every readable file (of one or more deliveries); unreadable ones are listed with their error."""
    result = ReadResult()
    csv_groups: dict[tuple[str, ...], list[str]] = {}
    for f in files:
        try:
            if f.file_format == "unsupported":
                raise DeliveryError(f"unsupported file type (expected one of {', '.join(sorted(FORMATS))})")
            if f.file_format == "csv":
                columns = csv_header(_read_head(spark, f.path))
                _check_columns(columns, contract)
                csv_groups.setdefault(tuple(columns), []).append(f.path)
            else:
                df = _with_source_file(_read_one(spark, f, contract))
                result.frames.append(Frame([f.path], df, typed=f.file_format == "parquet"))
        except DeliveryError as exc:
            result.rejected[f.path] = str(exc)
    for cols, paths in csv_groups.items():
        result.frames.append(Frame(paths, _with_source_file(_read_csv(spark, paths, list(cols))), typed=False))
    return result


def _with_source_file(df: DataFrame) -> DataFrame:
    return df.withColumn("_source_file", F.col("_metadata.file_path"))

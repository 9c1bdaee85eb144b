"""Fixtures shared by the integration modules: a local S3-compatible server and its bucket.

The server is started once per session: Hadoop caches one S3A filesystem per bucket in the JVM, with
the endpoint it was created with, so a second server on another port would never be reached.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from pyspark.sql import SparkSession

from lakehouse.io.spark import s3a_conf
from lakehouse.settings import load_settings
from tests.integration import servers

BUCKET = "pos-deliveries"
KEY, SECRET = "test-access-key", "test-secret-key"  # the local server accepts any; nothing real


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with servers.s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(spark: SparkSession, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """A bucket on the local server, and the shared session's S3A pointed at it."""
    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_REGION": "us-east-1"}
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_conf(load_settings(env)).items():
        hadoop.set(key.removeprefix("spark.hadoop."), value)
    # The JVM started before this test, so its environment has no credentials; set them on the session.
    hadoop.set("fs.s3a.access.key", KEY)
    hadoop.set("fs.s3a.secret.key", SECRET)
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name="us-east-1"
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for obj in listed:
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)

"""Pseudonymisation of personal data: contract columns classified `pii` never leave bronze in clear.

Silver keeps a keyed HMAC-SHA256 of such a value (`pii_hmac(...)` in a contract's transformLogic), so
the same person still joins across tables and deliveries while the value itself cannot be read back
or guessed by hashing candidates without the key. The key comes from the environment
(LAKEHOUSE_PII_SECRET); Airflow tasks set it from the connection `lakehouse_pii` (its password). It is
never a default, never written to a table, a log line or Spark conf: errors name the variable, not the
value, and what lineage records is `key_id`, a one-way fingerprint that changes when the key rotates.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from lakehouse.contracts.model import Contract
from lakehouse.errors import PiiKeyError
from lakehouse.settings import PII_CONNECTION, PII_SECRET_ENV, pii_secret

SECRET_ENV = PII_SECRET_ENV
PII = "pii"
FUNCTION = "pii_hmac"  # the Spark SQL function contracts call; registered by `register`
MIN_KEY_LENGTH = 32  # characters; e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`


def load_key(env: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from LAKEHOUSE_PII_SECRET; a clear error (without the value) when unusable."""
    secret = pii_secret(env)
    if not secret:
        raise PiiKeyError(
            f"{SECRET_ENV} is not set: silver pseudonymises the columns contracts classify as pii and needs "
            f"the key (in Airflow, the password of the connection {PII_CONNECTION!r})"
        )
    if len(secret) < MIN_KEY_LENGTH:
        raise PiiKeyError(f"{SECRET_ENV} is too short: use at least {MIN_KEY_LENGTH} random characters")
    return secret.encode()


def hmac_hex(key: bytes, value: str | None) -> str | None:
    """HMAC-SHA256 of a UTF-8 value as 64 hex characters; null stays null."""
    if value is None:
        return None
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short fingerprint of the key for lineage: it tells keys apart and reveals nothing about them."""
    return hmac.new(key, b"lakehouse key id", hashlib.sha256).hexdigest()[:12]


def register(spark: SparkSession, key: bytes) -> None:
    """Make `pii_hmac(value)` callable from Spark SQL (contract transforms) in this session.

    A Python UDF, not SQL built from sha2 and the key: the key then travels pickled inside the function
    and never shows in a query plan, the Spark UI or an event log.
    """
    spark.udf.register(FUNCTION, lambda value: hmac_hex(key, value), "string")


def pii_columns(contract: Contract) -> list[str]:
    """The contract's columns classified as personal data."""
    return [c.name for c in contract.columns if (c.classification or "").lower() == PII]


def masked(column: str, pii: Collection[str]) -> Column:
    """The column as it may leave bronze: its HMAC when it is one of the `pii` columns, else itself."""
    if column in pii:
        return F.call_function(FUNCTION, F.col(column)).alias(column)
    return F.col(column)

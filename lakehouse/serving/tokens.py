"""Who may call the API: bearer tokens kept only as their SHA-256, each with a name and a role.

The tokens file is YAML, one entry per token (what `lakehouse serve-token` appends to; on Kubernetes the
same text is a Secret's key, mounted as a file):

    tokens:
      - {name: rep-0042, role: "outlet:0042", sha256: 9f86d0...}
      - {name: pricing, role: analyst, sha256: 2c26b4..., rate_per_second: 100, burst: 200}

A plain SHA-256 suffices because every token is 256 random bits: a slow password hash protects guessable
secrets, and it would cost each request milliseconds. Roles: `admin` (everything, /metrics too), `analyst`
(every outlet's data) and `outlet:<id>` (that outlet's data only).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lakehouse.errors import UsageError

ADMIN, ANALYST, OUTLET = "admin", "analyst", "outlet:"
PREFIX = "lh_"  # lets secret scanners and people recognise a leaked token
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Principal:
    """The holder of a token: its name (what logs show, never the token), role and own rate limit if any."""

    name: str
    role: str
    rate_per_second: float | None = None
    burst: int | None = None

    @property
    def outlet(self) -> str | None:
        """The one outlet an `outlet:<id>` token may read; None for roles that read every outlet."""
        return self.role.removeprefix(OUTLET) if self.role.startswith(OUTLET) else None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def may_read_outlet(self, outlet_id: str) -> bool:
        return self.outlet is None or self.outlet == outlet_id


def parse_role(text: str) -> str:
    """`admin`, `analyst` or `outlet:<id>`, else a UsageError."""
    if text in (ADMIN, ANALYST) or (text.startswith(OUTLET) and text.removeprefix(OUTLET).strip()):
        return text
    raise UsageError(f"role must be {ADMIN}, {ANALYST} or {OUTLET}<outlet id>: {text!r}")


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe, prefixed."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenBook:
    """The known tokens by hash: a presented token is hashed and looked up, never compared as text."""

    by_hash: Mapping[str, Principal]

    def who(self, token: str | None) -> Principal | None:
        return self.by_hash.get(token_hash(token)) if token else None


def _entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    raw = yaml.safe_load(path.read_text()) or {}
    entries = raw.get("tokens") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{path}: expected `tokens:` with a list of entries (name, role, sha256)")
    return entries


def read_tokens(path: Path) -> TokenBook:
    """The tokens of `path` (none when it does not exist: every request is then refused); a bad entry is an error."""
    by_hash: dict[str, Principal] = {}
    names: set[str] = set()
    for entry in _entries(path):
        name, digest = str(entry.get("name", "")), str(entry.get("sha256", ""))
        unknown = set(entry) - {"name", "role", "sha256", "rate_per_second", "burst"}
        if not name or name in names or not _SHA256.match(digest) or unknown:
            raise UsageError(f"{path}: entry {name or '?'!r} needs a unique name, a sha256 (64 hex) and no other keys")
        names.add(name)
        rate, burst = entry.get("rate_per_second"), entry.get("burst")
        if (rate is not None and float(rate) <= 0) or (burst is not None and int(burst) < 1):
            raise UsageError(f"{path}: token {name!r} needs a positive rate_per_second and a burst of at least 1")
        by_hash[digest] = Principal(
            name,
            parse_role(str(entry.get("role", ""))),
            float(rate) if rate is not None else None,
            int(burst) if burst is not None else None,
        )
    return TokenBook(by_hash)


def add_token(path: Path, name: str, role: str, rate_per_second: float | None = None, burst: int | None = None) -> str:
    """Create a token for `role`, append its hash to `path` (written whole, owner-only) and return the token.

    The token itself is stored nowhere: the caller shows it once.
    """
    entries = _entries(path)
    if any(str(e.get("name")) == name for e in entries):
        raise UsageError(f"{path} already has a token named {name!r}")
    token = new_token()
    entry: dict[str, Any] = {"name": name, "role": parse_role(role), "sha256": token_hash(token)}
    if rate_per_second is not None:
        entry["rate_per_second"] = rate_per_second
    if burst is not None:
        entry["burst"] = burst
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(yaml.safe_dump({"tokens": [*entries, entry]}, sort_keys=False))
    partial.chmod(0o600)
    os.replace(partial, path)  # readers see the old file or the new one, never half of it
    read_tokens(path)  # what was written reads back
    return token

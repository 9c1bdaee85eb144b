"""Tokens are stored as hashes and read back with their roles; each token's bucket limits its rate."""

from __future__ import annotations

import pytest
import yaml

from jobs import serve_token
from lakehouse.errors import UsageError
from lakehouse.policy import ServingConfig, from_dict
from lakehouse.serving.ratelimit import RateLimiter, retry_after
from lakehouse.serving.tokens import Principal, add_token, read_tokens, token_hash


def test_a_created_token_is_stored_only_as_its_hash_and_reads_back_with_its_role(tmp_path):
    path = tmp_path / "serving" / "tokens.yaml"
    analyst = add_token(path, "pricing", "analyst")
    rep = add_token(path, "rep-1", "outlet:O1", rate_per_second=2.5, burst=5)
    text = path.read_text()
    assert analyst not in text and rep not in text and token_hash(rep) in text
    assert path.stat().st_mode & 0o077 == 0  # owner only
    book = read_tokens(path)
    assert book.who(analyst) == Principal("pricing", "analyst")
    assert book.who(rep) == Principal("rep-1", "outlet:O1", 2.5, 5)
    assert book.who(rep + "x") is None and book.who(None) is None and book.who("") is None
    assert analyst.startswith("lh_") and len(analyst) > 40 and analyst != rep


def test_roles_decide_which_outlets_a_token_reads():
    admin, analyst, rep = Principal("a", "admin"), Principal("b", "analyst"), Principal("c", "outlet:O1")
    assert admin.is_admin and not analyst.is_admin and not rep.is_admin
    assert admin.may_read_outlet("O2") and analyst.may_read_outlet("O2")
    assert rep.may_read_outlet("O1") and not rep.may_read_outlet("O2") and not rep.may_read_outlet("O")
    assert (admin.outlet, analyst.outlet, rep.outlet) == (None, None, "O1")


@pytest.mark.parametrize("role", ["root", "outlet:", "outlet: ", "Analyst", ""])
def test_an_unknown_role_is_refused(tmp_path, role):
    with pytest.raises(UsageError, match="role must be"):
        add_token(tmp_path / "tokens.yaml", "x", role)
    assert not (tmp_path / "tokens.yaml").exists()


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "x", "role": "analyst", "sha256": "abc"},
        {"name": "", "role": "analyst", "sha256": "a" * 64},
        {"name": "x", "role": "analyst", "sha256": "a" * 64, "token": "lh_plain"},
        {"name": "x", "role": "analyst", "sha256": "a" * 64, "burst": 0},
    ],
)
def test_a_bad_entry_in_the_tokens_file_is_an_error(tmp_path, entry):
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump({"tokens": [entry]}))
    with pytest.raises(UsageError, match=r"tokens\.yaml"):
        read_tokens(path)


def test_names_are_unique_and_a_missing_file_knows_no_token(tmp_path):
    path = tmp_path / "tokens.yaml"
    assert read_tokens(path).by_hash == {}
    add_token(path, "pricing", "analyst")
    with pytest.raises(UsageError, match="already has a token named 'pricing'"):
        add_token(path, "pricing", "admin")
    assert len(read_tokens(path).by_hash) == 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate_per_token():
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.wait_seconds("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_seconds("a") == pytest.approx(0.5)  # one more in half a second at 2/s
    assert limiter.wait_seconds("b") == 0.0  # another token has its own bucket
    clock.now += 0.5
    assert limiter.wait_seconds("a") == 0.0 and limiter.wait_seconds("a") > 0
    clock.now += 60  # refills up to the burst, no further
    assert [limiter.wait_seconds("a") == 0.0 for _ in range(4)] == [True, True, True, False]


def test_a_token_with_its_own_limit_gets_its_own_bucket():
    clock = Clock()
    limiter = RateLimiter(rate=100.0, burst=100, clock=clock)
    assert limiter.wait_seconds("tight", rate=0.1, burst=1) == 0.0
    assert limiter.wait_seconds("tight", rate=0.1, burst=1) == pytest.approx(10.0)
    assert retry_after(10.0) == "10" and retry_after(0.01) == "1" and retry_after(1.2) == "2"


def test_serve_token_prints_the_token_alone_once_and_stores_its_hash(tmp_path, monkeypatch, capsys):
    path = tmp_path / "mounted" / "tokens"
    monkeypatch.setenv("LAKEHOUSE_SERVE_TOKENS", str(path))
    assert serve_token.main(["--name", "rep-7", "--role", "outlet:7", "--rate", "5"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert read_tokens(path).who(token) == Principal("rep-7", "outlet:7", 5.0, None)
    assert token not in path.read_text() and token not in err and "rep-7" in err
    assert serve_token.main(["--name", "rep-8", "--role", "owner"]) == 2  # a usage error, nothing written
    assert "role must be" in capsys.readouterr().err and len(read_tokens(path).by_hash) == 1


def test_the_serving_policy_is_validated():
    assert from_dict({}).serving == ServingConfig(10, 20, 40, 100, 1000)
    with pytest.raises(UsageError, match=r"page_size must be between 1 and serving\.max_page_size"):
        from_dict({"serving": {"page_size": 2000}})
    with pytest.raises(UsageError, match="rate_per_second must be positive"):
        from_dict({"serving": {"rate_per_second": 0}})
    with pytest.raises(UsageError, match="unknown keys: rate"):
        from_dict({"serving": {"rate": 5}})

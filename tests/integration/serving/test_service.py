"""`lakehouse serve` as a real server on 127.0.0.1 over real Delta tables and a real MLflow registry.

One server for the module (small_world.py's tables, no Spark): not ready until a @champion exists, then
every endpoint and error, every role, the rate limit, metrics, a new week and a new champion swapped in
while requests run, and, last, its log read for tokens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from lakehouse.serving.tokens import add_token
from lakehouse.settings import Settings
from tests.integration.helpers import fresh_home
from tests.integration.servers import LakehouseServer, lakehouse_server
from tests.integration.serving import small_world
from tests.integration.serving.small_world import MODEL, OUTLETS, PRODUCTS, net_lift, write_week

WEEK = date(2024, 3, 4)
NEXT = WEEK + timedelta(weeks=1)
BEFORE = WEEK - timedelta(weeks=1)
CONFIG = {
    "serving": {"refresh_seconds": 0.2, "rate_per_second": 1e6, "burst": 10**6, "page_size": 5, "max_page_size": 50}
}
ROLES = {"admin": ("admin",), "analyst": ("analyst",), "rep": ("outlet:outlet-1",), "tight": ("analyst", 0.001, 2)}
BAD_TOKEN = "lh_not-a-token-0123456789"


@dataclass
class World:
    settings: Settings
    server: LakehouseServer
    tokens: dict[str, str]
    registry: Any
    before_champion: dict[str, httpx.Response]

    def get(self, path: str, token: str | None = "analyst", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens.get(token, token)}"} if token else {}
        # Only params given: httpx would replace a `next` link's own query with an empty one.
        return httpx.get(f"{self.server.url}{path}", params=params or None, headers=headers, timeout=30)

    def what_if(self, body: Any, token: str | None = "analyst") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens.get(token, token)}"} if token else {}
        return httpx.post(f"{self.server.url}/v1/what-if", json=body, headers=headers, timeout=30)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    with fresh_home(tmp_path_factory, "serving", CONFIG) as (root, settings, _):
        small_world.write_world(settings, WEEK)
        tokens = {name: add_token(settings.tokens_file, name, *role) for name, role in ROLES.items()}
        registry = small_world.register_versions(
            settings, root, 2
        )  # before the server: it must not race to create the store
        with lakehouse_server(root / "server") as server:
            world = World(settings, server, tokens, registry, {})
            wait_for(lambda: "@champion" in world.get("/readyz").text, "the service finds no champion")
            world.before_champion = {path: world.get(path) for path in ("/readyz", "/v1/effects")}
            world.before_champion["/v1/what-if"] = world.what_if({"outlet_id": "outlet-1", "product_id": "P1"})
            registry.set_registered_model_alias(MODEL, "champion", "1")
            server.wait_until_ready()
            yield world


def ranked(week: date, outlets=OUTLETS) -> list[tuple[str, str]]:
    pairs = [(o, p) for o in outlets for p in PRODUCTS]
    return sorted(pairs, key=lambda pair: -net_lift(*pair, week))


def test_not_ready_and_503_until_a_champion_exists_then_ready(world):
    for response in world.before_champion.values():
        assert response.status_code == 503 and response.headers["retry-after"]
        assert (
            response.json()["message"]
            == f"model {MODEL!r} has no @champion yet: run `lakehouse train` (the gate promotes)"
        )
    assert world.get("/readyz", token=None).json() == {"status": "ready", "week": str(WEEK), "champion": "1"}
    assert world.get("/healthz", token=None).json() == {"status": "ok", "week": None, "champion": None}


def test_an_analyst_reads_every_endpoint_as_the_tables_hold_it(world):
    body = world.get("/v1/outlets/outlet-3/recommendations", week=str(WEEK + timedelta(days=4))).json()
    assert (body["outlet_id"], body["week"]) == ("outlet-3", str(WEEK))
    assert [(r["outlet_id"], r["product_id"]) for r in body["items"]] == ranked(WEEK, ["outlet-3"])
    assert {(r["channel"], r["model_version"], r["week_start"]) for r in body["items"]} == {("digital", "1", str(WEEK))}

    pages, url = [], "/v1/recommendations"
    while url and len(pages) < 10:
        page = world.get(url).json()
        assert page["total"] == len(OUTLETS) * len(PRODUCTS) and page["limit"] == 5 and page["week"] == str(WEEK)
        pages.append([(r["outlet_id"], r["product_id"]) for r in page["items"]])
        url = page["next"]
    assert [len(p) for p in pages] == [5, 5, 2] and [pair for p in pages for pair in p] == ranked(WEEK)
    some = world.get("/v1/recommendations", brand="B1", channel="retail", top=3).json()
    assert [(r["outlet_id"], r["product_id"]) for r in some["items"]] == [
        pair for pair in ranked(WEEK, ["outlet-1", "outlet-2"]) if pair[1] != "P2"
    ][:3]
    assert some["total"] == 3 and some["next"] is None

    effects = world.get("/v1/effects").json()
    assert (effects["model_version"], {(e["brand"], e["estimate"]) for e in effects["items"]}) == (
        "1",
        {("B1", 0.1), ("B2", 0.1)},
    )
    assert [(r["week_start"], r["brand"]) for r in world.get("/v1/lift").json()["items"]] == [
        (str(BEFORE), "ALL"),
        (str(BEFORE), "B1"),
    ]
    assert len(world.get("/v1/lift", week=str(BEFORE + timedelta(days=6))).json()["items"]) == 2
    champion = world.get("/v1/models/champion").json()
    assert champion["version"] == "1" and champion["run_id"] == world.registry.get_model_version(MODEL, "1").run_id
    assert champion["served_week"] == str(WEEK)


def test_the_openapi_schema_lists_the_versioned_routes_and_bearer_auth(world):
    schema = world.get("/openapi.json", token=None).json()
    assert {p for p in schema["paths"] if p.startswith("/v1/")} == {
        "/v1/outlets/{outlet_id}/recommendations",
        "/v1/recommendations",
        "/v1/effects",
        "/v1/lift",
        "/v1/models/champion",
        "/v1/what-if",
    }
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "Problem" in schema["components"]["schemas"]


@pytest.mark.parametrize(
    ("path", "params", "token", "status", "message"),
    [
        ("/v1/effects", {}, None, 401, "a valid bearer token is required"),
        ("/v1/effects", {}, BAD_TOKEN, 401, "a valid bearer token is required"),
        ("/v1/outlets/outlet-9/recommendations", {}, "analyst", 404, "outlet 'outlet-9' has no recommendations"),
        ("/v1/outlets/outlet-1/recommendations", {"week": "2020-01-01"}, "admin", 404, "week 2019-12-30 is not served"),
        ("/v1/lift", {"week": "2020-01-06"}, "analyst", 404, "no lift has been measured for week 2020-01-06"),
        ("/v1/recommendations", {"week": "March"}, "analyst", 422, "query.week: Input should be a valid date"),
        ("/v1/recommendations", {"top": "0"}, "analyst", 422, "query.top: Input should be greater than or equal to 1"),
        ("/v1/recommendations", {"limit": "51"}, "analyst", 422, "limit must be at most 50"),
        ("/v1/nothing", {}, "analyst", 404, "Not Found"),
        ("/metrics", {}, "analyst", 403, "an admin token is required"),
    ],
)
def test_errors_are_json_with_a_clear_message(world, path, params, token, status, message):
    response = world.get(path, token=token, **params)
    body = response.json()
    assert (response.status_code, body["status"], body["message"][: len(message)]) == (status, status, message)
    assert body["error"] and response.headers["content-type"] == "application/json"
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "token", "status", "message"),
    [
        ({"outlet_id": "outlet-1", "product_id": "P1"}, None, 401, "a valid bearer token is required"),
        ({"outlet_id": "outlet-2", "product_id": "P1"}, "rep", 403, "this token may read outlet 'outlet-1' only"),
        ({"outlet_id": "outlet-9", "product_id": "P1"}, "rep", 403, "this token may read outlet 'outlet-1' only"),
        ({"product_id": "P1"}, "analyst", 422, "body.outlet_id: Field required"),
        ({"outlet_id": "outlet-1", "product_id": "P1", "price_change": -1.5}, "analyst", 422, "body.price_change"),
        ({"outlet_id": "outlet-1", "product_id": "P1", "unit_price": 0}, "analyst", 422, "body.unit_price"),
        ({"outlet_id": "outlet-1", "product_id": "P1", "price": 2}, "analyst", 422, "body.price: Extra inputs"),
        (
            {"outlet_id": "outlet-1", "product_id": "P1", "unit_price": 2, "price_change": -0.1},
            "analyst",
            422,
            "body: Value error, give unit_price or price_change, not both",
        ),
        ({"outlet_id": "outlet-1", "product_id": "P1", "week": "2020-01-01"}, "rep", 404, "week 2019-12-30 is not"),
        # small_world writes no gold_planned_features: the rest of the API serves, the what-if says why not.
        ({"outlet_id": "outlet-1", "product_id": "P1"}, "rep", 503, "what-if is not available: no planned rows"),
    ],
)
def test_what_if_errors_are_json_with_a_clear_message(world, body, token, status, message):
    response = world.what_if(body, token)
    assert (response.status_code, response.json()["message"][: len(message)]) == (status, message)


def test_a_token_of_another_scheme_is_refused(world):
    response = httpx.get(f"{world.server.url}/v1/effects", headers={"Authorization": f"Basic {world.tokens['admin']}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/outlets/outlet-1/recommendations", 200),
        ("/v1/outlets/outlet-2/recommendations", 403),
        ("/v1/outlets/outlet-9/recommendations", 403),  # 403, not 404: no probing for which outlets exist
        ("/v1/recommendations", 403),
        ("/v1/effects", 200),
        ("/v1/lift", 200),
        ("/v1/models/champion", 200),
        ("/metrics", 403),
    ],
)
def test_an_outlet_token_gets_no_other_outlets_data_from_any_endpoint(world, path, status):
    response = world.get(path, token="rep")
    assert response.status_code == status
    assert not [o for o in OUTLETS if o != "outlet-1" and o in response.text]
    if path == "/v1/outlets/outlet-1/recommendations":
        assert {r["outlet_id"] for r in response.json()["items"]} == {"outlet-1"}
    if status == 403:
        assert response.json()["message"].startswith("this token may read outlet 'outlet-1' only") or path == "/metrics"


def test_a_token_over_its_rate_gets_429_with_retry_after(world):
    statuses = [world.get("/v1/effects", token="tight").status_code for _ in range(3)]
    refused = world.get("/v1/effects", token="tight")
    assert statuses == [200, 200, 429] and refused.status_code == 429
    assert (
        int(refused.headers["retry-after"]) >= 1 and refused.json()["message"] == "rate limit of token 'tight' reached"
    )
    assert world.get("/v1/effects", token="analyst").status_code == 200  # other tokens are not limited by it


def test_an_admin_scrapes_prometheus_metrics(world):
    response = world.get("/metrics", token="admin")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    route = 'route="/v1/outlets/{outlet_id}/recommendations"'
    assert f'lakehouse_http_requests_total{{method="GET",{route},status="403"}}' in text
    assert 'lakehouse_http_requests_total{method="GET",route="/v1/effects",status="429"}' in text
    assert (
        "lakehouse_serving_ready 1" in text
        and 'lakehouse_serving_champion_version{model="transaction_drivers"} 1' in text
    )
    assert f'lakehouse_serving_recommendations{{week="{WEEK}"}} {len(OUTLETS) * len(PRODUCTS)}' in text


def test_a_new_week_and_a_new_champion_swap_in_while_requests_run(world):
    """Readers hammer two endpoints while a week is written and the champion moves: no request fails, no
    response mixes weeks (a listing's rows are all of its week and as many as that week has), and a reader
    that has seen the new week never sees the old one again."""
    rows = {WEEK: len(OUTLETS) * len(PRODUCTS), NEXT: 3 * len(PRODUCTS)}  # the new week has 3 outlets
    version = {WEEK: "1", NEXT: "2"}
    problems: list[str] = []
    seen: list[list[date]] = [[] for _ in range(3)]
    stop = threading.Event()

    def read(mine: list[date]) -> None:
        with httpx.Client(
            base_url=world.server.url, headers={"Authorization": f"Bearer {world.tokens['analyst']}"}
        ) as c:
            while not stop.is_set():
                for path in ("/v1/recommendations?limit=50", "/v1/outlets/outlet-1/recommendations"):
                    response = c.get(path, timeout=30)
                    if response.status_code != 200:
                        problems.append(f"{path}: {response.status_code} {response.text}")
                        continue
                    body = response.json()
                    week = date.fromisoformat(body["week"])
                    items = {(r["week_start"], r["model_version"]) for r in body["items"]}
                    if items != {(str(week), version[week])} or body.get("total", rows[week]) != rows[week]:
                        problems.append(f"{path}: week {week} answered {items}, {body.get('total')} rows")
                    if mine and week < mine[-1]:
                        problems.append(f"{path}: week {week} after {mine[-1]}")
                    mine.append(week)

    readers = [threading.Thread(target=read, args=(mine,)) for mine in seen]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: all(seen), "every reader answered")
        write_week(world.settings, NEXT, "2", {o: OUTLETS[o] for o in list(OUTLETS)[:3]})
        world.registry.set_registered_model_alias(MODEL, "champion", "2")
        wait_for(lambda: all(mine and mine[-1] == NEXT for mine in seen), "every reader sees the new week")
        wait_for(lambda: world.get("/v1/models/champion").json()["version"] == "2", "the new champion is served")
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=60)
    assert problems == []
    assert all(WEEK in mine and NEXT in mine for mine in seen)
    effects = world.get("/v1/effects").json()
    assert effects["model_version"] == "2" and {e["estimate"] for e in effects["items"]} == {0.2}


def test_a_token_added_while_it_runs_is_accepted_without_a_restart(world):
    token = add_token(world.settings.tokens_file, "late", "outlet:outlet-2")
    world.tokens["late"] = token
    wait_for(lambda: world.get("/v1/outlets/outlet-2/recommendations", token="late").status_code == 200, "re-read")
    assert world.get("/v1/outlets/outlet-1/recommendations", token="late").status_code == 403


def test_tokens_never_reach_the_logs(world):
    """Last: every token has been used, refused and rate-limited above, and the log holds those requests."""
    log = world.server.log.read_text()
    assert '"GET /v1/effects HTTP/1.1" 429' in log and "token tight over its rate" in log  # both logs are here
    assert "401 GET /v1/effects: unknown token" in log and "serving week 2024-03-11" in log
    assert "tokens file changed: 5 tokens" in log
    leaked = [name for name, token in {**world.tokens, "bad": BAD_TOKEN}.items() if token in log]
    leaked += [name for name, token in world.tokens.items() if json.dumps(token)[1:-1] in log]
    assert leaked == []

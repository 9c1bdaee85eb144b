"""The FastAPI app: thin routes over the served snapshot, bearer-token access, rate limits, JSON errors.

Each data route depends, in this order, on the caller (401 without a known token, 429 over its rate),
the caller's right to the data asked for (403: another outlet's, or every outlet's for an outlet
token), and the snapshot (503 until tables and champion are loaded); then it answers from that one
snapshot. Effects, lift and the champion describe the model and the experiment, no outlet's own rows,
so every role reads them. Tokens never reach a log: refusals name the token's holder or say "unknown".
The dependencies are `async`: they only look things up, and a sync one would cost each request a hop to
the thread pool. So are the recommendation routes, which answer from memory in a fraction of a millisecond
(a slice of the ranked Arrow table, or of a listing's row numbers computed once per snapshot): with the hops
there and back (the route's, then the response's validation) each request cost twice the work
(bench/RESULTS.md). The what-if, whose model takes milliseconds, stays sync so the loop answers others meanwhile.
Responses are encoded by pydantic-core rather than `json.dumps` (a page of 100 recommendations: 1.1 ms -> 0.2 ms).
The two recommendation routes return their JSON themselves: their rows are the snapshot's, typed by the contract
when read, and validating each row into the response model again cost as much as the rest of the request;
the response model still documents them in the OpenAPI schema.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic_core import to_json
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lakehouse.serving import schemas
from lakehouse.serving.metrics import CONTENT_TYPE, Metrics
from lakehouse.serving.pages import add_pages
from lakehouse.serving.ratelimit import RateLimiter, retry_after
from lakehouse.serving.reports import ReportFiles
from lakehouse.serving.snapshot import Current, Snapshot, lift_rows, outlet_rows, page, ranked_rows
from lakehouse.serving.tokens import Principal, TokenBook
from lakehouse.serving.what_if import WhatIfBook, answer, proposal_of
from lakehouse.weeks import monday

log = logging.getLogger("lakehouse.serving")
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": schemas.Problem} for code in (401, 403, 404, 422, 429, 503)}


@dataclass
class Service:
    """What the routes share with the refresher, which swaps `current.snapshot` and `tokens` whole."""

    current: Current
    tokens: TokenBook
    limiter: RateLimiter
    metrics: Metrics
    page_size: int
    max_page_size: int
    reports: ReportFiles | None = None  # the Evidently reports the /monitoring page links


class FastJSONResponse(JSONResponse):
    """JSON encoded by pydantic-core; a number that is not one (NaN, infinity) is null, as in the snapshot."""

    def render(self, content: Any) -> bytes:
        return to_json(content, inf_nan_mode="null")


async def service(request: Request) -> Service:
    return request.app.state.service


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))],
    svc: Annotated[Service, Depends(service)],
) -> Principal:
    """The token's holder (401 if none or unknown), once its rate allows (429)."""
    who = svc.tokens.who(credentials.credentials if credentials else None)
    if who is None:
        log.info("401 %s %s: %s token", request.method, request.url.path, "unknown" if credentials else "no")
        raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
    wait = svc.limiter.wait_seconds(who.name, who.rate_per_second, who.burst)
    if wait:
        log.info("429 %s %s: token %s over its rate", request.method, request.url.path, who.name)
        raise HTTPException(429, f"rate limit of token {who.name!r} reached", {"Retry-After": retry_after(wait)})
    return who


async def outlet_reader(outlet_id: str, who: Annotated[Principal, Depends(caller)]) -> Principal:
    if not who.may_read_outlet(outlet_id):
        log.info("403 outlet %s: token %s may read outlet %s only", outlet_id, who.name, who.outlet)
        raise HTTPException(403, f"this token may read outlet {who.outlet!r} only")
    return who


async def what_if_request(
    body: schemas.WhatIfRequest, who: Annotated[Principal, Depends(caller)]
) -> schemas.WhatIfRequest:
    """The what-if's body, once the caller may read its outlet (403 otherwise, as for the outlet's routes)."""
    await outlet_reader(body.outlet_id, who)
    return body


async def all_outlets_reader(who: Annotated[Principal, Depends(caller)]) -> Principal:
    if who.outlet is not None:
        log.info("403 every outlet: token %s may read outlet %s only", who.name, who.outlet)
        raise HTTPException(403, f"this token may read outlet {who.outlet!r} only: use /v1/outlets/{who.outlet}/...")
    return who


async def admin(who: Annotated[Principal, Depends(caller)]) -> Principal:
    if not who.is_admin:
        raise HTTPException(403, "an admin token is required")
    return who


async def served(svc: Annotated[Service, Depends(service)]) -> Snapshot:
    """The snapshot this request answers from (the one reference read once), or 503 with the reason."""
    snapshot = svc.current.snapshot
    if snapshot is None:
        raise HTTPException(503, svc.current.not_ready, {"Retry-After": "5"})
    return snapshot


def _served_week(snapshot: Snapshot, week: date | None) -> date:
    """The week asked for (any day of it), which must be the one served."""
    if week is not None and monday(week) != snapshot.week:
        raise HTTPException(
            404, f"week {monday(week)} is not served: the service holds the latest scored week {snapshot.week}"
        )
    return snapshot.week


WeekQuery = Annotated[date | None, Query(description="Any day of the week; default the latest scored week.")]


def _routes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=schemas.Status, tags=["probes"])
    def healthz() -> dict:
        """Alive: the process answers (no token needed)."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=schemas.Status, responses={503: ERRORS[503]}, tags=["probes"])
    def readyz(snapshot: Annotated[Snapshot, Depends(served)]) -> dict:
        """Ready once the tables and the champion are loaded (no token needed)."""
        return {"status": "ready", "week": snapshot.week, "champion": snapshot.champion.version}

    @app.get("/metrics", response_class=PlainTextResponse, responses=ERRORS, tags=["probes"])
    def metrics(
        _: Annotated[Principal, Depends(admin)], svc: Annotated[Service, Depends(service)]
    ) -> PlainTextResponse:
        """Prometheus metrics (admin token)."""
        return PlainTextResponse(svc.metrics.exposition(svc.current.snapshot), media_type=CONTENT_TYPE)

    @app.get("/v1/outlets/{outlet_id}/recommendations", response_model=schemas.OutletRecommendations, responses=ERRORS)
    async def outlet_recommendations(
        outlet_id: str,
        _: Annotated[Principal, Depends(outlet_reader)],
        snapshot: Annotated[Snapshot, Depends(served)],
        week: WeekQuery = None,
    ) -> FastJSONResponse:
        """An outlet's recommended actions for the week, largest net lift first."""
        served_week = _served_week(snapshot, week)
        rows = outlet_rows(snapshot, outlet_id)
        if rows is None:
            raise HTTPException(404, f"outlet {outlet_id!r} has no recommendations in week {served_week}")
        return FastJSONResponse({"outlet_id": outlet_id, "week": served_week, "items": rows})

    @app.get("/v1/recommendations", response_model=schemas.RecommendationPage, responses=ERRORS)
    async def recommendations(
        request: Request,
        _: Annotated[Principal, Depends(all_outlets_reader)],
        snapshot: Annotated[Snapshot, Depends(served)],
        svc: Annotated[Service, Depends(service)],
        week: WeekQuery = None,
        brand: str | None = None,
        channel: str | None = None,
        top: Annotated[int | None, Query(ge=1, description="Only the `top` largest net lifts.")] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int | None, Query(ge=1, description="Rows per page (default and maximum: policy).")] = None,
    ) -> FastJSONResponse:
        """Every outlet's recommendations of the week by brand and channel, largest net lift first, paged."""
        served_week = _served_week(snapshot, week)
        limit = svc.page_size if limit is None else limit
        if limit > svc.max_page_size:
            raise HTTPException(422, f"limit must be at most {svc.max_page_size}")
        rows = ranked_rows(snapshot, brand, channel, top)
        items, following = page(rows, offset, limit)
        query = {k: v for k, v in request.query_params.items() if k not in ("week", "offset")}
        next_page = None
        if following is not None:
            next_page = f"{request.url.path}?{urlencode({**query, 'week': served_week, 'offset': following})}"
        total = rows.num_rows
        return FastJSONResponse(
            {"week": served_week, "total": total, "offset": offset, "limit": limit, "next": next_page, "items": items}
        )

    @app.get("/v1/effects", response_model=schemas.Effects, responses=ERRORS)
    def effects(_: Annotated[Principal, Depends(caller)], snapshot: Annotated[Snapshot, Depends(served)]) -> dict:
        """The champion's causal effects of price and promotions per brand and segment, with intervals."""
        champion = snapshot.champion
        return {"model_name": champion.name, "model_version": champion.version, "items": snapshot.effects}

    @app.get("/v1/lift", response_model=schemas.Lifts, responses=ERRORS)
    def lift(
        _: Annotated[Principal, Depends(caller)], snapshot: Annotated[Snapshot, Depends(served)], week: WeekQuery = None
    ) -> dict:
        """The measured lift of every week (or one), treated vs holdout outlets, beside the promised lift."""
        rows = lift_rows(snapshot, monday(week) if week else None)
        if week is not None and not rows:
            raise HTTPException(404, f"no lift has been measured for week {monday(week)}")
        return {"items": rows}

    @app.get("/v1/models/champion", response_model=schemas.ChampionModel, responses=ERRORS)
    def champion(_: Annotated[Principal, Depends(caller)], snapshot: Annotated[Snapshot, Depends(served)]) -> dict:
        """The registry's @champion the served snapshot was read with."""
        return {**snapshot.champion.__dict__, "served_week": snapshot.week, "loaded_at": snapshot.loaded_at}

    @app.post("/v1/what-if", response_model=schemas.WhatIfAnswer, responses=ERRORS)
    def what_if(
        body: Annotated[schemas.WhatIfRequest, Depends(what_if_request)],
        snapshot: Annotated[Snapshot, Depends(served)],
    ) -> dict:
        """An outlet x product of the served week under a proposed price and promotions (unset: as planned).

        Both the planned row and the proposal are scored by the champion's serving flavour on the row batch
        scoring persisted (gold_planned_features), so `planned_units` is the batch forecast. The interval is
        the one recommendations carry: the champion's causal effects (gold_effects, double ML) of the
        proposal's price change and promotions, delta-method interval at `effects.confidence`, applied to the
        as-planned forecast; it carries the effects' uncertainty, not the forecast's, and is absent (with the
        reason) where the effects do not cover the proposal.
        """
        week = _served_week(snapshot, body.week)
        book = snapshot.what_if
        if not isinstance(book, WhatIfBook):
            raise HTTPException(503, f"what-if is not available: {book}", {"Retry-After": "60"})
        if body.outlet_id not in book.outlets:
            raise HTTPException(404, f"outlet {body.outlet_id!r} has no planned rows in week {week}")
        result = answer(book, body.outlet_id, body.product_id, proposal_of(body))
        if result is None:
            raise HTTPException(404, f"outlet {body.outlet_id!r} has no product {body.product_id!r} in week {week}")
        return result


def _problem(status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"status": status, "error": HTTPStatus(status).phrase, "message": message, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()]
        message = "; ".join(f"{e['where']}: {e['problem']}" for e in errors)
        return _problem(422, message, details=errors)


class RequestMetrics:
    """ASGI middleware counting each response by its route template and status, with its time."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the router set it, in place
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


def create_app(svc: Service, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None) -> FastAPI:
    """The API over `svc`; `lifespan` runs around it (the refresher)."""
    app = FastAPI(
        title="lakehouse recommendations API",
        version="1",
        description="Next week's actions per outlet, the champion's effects and the measured lift (read-only).",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their scripts from a CDN; the schema stays at /openapi.json
        redoc_url=None,
        default_response_class=FastJSONResponse,
    )
    app.state.service = svc
    _routes(app)
    _errors(app)
    add_pages(app)
    app.add_middleware(RequestMetrics, metrics=svc.metrics)
    return app

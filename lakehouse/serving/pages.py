"""Pages for people, server-rendered (Jinja2, inline SVG, no script): an outlet's actions, the model's health.

Access is the API's: the same tokens and roles, presented once through the /login form, which sets an
HttpOnly, SameSite=Strict cookie holding the token. The cookie carries the token itself rather than a
session id: every replica of the service then knows it (no session store), and a token removed from the
tokens file stops working at once, as it does for the API. Pages read only the cookie and the API only the
Authorization header, so no API call rides on a browser's cookie. Without a valid cookie a page redirects
to /login (303); a token that may not read the page gets a 403 page. /monitoring and its reports describe
the model across every outlet, so `admin` and `analyst` read them, `outlet:<id>` tokens do not.

Each request answers from the one snapshot it took first, as the API does. Refusals are logged by token
name; the token is never in a URL (the form POSTs it) nor in a log.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import UTC
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.background import BackgroundTask

from lakehouse.serving.charts import Series, interval_bars, label, week_chart
from lakehouse.serving.model_health import MonitoredWeek
from lakehouse.serving.ratelimit import retry_after
from lakehouse.serving.snapshot import Snapshot, outlet_rows
from lakehouse.serving.tokens import Principal

if TYPE_CHECKING:
    from lakehouse.serving.app import Service

log = logging.getLogger("lakehouse.serving")
COOKIE = "lakehouse_session"
SESSION_SECONDS = 8 * 3600  # a working day; then the form again
# Pages draw with inline CSS and SVG only: nothing else may load, post or frame them.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'"
# Evidently's reports are self-contained HTML with scripts: they run sandboxed, in an origin of their own.
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
TEMPLATES = Environment(
    loader=PackageLoader("lakehouse.serving", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["num"] = label
TEMPLATES.filters["when"] = lambda t: "-" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class PageError(Exception):
    """A page's refusal, answered as an HTML page with its status (401 redirects to the form instead)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def render(
    template: str, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """A template drawn with `context`, as an HTML response that loads nothing and is kept by no cache."""
    html = TEMPLATES.get_template(template).render(**context)
    security = {"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store", "Referrer-Policy": "same-origin"}
    return HTMLResponse(html, status_code, {**security, "X-Content-Type-Options": "nosniff", **(headers or {})})


def _service(request: Request) -> Service:
    return request.app.state.service


async def viewer(request: Request) -> Principal:
    """The cookie's token holder (else to /login, and back here after), once its rate allows (429)."""
    svc = _service(request)
    who = svc.tokens.who(request.cookies.get(COOKIE))
    if who is None:
        log.info("page %s: %s session, to /login", request.url.path, "unknown" if COOKIE in request.cookies else "no")
        raise PageError(401, "sign in with your token")
    wait = svc.limiter.wait_seconds(who.name, who.rate_per_second, who.burst)
    if wait:
        log.info("429 page %s: token %s over its rate", request.url.path, who.name)
        raise PageError(429, f"too many requests for token {who.name!r}", {"Retry-After": retry_after(wait)})
    return who


async def model_reader(request: Request, who: Annotated[Principal, Depends(viewer)]) -> Principal:
    """Tokens that read every outlet (admin, analyst): the monitoring page and its reports are model-wide."""
    if who.outlet is not None:
        log.info("403 page %s: token %s may read outlet %s only", request.url.path, who.name, who.outlet)
        raise PageError(403, f"this token may read outlet {who.outlet!r} only")
    return who


async def served(request: Request) -> Snapshot:
    """The one snapshot this page is drawn from, or a 503 page saying why there is none yet."""
    current = _service(request).current
    snapshot = current.snapshot
    if snapshot is None:
        raise PageError(503, current.not_ready, {"Retry-After": "5"})
    return snapshot


def home(who: Principal) -> str:
    """Where a token's holder lands after signing in: its outlet's page, or the monitoring page."""
    return f"/outlets/{quote(who.outlet, safe='')}" if who.outlet is not None else "/monitoring"


def local_path(target: str | None) -> str | None:
    """`target` if it is a path of this site ("/outlets/x"), else None: the form never sends anyone elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def _secure_cookie(request: Request) -> bool:
    """Secure unless this is plain HTTP on the loopback (a developer's `make serve`): elsewhere HTTPS is expected."""
    host = request.url.hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return request.url.scheme == "https" or not loopback


def _same_origin(request: Request) -> bool:
    """A form post from this site's own page, as the browser says (Sec-Fetch-Site, else Origin); a client that
    sends neither (curl, a test) is no browser another site could drive, and is let through."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def _login_routes(app: FastAPI) -> None:
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(after: Annotated[str | None, Query(alias="next")] = None) -> HTMLResponse:
        return render("login.html", next=local_path(after) or "", error=None, who=None)

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(
        request: Request, token: Annotated[str, Form()] = "", after: Annotated[str, Form(alias="next")] = ""
    ) -> Response:
        """The form's token: a cookie and back to the page asked for (303), or the form again (401)."""
        if not _same_origin(request):
            raise PageError(403, "sign in from this site's own form")
        who = _service(request).tokens.who(token.strip())
        if who is None:
            log.info("login refused: unknown token")
            return render("login.html", 401, next=local_path(after) or "", error="This token is not known.", who=None)
        log.info("login: token %s", who.name)
        response = RedirectResponse(local_path(after) or home(who), status_code=303)
        response.set_cookie(
            COOKIE,
            token.strip(),
            max_age=SESSION_SECONDS,
            path="/",
            secure=_secure_cookie(request),
            httponly=True,
            samesite="strict",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response


def _outlet_context(snapshot: Snapshot, outlet_id: str, rows: list[dict]) -> dict[str, Any]:
    bars = interval_bars(
        [
            (f"{r['product_id']} {r['action']}", r["net_lift_units"], r["net_lift_units_low"], r["net_lift_units_high"])
            for r in rows
        ]
    )
    overall = [r for r in snapshot.lift if r["brand"] == "ALL"]
    weeks = [r["week_start"] for r in overall]
    measured = Series(
        "measured",
        [r["lift_units"] for r in overall],
        [r["ci_low"] for r in overall],
        [r["ci_high"] for r in overall],
    )
    promised = Series(
        "promised",
        [r["predicted_lift_units"] for r in overall],
        [r["predicted_low"] for r in overall],
        [r["predicted_high"] for r in overall],
    )
    return {
        "outlet_id": outlet_id,
        "rows": rows,
        "bars": bars,
        "lift_chart": week_chart(weeks, [measured, promised]) if overall else None,
        "lift_rows": snapshot.lift,
    }


def _monitoring_context(weeks: tuple[MonitoredWeek, ...]) -> dict[str, Any]:
    days = [w.week for w in weeks]

    def chart(name: str, figures: list, mirrored: bool = False) -> Any:
        values = [f.value if f else None for f in figures]
        limits = [f.threshold if f else None for f in figures]
        lines = [limits, [None if t is None else -t for t in limits]] if mirrored else [limits]
        statuses = [f.status if f else "info" for f in figures]
        return week_chart(days, [Series(name, values, statuses=statuses)], lines)

    return {
        "weeks": list(reversed(weeks)),  # the table: latest first
        "drift_chart": chart("drift share", [w.drift_share for w in weeks]),
        "wape_chart": chart("WAPE", [w.wape for w in weeks]),
        "bias_chart": chart("bias", [w.bias for w in weeks], mirrored=True),
    }


def _page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        who = _service(request).tokens.who(request.cookies.get(COOKIE))
        return RedirectResponse("/login" if who is None else home(who), status_code=303)

    @app.get("/outlets/{outlet_id}", response_class=HTMLResponse, include_in_schema=False)
    def outlet_page(
        outlet_id: str,
        who: Annotated[Principal, Depends(viewer)],
        snapshot: Annotated[Snapshot, Depends(served)],
    ) -> HTMLResponse:
        """This week's actions of an outlet with their expected net lift, the realised lift, model and freshness."""
        if not who.may_read_outlet(outlet_id):
            log.info("403 page /outlets/%s: token %s may read outlet %s only", outlet_id, who.name, who.outlet)
            raise PageError(403, f"this token may read outlet {who.outlet!r} only")
        rows = outlet_rows(snapshot, outlet_id)
        if rows is None:
            raise PageError(404, f"outlet {outlet_id!r} has no recommendations in week {snapshot.week}")
        context = _outlet_context(snapshot, outlet_id, rows)
        return render("outlet.html", who=who, snapshot=snapshot, **context)

    @app.get("/monitoring", response_class=HTMLResponse, include_in_schema=False)
    def monitoring_page(
        who: Annotated[Principal, Depends(model_reader)], snapshot: Annotated[Snapshot, Depends(served)]
    ) -> HTMLResponse:
        """The model's health by week: drift, WAPE and bias against thresholds, data health, retraining, reports."""
        return render("monitoring.html", who=who, snapshot=snapshot, **_monitoring_context(snapshot.monitoring))

    @app.get("/monitoring/reports/{week}/{name}", include_in_schema=False)
    def report(
        request: Request,
        week: str,
        name: str,
        _: Annotated[Principal, Depends(model_reader)],
        snapshot: Annotated[Snapshot, Depends(served)],
    ) -> Response:
        """One of a week's Evidently reports: only a name the snapshot listed for that week, so no other file."""
        files = _service(request).reports
        monitored = next((w for w in snapshot.monitoring if w.week.isoformat() == week), None)
        if files is None or monitored is None or name not in monitored.reports:
            raise PageError(404, f"week {week} has no report {name!r}")
        scratch = Path(tempfile.mkdtemp(prefix="lakehouse-report-"))  # where a report on MLflow is downloaded to
        try:
            path = files.fetch(monitored.week, name, monitored.monitor_run_id, scratch)
        except Exception:
            log.exception("report %s of week %s not fetched from MLflow run %s", name, week, monitored.monitor_run_id)
            path = None
        if path is None:
            shutil.rmtree(scratch, ignore_errors=True)
            raise PageError(503, f"report {name!r} of week {week} cannot be read now")
        cleanup = BackgroundTask(shutil.rmtree, scratch, ignore_errors=True)
        return FileResponse(path, media_type="text/html", headers=REPORT_HEADERS, background=cleanup)


def add_pages(app: FastAPI) -> None:
    """The login form and the pages, and their errors as HTML (a 401 redirects to the form)."""

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        if exc.status == 401:
            return RedirectResponse(f"/login?{urlencode({'next': request.url.path})}", status_code=303)
        return render("error.html", exc.status, exc.headers, status=exc.status, message=exc.message, who=None)

    _login_routes(app)
    _page_routes(app)

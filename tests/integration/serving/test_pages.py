"""The pages of `lakehouse serve` on a real server over small_world's Delta tables and registry, and in a real browser.

One server for the module: the outlet page, the monitoring page and its reports, the /login form and its cookie,
who may read which page, and, marked slow, headless Chromium signing in through the form.
"""

from __future__ import annotations

import http.client
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from lakehouse.serving.pages import COOKIE
from lakehouse.serving.tokens import add_token
from lakehouse.settings import Settings
from tests.integration.helpers import fresh_home
from tests.integration.servers import LakehouseServer, lakehouse_server
from tests.integration.serving import small_world
from tests.integration.serving.small_world import MODEL, REPORTS, net_lift
from tests.integration.serving.test_service import wait_for

WEEK = date(2024, 3, 4)
CONFIG = {"serving": {"refresh_seconds": 0.2, "rate_per_second": 1e6, "burst": 10**6}}
ROLES = {"admin": ("admin",), "analyst": ("analyst",), "rep": ("outlet:outlet-1",), "tight": ("analyst", 0.001, 2)}
LIFT_WEEKS = [WEEK - timedelta(weeks=k) for k in (4, 3, 2)]  # small_world writes the week before WEEK itself
# Monitored weeks: (drift share, WAPE, bias, lag of gold_features, retraining requested).
MONITORED = {
    WEEK - timedelta(weeks=3): (0.1, 0.20, 0.02, 0.0, False),
    WEEK - timedelta(weeks=2): (0.45, 0.22, -0.05, 0.0, True),
    WEEK - timedelta(weeks=1): (0.2, 0.31, 0.2, 1.0, False),
}
BROWSER_INSTALL = "apt-get install -y chromium chromium-driver (Debian), and selenium from the dev extra"


@dataclass
class World:
    settings: Settings
    server: LakehouseServer
    tokens: dict[str, str]
    before_champion: httpx.Response | None = None  # a page asked for before the first snapshot

    def get(self, path: str, who: str | None = None, **params: str) -> httpx.Response:
        """A page as `who`'s browser asks for it (the session cookie holds the token), redirects not followed."""
        headers = {"Cookie": f"{COOKIE}={self.tokens.get(who, who)}"} if who else {}
        return httpx.get(f"{self.server.url}{path}", params=params or None, headers=headers, timeout=30)

    def login(self, token: str, next_path: str = "") -> httpx.Response:
        form = {"token": token, "next": next_path}
        return httpx.post(f"{self.server.url}/login", data=form, headers={"Origin": self.server.url}, timeout=30)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    with fresh_home(tmp_path_factory, "pages", CONFIG) as (root, settings, _):
        small_world.write_world(settings, WEEK)
        small_world.write_lift_weeks(settings, LIFT_WEEKS)
        tokens = {name: add_token(settings.tokens_file, name, *role) for name, role in ROLES.items()}
        registry = small_world.register_versions(settings, root, 1)
        latest = max(MONITORED)  # its reports are on its MLflow run only, as when monitoring ran in another pod
        small_world.write_monitoring(settings, MONITORED, {latest: small_world.log_reports_run(registry, root, latest)})
        with lakehouse_server(root / "server") as server:
            world = World(settings, server, tokens)
            wait_for(lambda: "@champion" in httpx.get(f"{server.url}/readyz").text, "the service finds no champion")
            world.before_champion = world.get("/outlets/outlet-1", "rep")
            registry.set_registered_model_alias(MODEL, "champion", "1")
            server.wait_until_ready()
            yield world


def cells(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of the table with that id (tags stripped)."""
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no table {table_id}"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    strip = lambda cell: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()  # noqa: E731
    return [[strip(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]


def test_the_login_form_sets_an_httponly_same_site_cookie_and_goes_back_to_the_page(world):
    form = world.get("/login", next="/outlets/outlet-1")
    assert form.status_code == 200 and 'name="token" type="password"' in form.text
    assert 'name="next" value="/outlets/outlet-1"' in form.text

    response = world.login(world.tokens["rep"], "/outlets/outlet-1")
    assert (response.status_code, response.headers["location"]) == (303, "/outlets/outlet-1")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={world.tokens['rep']};")
    flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "max-age", "path"} <= set(flags)
    assert flags["samesite"].strip().lower() == "samesite=strict" and flags["max-age"].strip() == "Max-Age=28800"
    assert "secure" not in flags  # plain HTTP on 127.0.0.1 only; anywhere else the cookie is Secure

    assert world.login(world.tokens["analyst"]).headers["location"] == "/monitoring"  # no page asked for: home
    assert world.login(world.tokens["rep"], "//elsewhere.example/x").headers["location"] == "/outlets/outlet-1"
    assert [world.get("/", who).headers["location"] for who in (None, "rep", "admin")] == [
        "/login",
        "/outlets/outlet-1",
        "/monitoring",
    ]


def test_an_unknown_token_gets_the_form_again_and_no_cookie(world):
    response = world.login("lh_not-a-token-0123456789", "/monitoring")
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert "This token is not known." in response.text and 'value="/monitoring"' in response.text


@pytest.mark.parametrize("headers", [{"Origin": "https://elsewhere.example"}, {"Sec-Fetch-Site": "cross-site"}])
def test_a_login_posted_from_another_site_is_refused(world, headers):
    form = {"token": world.tokens["analyst"], "next": ""}
    response = httpx.post(f"{world.server.url}/login", data=form, headers=headers)
    assert response.status_code == 403 and "set-cookie" not in response.headers
    assert "sign in from this site&#39;s own form" in response.text


@pytest.mark.parametrize("path", ["/outlets/outlet-1", "/monitoring", f"/monitoring/reports/{WEEK}/quality.html"])
@pytest.mark.parametrize("who", [None, "lh_not-a-token-0123456789"])
def test_a_page_without_a_valid_session_redirects_to_the_form(world, path, who):
    response = world.get(path, who)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path.replace('/', '%2F')}"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/outlets/outlet-1", 200),
        ("/outlets/outlet-2", 403),
        ("/outlets/outlet-9", 403),  # 403, not 404: no probing for which outlets exist
        ("/monitoring", 403),  # model-wide: analysts and admins
        (f"/monitoring/reports/{min(MONITORED)}/quality.html", 403),
    ],
)
def test_an_outlet_token_reads_its_own_page_only(world, path, status):
    response = world.get(path, "rep")
    assert response.status_code == status and response.headers["content-type"].startswith("text/html")
    assert not [o for o in small_world.OUTLETS if o != "outlet-1" and o in response.text]
    if status == 403:
        assert "this token may read outlet &#39;outlet-1&#39; only" in response.text


def test_the_api_takes_no_session_cookie_and_the_pages_no_bearer_token(world):
    api = httpx.get(f"{world.server.url}/v1/effects", headers={"Cookie": f"{COOKIE}={world.tokens['analyst']}"})
    assert api.status_code == 401
    page = httpx.get(f"{world.server.url}/monitoring", headers={"Authorization": f"Bearer {world.tokens['analyst']}"})
    assert page.status_code == 303


def test_the_outlet_page_shows_its_actions_the_lift_the_model_and_the_freshness(world):
    response = world.get("/outlets/outlet-3", "analyst")
    html = response.text
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    lifts = {p: net_lift("outlet-3", p, WEEK) for p in small_world.PRODUCTS}
    top = max(lifts, key=lifts.__getitem__)
    expected_top = f"deal on {top} (B1): {lifts[top]:.2f} units net [{lifts[top] - 2:.2f}, {lifts[top] + 2:.2f}]"
    assert re.search(r'<p class="top" id="top-action">(.*?)</p>', html).group(1) == expected_top
    actions = cells(html, "actions")
    assert [row[0] for row in actions] == sorted(lifts, key=lambda p: -lifts[p])
    assert actions[0][2:4] == ["deal", "-5.00%"] and actions[0][7] == f"{lifts[top]:.2f}"
    bars = re.findall(r"<title>(P\d deal): ([^<]*)</title>", html)
    assert [name for name, _ in bars] == [f"{p} deal" for p in sorted(lifts, key=lambda p: -lifts[p])]
    assert bars[0][1] == f"{lifts[top]:.2f} [{lifts[top] - 2:.2f}, {lifts[top] + 2:.2f}]"

    lift_weeks = sorted([*LIFT_WEEKS, WEEK - timedelta(weeks=1)])
    points = re.findall(r"<title>(\d{4}-\d\d-\d\d) measured: ([^<]*)</title>", html)
    assert [w for w, _ in points] == [str(w) for w in lift_weeks]
    assert points[0][1] == "1.00 [0.20, 1.80]"
    promised = re.findall(r"<title>(\d{4}-\d\d-\d\d) promised: ", html)
    assert promised == [str(w) for w in LIFT_WEEKS]  # small_world's own week promised nothing
    by_week = [[str(w), "ALL"] for w in lift_weeks] + [[str(lift_weeks[-1]), "B1"]]
    assert [row[:2] for row in cells(html, "lift")] == by_week
    freshness = re.sub(r"<[^>]+>", "", re.search(r'<dl class="facts" id="freshness">(.*?)</dl>', html, re.S).group(1))
    assert f"{MODEL} version 1 (@champion" in freshness
    assert f"scored week{WEEK}" in freshness.replace("\n", "")
    assert re.search(r"gold_recommendations v0, gold_effects v0, gold_lift v1, silver_outlets v0", freshness)


def test_a_token_over_its_rate_gets_a_429_page_with_retry_after(world):
    statuses = [world.get("/monitoring", "tight").status_code for _ in range(2)]
    refused = world.get("/monitoring", "tight")
    assert statuses == [200, 200] and refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "too many requests for token &#39;tight&#39;" in refused.text


def test_a_page_before_the_first_snapshot_is_a_503_page_saying_what_is_missing(world):
    response = world.before_champion
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert f"model &#39;{MODEL}&#39; has no @champion yet" in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_an_unknown_outlet_is_a_404_page(world):
    response = world.get("/outlets/outlet-9", "analyst")
    assert response.status_code == 404 and "outlet &#39;outlet-9&#39; has no recommendations" in response.text


def test_the_monitoring_page_shows_each_weeks_health_against_its_thresholds(world):
    response = world.get("/monitoring", "admin")
    html = response.text
    assert response.status_code == 200
    rows = {row[0]: row for row in cells(html, "weeks")}
    assert list(rows) == [str(w) for w in sorted(MONITORED, reverse=True)]
    quiet, drifted, stale = (str(w) for w in sorted(MONITORED))
    assert rows[quiet][1:6] == ["v1", "0.10 / 0.30", "0.20 / 0.25", "0.02 / 0.15", "ok"]
    assert rows[quiet][6] == "none"
    assert rows[drifted][2] == "0.45 / 0.30" and rows[drifted][6].startswith("requested")
    assert f"request req-{drifted}: data_drift: drift share above its threshold" in rows[drifted][6]
    assert rows[stale][3:6] == ["0.31 / 0.25", "0.20 / 0.15", "fail freshness gold_features"]
    for week in MONITORED:
        links = re.findall(rf'href="/monitoring/reports/{week}/([^"]+)"', html)
        assert links == list(REPORTS)
    assert "unit_price" not in html  # per-column drift is in the reports, not on the page
    assert len(re.findall(r'<polyline class="limit"', html)) == 4  # drift, WAPE, bias above and below
    drift_points = re.findall(r'<circle class="(\w+)"[^>]*/>\s*</g>', html.split("<h2>WAPE")[0])
    assert drift_points == ["ok", "fail", "ok"]


def test_a_weeks_report_is_served_from_the_home_or_its_mlflow_run_and_no_other_file(world):
    week = min(MONITORED)
    response = world.get(f"/monitoring/reports/{week}/data_drift.html", "analyst")
    assert response.status_code == 200 and f"data_drift.html of {week}" in response.text
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert not (world.settings.reports_dir / str(max(MONITORED))).exists()
    from_mlflow = world.get(f"/monitoring/reports/{max(MONITORED)}/quality.html", "admin")
    assert from_mlflow.status_code == 200 and f"quality.html of {max(MONITORED)}" in from_mlflow.text
    secret = world.settings.tokens_file.read_text()
    assert "sha256" in secret
    for path in (
        f"/monitoring/reports/{week}/decision.json",  # in the folder, but not a report
        f"/monitoring/reports/{WEEK}/data_drift.html",  # a week never monitored
        f"/monitoring/reports/{week}/..%2F..%2Fserving%2Ftokens.yaml",
        f"/monitoring/reports/{week}/%2E%2E%2F%2E%2E%2Fserving%2Ftokens.yaml",
        "/monitoring/reports/..%2Fserving/tokens.yaml",
        f"/monitoring/reports/{week}/../../serving/tokens.yaml",
        f"/monitoring/reports/{week}/..%5C..%5Cserving%5Ctokens.yaml",
    ):
        status, body = raw_get(world.server.url, path, world.tokens["analyst"])
        assert status in (404, 422), (path, status)
        assert "sha256" not in body and "{}" != body.strip(), path


def raw_get(url: str, path: str, token: str) -> tuple[int, str]:
    """GET `path` byte for byte (httpx would resolve the dot segments before sending them)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Cookie": f"{COOKIE}={token}"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def chromium(log_dir: Path):
    """Headless Chromium under chromedriver (Debian's), logging the console; fails, never skips, when missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {BROWSER_INSTALL}")
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(f"chromium or chromedriver not found on PATH: {BROWSER_INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = browser  # with the driver's path given, Selenium Manager downloads nothing
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1800"):
        options.add_argument(flag)
    for flag in ("--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)  # no traffic but to the server under test
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver, log_output=str(log_dir / "chromedriver.log")))


@pytest.mark.slow
def test_a_real_browser_signs_in_and_reads_the_outlet_and_monitoring_pages(world, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium(tmp_path)
    try:
        browser.get(f"{world.server.url}/outlets/outlet-1")
        assert urlsplit(browser.current_url).path == "/login"
        browser.find_element(By.ID, "token").send_keys(world.tokens["analyst"])
        browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
        WebDriverWait(browser, 60).until(
            lambda b: urlsplit(b.current_url).path == "/outlets/outlet-1",
            f"not back on the outlet page after signing in: {browser.current_url}",
        )
        top = max(small_world.PRODUCTS, key=lambda p: net_lift("outlet-1", p, WEEK))
        assert browser.find_element(By.ID, "top-action").text.startswith(f"deal on {top} (B1): ")
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg rect.bar")) == len(small_world.PRODUCTS)
        browser.save_screenshot(str(tmp_path / "outlet.png"))
        cookie = browser.get_cookie(COOKIE)
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert browser.execute_script("return document.cookie") == ""  # scripts cannot read the token

        browser.get(f"{world.server.url}/monitoring")
        weeks = browser.find_elements(By.CSS_SELECTOR, "#weeks tbody tr")
        assert [w.get_attribute("id") for w in weeks] == [f"week-{w}" for w in sorted(MONITORED, reverse=True)]
        browser.save_screenshot(str(tmp_path / "monitoring.png"))

        week = sorted(MONITORED)[1]  # its drift report becomes a real one of Evidently's: scripts, plots, fonts inline
        write_evidently_report(world.settings.reports_dir / str(week) / "data_drift.html")
        browser.find_element(By.CSS_SELECTOR, f'a[href="/monitoring/reports/{week}/data_drift.html"]').click()
        WebDriverWait(browser, 120).until(
            lambda b: "Drift" in b.find_element(By.TAG_NAME, "body").text, "the Evidently report did not draw"
        )
        browser.save_screenshot(str(tmp_path / "report.png"))
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        browser.quit()
    assert all((tmp_path / f"{page}.png").stat().st_size > 10_000 for page in ("outlet", "monitoring", "report"))


def write_evidently_report(path: Path) -> None:
    """A data drift report of two small frames, saved by Evidently as `lakehouse monitor` saves its own."""
    import numpy as np
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    draws = np.random.default_rng(7)
    reference = pd.DataFrame({"unit_price": draws.normal(2.0, 0.1, 200), "units": draws.poisson(20, 200) * 1.0})
    current = pd.DataFrame({"unit_price": draws.normal(2.2, 0.1, 200), "units": draws.poisson(22, 200) * 1.0})
    Report([DataDriftPreset()]).run(current, reference).save_html(str(path))


def test_tokens_never_reach_the_logs(world):
    """Last: tokens were posted to the form, sent as cookies and refused above."""
    log = world.server.log.read_text()
    assert "login: token rep" in log and "login refused: unknown token" in log
    assert "403 page /monitoring: token rep may read outlet outlet-1 only" in log
    leaked = [name for name, token in world.tokens.items() if token in log]
    assert leaked == [] and "lh_not-a-token" not in log

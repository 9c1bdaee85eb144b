"""Serving benchmark: `lakehouse serve` over 100k outlets x 20 products, its start-up, memory, latency under
load, and a new week swapped in under load.

- the world (`bench.serving_world`, no Spark): the gold tables with delta-rs and a real MLflow registry whose
  @champion carries a real serving flavour (fitted once with Spark and cached under the temp dir);
- start-up: the real server (`python -m lakehouse.cli.main serve` on 127.0.0.1, a subprocess), from its
  start until `/readyz` answers 200, and its resident memory then (/proc);
- load (`bench.http_load`, 4 keep-alive connections, each phase bounded in count and time): GET
  `/v1/outlets/{id}/recommendations` (random outlets), GET `/v1/recommendations` pages (random offsets, the
  default page size), POST `/v1/what-if` (random outlet x product, a 10% cut with a deal). Each closed-loop
  (as fast as answered) and paced at the goal's rate. **Floor**: `/healthz` of the same server, same client,
  same mode: the cost of HTTP, uvicorn and FastAPI with no work;
- swap: while paced mixed requests run, a second process appends the next week to gold_recommendations and
  gold_planned_features (as `lakehouse score` would); every response is checked: 200, one week in it, as
  many rows as that week has, and no old week once the new one has answered a request sent before.

Usage: python -m bench.serving_load [--outlets 100000] [--seconds 15] [--results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench.harness import publish, run_child
from bench.http_load import Request, run_phase

REPO = Path(__file__).resolve().parents[1]
WEEK = date(2024, 6, 3)
NEXT = WEEK + timedelta(weeks=1)
FLAVOUR = Path(tempfile.gettempdir()) / "lakehouse-bench" / "serving-flavour"
CLIENTS = 4
GOALS = {"recommendations": (500, 20.0), "page": (500, 20.0), "what-if": (200, 50.0)}  # req/s, p99 ms
READY_GOAL_S, RSS_GOAL_MB = 30.0, 1536


def use_home(home: Path) -> dict[str, str]:
    """Point this process at a fresh home (refresh every second, no rate limit in the way); the server's env."""
    config = home.with_name(home.name + "-config.yaml")
    config.write_text(yaml.safe_dump({"serving": {"refresh_seconds": 1.0}}))
    for var in ("LAKEHOUSE_WAREHOUSE", "LAKEHOUSE_CONTRACTS_DIR", "MLFLOW_TRACKING_URI"):
        os.environ.pop(var, None)
    os.environ.update({"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_CONFIG": str(config)})
    return {**os.environ, "PYTHONPATH": str(REPO)}


def prepare(outlets: int) -> tuple[dict, str, str]:
    """The world and the champion in the current home: seconds taken, an analyst token without a rate limit,
    and the champion's run."""
    from bench import serving_world
    from lakehouse.serving.tokens import add_token
    from lakehouse.settings import load_settings

    if not (FLAVOUR / "booster.ubj").exists():
        run_child("bench.serving_load", "--fit-flavour", str(FLAVOUR))
    settings = load_settings()
    started = time.perf_counter()
    client, runs = serving_world.register_champion(settings, FLAVOUR)
    client.set_registered_model_alias(serving_world.MODEL, "champion", "1")
    registered = time.perf_counter()
    serving_world.write_world(settings, WEEK, outlets, "1", runs)
    written = time.perf_counter()
    token = add_token(settings.tokens_file, "bench", "analyst", rate_per_second=1e9, burst=10**9)
    return {"register_s": round(registered - started, 1), "write_s": round(written - registered, 1)}, token, runs[0]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def memory_mb(pid: int) -> dict[str, int]:
    """Resident memory now and at its peak (VmRSS, VmHWM), MB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_mb": int(status["VmRSS"].split()[0]) // 1024, "peak_mb": int(status["VmHWM"].split()[0]) // 1024}


def start_server(env: dict[str, str], log: Path, port: int) -> tuple[subprocess.Popen, dict]:
    """The real server, timed from its start to /healthz (process up) and to /readyz 200 (snapshot loaded)."""
    cmd = [sys.executable, "-m", "lakehouse.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    up = None
    while _get(f"http://127.0.0.1:{port}/readyz") != 200:
        if proc.poll() is not None or time.perf_counter() - started > 600:
            proc.kill()
            raise RuntimeError(f"the server did not become ready:\n{log.read_text()[-3000:]}")
        if up is None and _get(f"http://127.0.0.1:{port}/healthz") == 200:
            up = time.perf_counter() - started
        time.sleep(0.05)
    ready = time.perf_counter() - started
    return proc, {"up_s": round(up or ready, 1), "ready_s": round(ready, 1), **memory_mb(proc.pid)}


def requests(outlets: int, seed: int = 5) -> dict[str, Any]:
    """Each route's random request maker (one Random per route, so a run is repeatable)."""
    from bench.serving_world import outlet_ids, product_ids

    ids, products, rows = outlet_ids(outlets), product_ids(), outlets * len(product_ids())
    pick = random.Random(seed)

    def healthz() -> Request:
        return ("GET", "/healthz", None)

    def outlet() -> Request:
        return ("GET", f"/v1/outlets/{pick.choice(ids)}/recommendations", None)

    def page() -> Request:
        return ("GET", f"/v1/recommendations?offset={pick.randrange(0, rows, 100)}", None)

    def what_if() -> Request:
        body = {"outlet_id": pick.choice(ids), "product_id": pick.choice(products), "price_change": -0.1, "deal": True}
        return ("POST", "/v1/what-if", json.dumps(body).encode())

    return {"healthz": healthz, "recommendations": outlet, "page": page, "what-if": what_if}


def load_phases(port: int, pid: int, token: str, outlets: int, seconds: float) -> list[dict]:
    """Each route closed-loop, then paced at its goal's rate (the floor, /healthz, at the fastest rate)."""
    makers, phases = requests(outlets), []
    for route, make in makers.items():
        phases.append(run_phase(route, port, pid, token, make, CLIENTS, 100_000, seconds))
        print(json.dumps(phases[-1]), flush=True)
    for route, make in makers.items():
        rate = GOALS.get(route, GOALS["recommendations"])[0]
        phases.append(run_phase(route, port, pid, token, make, CLIENTS, int(rate * seconds), seconds + 5, rate))
        print(json.dumps(phases[-1]), flush=True)
    return phases


def swap_phase(port: int, pid: int, token: str, outlets: int, env: dict[str, str], run_id: str) -> dict:
    """Paced mixed requests while another process writes the next week; every response checked (see module doc)."""
    from bench.serving_world import PRODUCTS

    makers = requests(outlets, seed=9)
    mix = [makers["recommendations"], makers["page"], makers["what-if"]]
    turn = iter(range(10**9))
    rows = outlets * PRODUCTS
    times: dict[str, float] = {}
    answered = {WEEK: 0, NEXT: 0}

    def check(request: Request, status: int, body: bytes, sent: float) -> str | None:
        if status != 200:
            return f"{request[0]} {request[1]}: {status} {body[:200]!r}"
        answer = json.loads(body)
        week = date.fromisoformat(answer["week"])
        if week == NEXT:
            times.setdefault("first_new", time.perf_counter())
        elif sent > times.get("first_new", float("inf")):
            return f"{request[1]}: week {week} answered a request sent after week {NEXT} was served"
        answered[week] += 1
        items = answer.get("items")
        if items is None:
            return None  # a what-if: one row, its week is the answer's
        weeks = {item["week_start"] for item in items}
        if weeks != {str(week)} or answer.get("total", rows) != rows or len(items) != answer.get("limit", PRODUCTS):
            return f"{request[1]}: week {week} answered rows of {weeks}, {len(items)} of {answer.get('total')}"
        return None

    def until() -> bool:
        if "written" not in times and writer.poll() is not None:
            times["written"] = time.perf_counter()
        first = times.get("first_new")
        return first is not None and time.perf_counter() - first > 5  # 5 s of the new week, then stop

    def mixed() -> Request:
        return mix[next(turn) % len(mix)]()

    cmd = [sys.executable, "-m", "bench.serving_load", "--write-week", str(NEXT), "--outlets", str(outlets)]
    started = time.perf_counter()
    writer = subprocess.Popen(["nice", "-n", "19", *cmd, "--run-id", run_id], cwd=REPO, env=env)
    phase = run_phase("swap", port, pid, token, mixed, CLIENTS, 10**6, 300, 200, check, until)
    if writer.wait() != 0:
        raise RuntimeError("writing the next week failed")
    written = times.get("written", time.perf_counter())
    first_new = times.get("first_new")
    return {
        **phase,
        "write_s": round(written - started, 1),
        "swap_s": None if first_new is None else round(first_new - written, 1),
        "answered": {str(week): count for week, count in answered.items()},
    }


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}" if floor else "-"


def report(outlets: int, world: dict, startup: dict, phases: list[dict], memory: dict, swap: dict) -> str:
    """The three tables: start-up and memory, latency and throughput per route, the swap under load."""
    rows = outlets * 20
    lines = [
        f"Load average at the start of the run: {startup['load']}; clients: {CLIENTS} keep-alive connections.",
        "",
        "| outlets | rows | world written s | registry s | process up s | ready s (goal <= 30) | RSS ready MB "
        "| RSS after load MB | peak RSS during swap MB (goal <= 1536) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {outlets:,} | {rows:,} | {world['write_s']} | {world['register_s']} | {startup['up_s']} "
        f"| {startup['ready_s']} | {startup['rss_mb']} | {memory['after_load']['rss_mb']} "
        f"| {memory['after_swap']['peak_mb']} |",
        "",
        "| route | mode | requests | req/s | x floor req/s | p50 ms | p99 ms | x floor p99 | max ms | failed "
        "| server CPU (cores) | client CPU (cores) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    floors = {p["target_rate"]: p for p in phases if p["phase"] == "healthz"}
    for p in phases:
        floor = floors[p["target_rate"]] if p["target_rate"] in floors else floors[500]
        mode = "closed loop" if p["target_rate"] is None else f"paced {p['target_rate']:.0f}/s"
        lines.append(
            f"| {p['phase']} | {mode} | {p['requests']:,} | {p['rate']:,.0f} | {_ratio(p['rate'], floor['rate'])} "
            f"| {p['p50_ms']} | {p['p99_ms']} | {_ratio(p['p99_ms'], floor['p99_ms'])} | {p['max_ms']} "
            f"| {p['failed']} | {p['server_cpu']} | {p['client_cpu']} | {p['load'][0]} -> {p['load'][1]} |"
        )
    lines += [
        "",
        "| swap under load | requests | failed | answered old / new week | next week written s | served s after "
        "| req/s | p50 ms | p99 ms | max ms | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| mixed, paced 200/s | {swap['requests']:,} | {swap['failed']} | {swap['answered'][str(WEEK)]:,} / "
        f"{swap['answered'][str(NEXT)]:,} | {swap['write_s']} | {swap['swap_s']} | {swap['rate']:,.0f} "
        f"| {swap['p50_ms']} | {swap['p99_ms']} | {swap['max_ms']} | {swap['load'][0]} -> {swap['load'][1]} |",
    ]
    if swap["problems"]:
        lines += ["", "Swap problems (first 5): " + "; ".join(swap["problems"])]
    return "\n".join(lines)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(outlets: int, seconds: float, results: Path | None) -> None:
    import shutil

    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = use_home(root / "home")
    try:
        world, token, run_id = prepare(outlets)
        print(json.dumps(world), flush=True)
        port = _free_port()
        load = round(os.getloadavg()[0], 2)
        proc, startup = start_server(env, root / "serve.log", port)
        startup["load"] = load
        print(json.dumps(startup), flush=True)
        try:
            phases = load_phases(port, proc.pid, token, outlets, seconds)
            memory = {"after_load": memory_mb(proc.pid)}
            swap = swap_phase(port, proc.pid, token, outlets, env, run_id)
            print(json.dumps(swap), flush=True)
            memory["after_swap"] = memory_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        publish("serving", report(outlets, world, startup, phases, memory, swap), results)
    finally:
        print(f"server log: {root / 'serve.log'}" if os.environ.get("BENCH_KEEP") else "", flush=True)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outlets", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0, help="each load phase's time bound")
    parser.add_argument("--results", type=Path, help="write the figures into this RESULTS.md's serving section")
    parser.add_argument("--fit-flavour", type=Path, help=argparse.SUPPRESS)  # child: the one Spark step
    parser.add_argument("--write-week", type=date.fromisoformat, help=argparse.SUPPRESS)  # child: the next week
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_flavour:
        from bench.serving_world import fit_flavour

        print("RESULT " + json.dumps(fit_flavour(args.fit_flavour)), flush=True)
    elif args.write_week:
        from bench.serving_world import write_week
        from lakehouse.settings import load_settings

        write_week(load_settings(), args.write_week, args.outlets, "1", args.run_id)
    else:
        run(args.outlets, args.seconds, args.results)


if __name__ == "__main__":
    main()

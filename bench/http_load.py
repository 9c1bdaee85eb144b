"""A small HTTP/1.1 load generator on asyncio: a few keep-alive connections, bounded in count and time.

It is deliberately thin (no HTTP library on the request path): the server and the load share the machine's
cores, so every microsecond the client spends is one the server does not get. Each phase reports the
latencies, the throughput, the failures, and the CPU the client and the server used meanwhile.

- closed loop (`rate=None`): each connection sends its next request when the last one is answered, so the
  throughput is what the server sustains with that many requests in flight;
- paced (`rate=N`): the connections together send N requests a second on a fixed schedule, and a latency is
  counted from when its request was due, so a server that falls behind shows it in the latencies (no
  coordinated omission) and in a throughput below N.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# One request: method, target (path and query), JSON body or None.
Request = tuple[str, str, bytes | None]
# A response's problem, or None when it is as expected: check(request, status, body, when it was sent).
Check = Callable[[Request, int, bytes, float], str | None]
TICKS = os.sysconf("SC_CLK_TCK")


def ok(request: Request, status: int, body: bytes, sent: float) -> str | None:
    return None if status == 200 else f"{request[0]} {request[1]}: {status} {body[:200]!r}"


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1 (responses with a Content-Length, as uvicorn sends JSON)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: bytes) -> None:
        self.reader, self.writer, self.headers = reader, writer, headers

    @classmethod
    async def open(cls, host: str, port: int, token: str) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n".encode())

    async def request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        head = f"{method} {target} HTTP/1.1\r\n".encode() + self.headers
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        self.writer.write(head + b"\r\n" + (body or b""))
        response = await self.reader.readuntil(b"\r\n\r\n")
        status = int(response[9:12])
        length = 0
        for line in response.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding":
                raise RuntimeError(f"{target}: a chunked response, which this client does not read")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def _client(
    conn: Connection,
    next_request: Callable[[], Request],
    check: Check,
    quota: int,
    deadline: float,
    due: float,
    interval: float | None,
    tally: Tally,
    until: Callable[[], bool] | None,
) -> None:
    for _ in range(quota):
        if until is not None and until():
            return
        if interval is not None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        started = due if interval is not None else time.perf_counter()
        if time.perf_counter() > deadline:
            return
        request, sent = next_request(), time.perf_counter()
        try:
            status, body = await conn.request(*request)
        except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
            tally.problems.append(f"{request[1]}: {type(exc).__name__} {exc}")
            return
        tally.latencies.append(time.perf_counter() - started)
        problem = check(request, status, body, sent)
        if problem is not None:
            tally.problems.append(problem)
        if interval is not None:
            due += interval


async def _phase(
    port: int,
    token: str,
    next_request: Callable[[], Request],
    check: Check,
    clients: int,
    count: int,
    seconds: float,
    rate: float | None,
    until: Callable[[], bool] | None,
) -> tuple[Tally, float]:
    conns = [await Connection.open("127.0.0.1", port, token) for _ in range(clients)]
    tally = Tally()
    interval = None if rate is None else clients / rate
    start = time.perf_counter()
    deadline = start + seconds
    try:
        await asyncio.gather(
            *(
                _client(
                    c,
                    next_request,
                    check,
                    count // clients,
                    deadline,
                    start + i * (interval or 0) / clients,
                    interval,
                    tally,
                    until,
                )
                for i, c in enumerate(conns)
            )
        )
    finally:
        for c in conns:
            c.close()
    return tally, time.perf_counter() - start


def run_phase(
    name: str,
    port: int,
    server_pid: int,
    token: str,
    next_request: Callable[[], Request],
    clients: int,
    count: int,
    seconds: float,
    rate: float | None = None,
    check: Check = ok,
    until: Callable[[], bool] | None = None,
) -> dict:
    """`count` requests over `clients` connections, at most `seconds` (or until `until()`); latencies,
    throughput, failures, and the CPU of the server and of this client (in cores) meanwhile."""
    load_before = os.getloadavg()[0]
    server_before, client_before = cpu_seconds(server_pid), time.process_time()
    tally, wall = asyncio.run(_phase(port, token, next_request, check, clients, count, seconds, rate, until))
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_before, time.process_time() - client_before
    ms = np.array(tally.latencies) * 1000 if tally.latencies else np.array([np.nan])
    return {
        "phase": name,
        "clients": clients,
        "target_rate": rate,
        "requests": len(tally.latencies),
        "failed": len(tally.problems),
        "problems": tally.problems[:5],
        "wall_s": round(wall, 2),
        "rate": round(len(tally.latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "server_cpu": round(server_cpu / wall, 2),  # cores
        "client_cpu": round(client_cpu / wall, 2),
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }

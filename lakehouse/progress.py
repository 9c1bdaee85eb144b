"""Progress lines: one per step, with elapsed seconds, so long commands show they are alive."""

from __future__ import annotations

import time


class Progress:
    """Call it with a message to print `[job  12.3s] message`."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{self.job} {time.monotonic() - self.started:6.1f}s] {message}", flush=True)

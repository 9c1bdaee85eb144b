"""Plumbing shared by the jobs: argument types, progress lines and the error-to-exit-code mapping."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import NoReturn

from lakehouse.contracts import ContractError


class UsageError(ValueError):
    """A bad argument or path: one line on stderr, exit code 2."""


class DataError(RuntimeError):
    """The data broke an invariant (conservation, coverage): the job fails with counts, exit code 1."""


def iso_date(text: str) -> date:
    """argparse type for YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def count(text: str) -> int:
    """argparse type for a number of things: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return value


def monday(day: date) -> date:
    """The Monday starting the week of `day` (weeks are Monday to Sunday, as Spark's date_trunc)."""
    return day - timedelta(days=day.weekday())


def week_range(first: date, last: date) -> tuple[date, date]:
    """Mondays of the first and last weeks touched by the dates; a clear error if reversed."""
    if last < first:
        raise UsageError(f"--to {last} is before --from {first}")
    return monday(first), monday(last)


def utc_now() -> datetime:
    """Naive UTC wall-clock time (Spark's session time zone is UTC). Only jobs call this."""
    return datetime.utcnow().replace(microsecond=0)


class Progress:
    """One line per step, with elapsed seconds, so long commands show they are alive."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{self.job} {time.monotonic() - self.started:6.1f}s] {message}", flush=True)


EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (UsageError, 2),
    (ContractError, 2),
    (FileNotFoundError, 2),
    (DataError, 1),
)
# Errors of modules that import pyspark, by name: the commands that read without Spark must not load it
# to map an error, and a module that was never imported cannot have raised its error.
SPARK_SIDE_EXIT_CODES = (("lakehouse.deliveries", "DeliveryError", 1),)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2; subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_main(
    prog: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
    description: str,
) -> int:
    """Parse arguments, run, and turn the platform's errors into one line on stderr and an exit code."""
    parser = Parser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return guarded(prog, lambda: run(args))


def _loaded_error(module: str, name: str) -> type[BaseException] | None:
    return getattr(sys.modules[module], name) if module in sys.modules else None


def guarded(prog: str, fn: Callable[[], int]) -> int:
    """Call `fn`; known errors print `prog: error: ...` and return their exit code."""
    try:
        return fn()
    except Exception as exc:
        setup_error = _loaded_error("lakehouse.spark", "SetupError")  # only a Spark job can lack its setup
        if setup_error is not None and isinstance(exc, setup_error):
            print(f"{prog}: setup error: {exc}", file=sys.stderr)
            return 3
        loaded = [(_loaded_error(module, name), code) for module, name, code in SPARK_SIDE_EXIT_CODES]
        known = [*EXIT_CODES, *((cls, code) for cls, code in loaded if cls is not None)]
        code = next((code for cls, code in known if isinstance(exc, cls)), None)
        if code is None:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return code

"""Command-line plumbing shared by the jobs: argument types, the parser, and parse -> run -> exit code."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import date
from typing import NoReturn

from lakehouse.errors import guarded


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

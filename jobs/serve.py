"""Serve the recommendations API and its pages (FastAPI under uvicorn): the latest scored week, effects, lift,
the champion, and the model's health by week.

Reads the gold tables with delta-rs (no JVM) and the registry's @champion, and swaps to a new Delta version
or a new champion while it runs. Every API route but /healthz and /readyz needs a bearer token
(`lakehouse serve-token`); the pages (/outlets/<id>, /monitoring) take the same token through /login.
docs/runbooks/serving.md says how to run it, its roles, its endpoints and its pages."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakehouse.cli.args import run_main
from lakehouse.policy import load_ml_config
from lakehouse.serving.serve_flow import serve
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default LAKEHOUSE_SERVE_HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default LAKEHOUSE_SERVE_PORT, else 8000)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    serve(settings, load_ml_config(), args.host or settings.serve_host, args.port or settings.serve_port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("serve", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())

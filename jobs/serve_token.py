"""Create a bearer token for the recommendations API and print it once; only its SHA-256 is stored.

The hash is appended to the tokens file (LAKEHOUSE_SERVE_TOKENS, default `$LAKEHOUSE_HOME/serving/tokens.yaml`),
which a running service re-reads. Roles: admin, analyst (every outlet), outlet:<id> (that outlet only)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lakehouse.cli.args import count, run_main
from lakehouse.serving.tokens import add_token
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="who holds it (logs show this name, never the token)")
    parser.add_argument("--role", required=True, help="admin, analyst or outlet:<outlet id>")
    parser.add_argument("--rate", type=float, help="its own requests per second (default: serving.rate_per_second)")
    parser.add_argument("--burst", type=count, help="its own burst (default: serving.burst)")


def run(args: argparse.Namespace) -> int:
    path = load_settings().tokens_file
    token = add_token(path, args.name, args.role, args.rate, args.burst)
    print(token)
    # The token alone on stdout, so `TOKEN=$(lakehouse serve-token ...)` takes it; the note on stderr.
    print(f"token {args.name!r} ({args.role}) added to {path}; it is not shown again", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("serve-token", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())

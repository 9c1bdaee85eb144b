"""The platform's errors and the exit code each gives a command (no pyspark here: every layer may raise them).

2: the user asked for something wrong (an argument, a path, a contract); 1: the data broke an invariant
or a registry action was refused; 3: the machine lacks something the platform needs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UsageError(ValueError):
    """A bad argument or path: one line on stderr, exit code 2."""


class ContractError(ValueError):
    """A contract file is missing or invalid."""


class PiiKeyError(UsageError):
    """The pseudonymisation key is missing or too short."""


class DataError(RuntimeError):
    """The data broke an invariant (conservation, coverage): the job fails with counts, exit code 1."""


class DeliveryError(ValueError):
    """The delivery cannot be ingested at all (bad path, type conflict); nothing is written."""


class RegistryError(DataError):
    """A registry action that is refused (the message says why and what would allow it)."""


class ConflictError(DataError):
    """Another job kept committing to the same Delta data while this one wrote it (Delta's optimistic
    concurrency), through every retry: run the command again once the other job is done."""


class SetupError(RuntimeError):
    """The machine lacks something the platform needs; the message says how to fix it."""


EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (SetupError, 3),
    (UsageError, 2),
    (ContractError, 2),
    (FileNotFoundError, 2),
    (DataError, 1),
    (DeliveryError, 1),
)


def exit_code(exc: BaseException) -> int | None:
    """The exit code of one of the platform's errors; None for anything else (a bug: let it raise)."""
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), None)


def guarded(prog: str, fn: Callable[[], int]) -> int:
    """Call `fn`; known errors print `prog: error: ...` (or `setup error`) and return their exit code."""
    try:
        return fn()
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        kind = "setup error" if isinstance(exc, SetupError) else "error"
        print(f"{prog}: {kind}: {exc}", file=sys.stderr)
        return code

"""The platform's errors and the exit code each gives a command (no pyspark here: every layer may raise them).

2: the user asked for something wrong (an argument, a path, a contract); 1: the data broke an invariant
or a registry action was refused; 3: the machine lacks something the platform needs; 4: a server the
platform needs did not answer through its client's retries (run the command again once it is back).
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


class UnavailableError(RuntimeError):
    """A server the platform needs (the MLflow tracking server) did not answer through its client's bounded
    retries: exit code 4. What the command left is what a killed command leaves: run it again."""


class SetupError(RuntimeError):
    """The machine lacks something the platform needs; the message says how to fix it."""


EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (SetupError, 3),
    (UsageError, 2),
    (ContractError, 2),
    (FileNotFoundError, 2),
    (DataError, 1),
    (DeliveryError, 1),
    (UnavailableError, 4),
)


def unavailable(exc: BaseException) -> UnavailableError | None:
    """The MLflow client's "gave up on the server" as an UnavailableError; None for anything else.

    MLflow's REST client retries a request that gets no answer (MLFLOW_HTTP_REQUEST_MAX_RETRIES times,
    with exponential backoff, each within MLFLOW_HTTP_REQUEST_TIMEOUT) and then raises an MlflowException
    "API request to <url> failed with exception ... Max retries exceeded" or "... timeout exception"
    (mlflow/utils/rest_utils.py). Told apart here by its module and message, so this module imports no MLflow.
    """
    text = str(exc)
    gave_up = "Max retries exceeded" in text or "failed with timeout exception" in text
    if not (type(exc).__module__.startswith("mlflow.") and text.startswith("API request to") and gave_up):
        return None
    url = text.removeprefix("API request to ").split(" ", 1)[0]
    return UnavailableError(
        f"the MLflow tracking server did not answer {url} through the client's retries "
        "(MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_TIMEOUT); "
        "the command stopped there, and what it wrote before stays as after a kill: run it again once the server "
        "is back"
    )


def exit_code(exc: BaseException) -> int | None:
    """The exit code of one of the platform's errors; None for anything else (a bug: let it raise)."""
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), None)


def guarded(prog: str, fn: Callable[[], int]) -> int:
    """Call `fn`; known errors print `prog: error: ...` (or `setup error`) and return their exit code."""
    try:
        return fn()
    except Exception as raised:
        exc: BaseException = unavailable(raised) or raised
        code = exit_code(exc)
        if code is None:
            raise
        kind = "setup error" if isinstance(exc, SetupError) else "error"
        print(f"{prog}: {kind}: {exc}", file=sys.stderr)
        return code

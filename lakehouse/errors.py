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
    """A server the platform needs (the MLflow tracking server, object storage) did not answer through its
    client's bounded retries: exit code 4. What the command left is what a killed command leaves: run it
    again."""


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


# The Java side's "no answer" (S3A through Py4J): the first line of the Java exception names one of these.
JAVA_NO_ANSWER = (
    "java.net.ConnectException",
    "java.net.UnknownHostException",
    "java.net.SocketTimeoutException",
    "java.net.NoRouteToHostException",
)


def unavailable(exc: BaseException) -> UnavailableError | None:
    """A client's "gave up on the server" as an UnavailableError; None for anything else.

    - MLflow's REST client retries a request that gets no answer (MLFLOW_HTTP_REQUEST_MAX_RETRIES times,
      with exponential backoff, each within MLFLOW_HTTP_REQUEST_TIMEOUT), then raises an MlflowException
      "API request to <url> failed with exception ... Max retries exceeded" or "... timeout exception"
      (mlflow/utils/rest_utils.py).
    - Hadoop's S3A retries (fs.s3a.attempts.maximum SDK attempts, fs.s3a.retry.limit retries), then the
      Java call fails with a java.net exception, which Py4J raises as a Py4JJavaError.
    Told apart by module and message, so this module imports neither MLflow nor pyspark.
    """
    text, module = str(exc), type(exc).__module__
    if module.startswith("mlflow.") and text.startswith("API request to"):
        if "Max retries exceeded" in text or "failed with timeout exception" in text:
            url = text.removeprefix("API request to ").split(" ", 1)[0]
            return UnavailableError(
                f"the MLflow tracking server did not answer {url} through the client's retries "
                "(MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_TIMEOUT); "
                "the command stopped there, and what it wrote before stays as after a kill: run it again once the "
                "server is back"
            )
    if module.startswith("py4j.") and type(exc).__name__ == "Py4JJavaError":
        java = next((line for line in text.splitlines() if line.startswith(": ")), "").removeprefix(": ")
        if java.startswith(JAVA_NO_ANSWER):
            what = java.split(": ", 1)[-1][:300]
            return UnavailableError(
                f"object storage did not answer through S3A's retries (fs.s3a.attempts.maximum, fs.s3a.retry.limit): "
                f"{what}; the command stopped there, and what it wrote before stays as after a kill: run it again "
                "once the storage answers"
            )
    return None


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

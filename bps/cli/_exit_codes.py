"""The one place where exceptions become one-line messages and exit codes.

Exit codes: 0 success; 1 an operation failed (the engine, the butler, a file); 2 the request was
wrong (bad submit YAML, unknown plugin or run id, bad option); 3 a run finished but not every job
succeeded; 130 interrupted.  Expected errors print ``error: <message>`` (as ``butler`` and
``pipetask`` do; their traceback only at ``--log-level DEBUG``); anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from butler import ButlerError

from .._exceptions import BpsConfigError, BpsError, RunNotFoundError, WmsPluginError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RUN_NOT_SUCCEEDED = 3
EXIT_INTERRUPTED = 130


def describe_error(err: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line message) for an expected error escaping a command; None for a bug."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, KeyError) and message.startswith("'") and message.endswith("'"):
        message = message[1:-1]
    if isinstance(err, BpsConfigError):
        return EXIT_USAGE, f"submit config: {message}"
    if isinstance(err, WmsPluginError | RunNotFoundError):
        return EXIT_USAGE, message
    if isinstance(err, BpsError | ButlerError | ValueError | LookupError | OSError):
        return EXIT_FAILED, message
    return None

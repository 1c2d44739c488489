"""The one place where exceptions become one-line messages and exit codes.

Exit codes: 0 success; 1 an operation failed (the engine, the butler, a file); 2 the request was
wrong (bad submit YAML, unknown plugin or run id, bad option); 3 a run finished but not every job
succeeded; 130 interrupted.  Tracebacks are printed only with ``--log-level DEBUG``.
"""

from __future__ import annotations

from .._exceptions import BpsConfigError, BpsError, RunNotFoundError, WmsPluginError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RUN_NOT_SUCCEEDED = 3
EXIT_INTERRUPTED = 130


def describe_error(err: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception escaping a command."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, BpsConfigError):
        return EXIT_USAGE, f"submit config: {message}"
    if isinstance(err, WmsPluginError | RunNotFoundError):
        return EXIT_USAGE, message
    if isinstance(err, BpsError):
        return EXIT_FAILED, message
    if _is_lower_layer_error(err) or isinstance(err, OSError):
        return EXIT_FAILED, message
    return EXIT_FAILED, f"{type(err).__name__}: {message} (unexpected; --log-level DEBUG shows the traceback)"


def _is_lower_layer_error(err: BaseException) -> bool:
    """Errors the butler and quantumgraph layers raise on purpose carry messages meant for users."""
    return any(cls.__module__.split(".", 1)[0] in ("butler", "quantumgraph") for cls in type(err).__mro__)

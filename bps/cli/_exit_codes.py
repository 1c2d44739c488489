"""bps's exit codes, plugged into the shared error boundary (:mod:`butler.cli_support`).

Exit codes: 0 success; 1 an operation failed (the engine, the butler, a graph file, a file the
user named); 2 the request was wrong (bad submit YAML, unknown plugin or run id, bad option);
3 a run finished but not every job succeeded; 130 interrupted.  Expected errors (skybatch's own
error roots, and missing or unreadable paths the user gave) print ``error: <message>`` on one
line, as ``butler`` and ``pipetask`` do (their traceback only at ``--log-level DEBUG``);
anything else is a bug and keeps its traceback, followed by a line saying it is one.
"""

from __future__ import annotations

from butler import ButlerError
from butler.cli_support import ErrorRule
from quantumgraph import QuantumGraphError

from .._exceptions import (
    BpsConfigError,
    BpsError,
    RunNotFoundError,
    UnprotectedDashboardError,
    WmsPluginError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RUN_NOT_SUCCEEDED = 3
EXIT_INTERRUPTED = 130

#: The rules bps's group gives the boundary; the most specific class of an error wins.
ERROR_RULES: dict[type[BaseException], ErrorRule] = {
    KeyboardInterrupt: ErrorRule(EXIT_INTERRUPTED, message="interrupted"),
    BpsConfigError: ErrorRule(EXIT_USAGE, prefix="submit config: ", one_line=True),
    WmsPluginError: ErrorRule(EXIT_USAGE, one_line=True),
    RunNotFoundError: ErrorRule(EXIT_USAGE, one_line=True),
    UnprotectedDashboardError: ErrorRule(EXIT_USAGE, one_line=True),
    BpsError: ErrorRule(EXIT_FAILED, one_line=True),
    QuantumGraphError: ErrorRule(EXIT_FAILED, one_line=True),
    ButlerError: ErrorRule(EXIT_FAILED, one_line=True),
}

#: FileNotFoundError / PermissionError on a path the user gave (anywhere else: a bug).
PATH_ERROR_RULE = ErrorRule(EXIT_FAILED, one_line=True)

"""Provenance datasets: what each quantum did, and with which software a run was made.

Every quantum writes two datasets besides its task's outputs, predicted by the graph like any
output and registered by the merge like any output:

* ``{label}_log`` (storage class ``ButlerLogRecords``, JSON lines): the log records emitted while
  the quantum ran, written even when the task raises; then the last record holds the exception
  with its traceback.
* ``{label}_metadata`` (``TaskMetadata``, JSON): start and end time, wall and CPU time, the
  process's peak memory, host, the IDs of the outputs written and whether it succeeded.

Every run writes one ``packages`` dataset (``Packages``): the versions of Python, skybatch and
every distribution imported in the process that wrote it.  A run whose existing ``packages``
disagrees with this process's versions is refused unless ``--no-versions``.

``pipetask report`` and ``--skip-existing-in`` read these datasets back, so what decides whether
a quantum succeeded is the metadata it wrote, not a workflow engine's opinion.
"""

from __future__ import annotations

import datetime
import logging
import os
import resource
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._exceptions import QuantumTimeoutError

if TYPE_CHECKING:
    from butler import DatasetRef

    from ._model import Quantum

#: Connection names of the provenance outputs in every task's quanta (never task attribute names:
#: a task's own connections cannot start with an underscore).
LOG_CONNECTION = "_log"
METADATA_CONNECTION = "_metadata"
PROVENANCE_CONNECTIONS = frozenset({LOG_CONNECTION, METADATA_CONNECTION})

LOG_STORAGE_CLASS = "ButlerLogRecords"
METADATA_STORAGE_CLASS = "TaskMetadata"
PACKAGES_STORAGE_CLASS = "Packages"
PACKAGES_DATASET_TYPE = "packages"


def log_dataset_type_name(label: str) -> str:
    return f"{label}_log"


def metadata_dataset_type_name(label: str) -> str:
    return f"{label}_metadata"


# -- log capture ----------------------------------------------------------------------------------


class _CaptureHandler(logging.Handler):
    """Collects the records of the quantum running in this process (one at a time per process)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.sink: list[logging.LogRecord] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        sink = self.sink
        if sink is not None:
            sink.append(record)


_HANDLER: _CaptureHandler | None = None

#: Records below this level are not captured unless logging is configured lower (--log-level).
CAPTURE_LEVEL = logging.INFO


def _capture_handler() -> _CaptureHandler:
    """Install the capture handler on the root logger once per process.

    Task code logs at INFO, which the command line's default (WARNING) would drop before any
    handler sees it; so the root logger is lowered to INFO and the handlers already there keep
    the level they had, which leaves what reaches the terminal unchanged.
    """
    global _HANDLER
    root = logging.getLogger()
    # Reconfiguring logging (basicConfig(force=True), as each command line start does) removes
    # every root handler: install again whenever ours is gone.
    if _HANDLER is None or _HANDLER not in root.handlers:
        previous = root.getEffectiveLevel()
        if previous > CAPTURE_LEVEL:
            for handler in root.handlers:
                if handler.level == logging.NOTSET:
                    handler.setLevel(previous)
            root.setLevel(CAPTURE_LEVEL)
        _HANDLER = _HANDLER or _CaptureHandler()
        root.addHandler(_HANDLER)
    return _HANDLER


def _record_dict(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": record.name,
        "level": record.levelname,
        "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
        "message": record.getMessage(),
        "filename": record.filename,
        "lineno": record.lineno,
        "funcName": record.funcName,
        "process": record.process,
    }
    if record.exc_info and record.exc_info[1] is not None:
        out["exception"] = _exception_dict(record.exc_info[1])
    return out


def _exception_dict(exc: BaseException) -> dict[str, Any]:
    # The task's own exception is the interesting one; ours (QuantumExecutionError) wraps it.
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return {
        "type": f"{type(cause).__module__}.{type(cause).__qualname__}",
        "message": str(cause),
        "traceback": "".join(traceback.format_exception(exc)),
    }


# -- one quantum's record ------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class QuantumRecorder:
    """Collects one quantum's provenance while it runs; :meth:`log` and :meth:`metadata` give the
    objects to write afterwards.  Used as ``with recorder: ...`` around the whole quantum."""

    def __init__(self, quantum: Quantum) -> None:
        self.quantum = quantum
        self.records: list[logging.LogRecord] = []
        self.error: str | None = None
        self.exception: dict[str, Any] | None = None
        self.written: list[DatasetRef] = []
        self._start = ""
        self._end = ""
        self._wall = 0.0
        self._cpu = 0.0

    def __enter__(self) -> QuantumRecorder:
        handler = _capture_handler()
        handler.sink = self.records
        self._start = _now()
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self._wall = time.perf_counter() - self._wall
        self._cpu = time.process_time() - self._cpu
        self._end = _now()
        if _HANDLER is not None:
            _HANDLER.sink = None

    def failed(self, exc: BaseException) -> None:
        """Note the exception that ended the quantum (call inside the ``with``)."""
        self.error = str(exc)
        self.exception = _exception_dict(exc)

    def log(self) -> list[dict[str, Any]]:
        out = [_record_dict(r) for r in self.records]
        if self.exception is not None:
            out.append(
                {
                    "name": "quantumgraph.execution",
                    "level": "ERROR",
                    "time": self._end,
                    "message": self.error,
                    "process": os.getpid(),
                    "exception": self.exception,
                }
            )
        return out

    def metadata(self) -> dict[str, Any]:
        q = self.quantum
        return {
            "quantum_id": str(q.id),
            "task": q.task_label,
            "data_id": dict(zip(q.data_id.dimensions, q.data_id.values_tuple, strict=True)),
            "succeeded": self.error is None,
            "error": self.error,
            "start": self._start,
            "end": self._end,
            "wall_seconds": round(self._wall, 6),
            "cpu_seconds": round(self._cpu, 6),
            # ru_maxrss is in KiB on Linux, bytes on macOS; the process's peak up to now.
            "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            * (1 if sys.platform == "darwin" else 1024),
            "host": _HOST,
            "pid": os.getpid(),
            "outputs": [str(ref.id) for ref in self.written],
        }


_HOST = socket.gethostname()


def provenance_refs(quantum: Quantum) -> tuple[DatasetRef | None, DatasetRef | None]:
    """The quantum's predicted ``_log`` and ``_metadata`` refs (None in graphs from before 1.2)."""
    log = quantum.outputs.get(LOG_CONNECTION)
    meta = quantum.outputs.get(METADATA_CONNECTION)
    return (log[0] if log else None), (meta[0] if meta else None)


# -- per-quantum time limit ------------------------------------------------------------------------


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise :class:`QuantumTimeoutError` in this thread if the body runs longer than ``seconds``.

    Uses the process's real-time timer (SIGALRM), so it interrupts pure-Python and most blocking
    calls; it only works in the main thread, where every executor here runs quanta.
    """
    if not seconds:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise QuantumTimeoutError(f"{what}: exceeded the per-quantum time limit of {seconds:g} s (--timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- packages ----------------------------------------------------------------------------------


def current_packages() -> dict[str, str]:
    """Versions of Python, skybatch and every distribution with a module imported in this process."""
    from importlib import metadata

    versions: dict[str, str] = {"python": sys.version.split()[0]}
    try:
        versions["skybatch"] = metadata.version("skybatch")
    except metadata.PackageNotFoundError:
        versions["skybatch"] = "unknown"
    top_level = {name.partition(".")[0] for name in list(sys.modules)}
    by_module = metadata.packages_distributions()
    for module in sorted(top_level):
        for dist in by_module.get(module, ()):
            key = dist.lower()
            if key in versions:
                continue
            try:
                versions[key] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return versions


def package_differences(existing: Mapping[str, Any], current: Mapping[str, str]) -> list[str]:
    """``name: old -> new`` for every package both sides list with different versions.

    Packages only one side imported are not differences: a batch job imports fewer than the
    process that built the graph.
    """
    return [
        f"{name}: {existing[name]} -> {current[name]}"
        for name in sorted(existing)
        if name in current and str(existing[name]) != current[name]
    ]

"""``pipetask run``: execute a whole graph on this machine, on N processes, in dependency order.

Workers are forked once and inherit the graph, so scheduling a quantum only sends its index.
A failed quantum's descendants are not run; everything else is.  Workers write straight to the
datastore through a quantum-backed butler, exactly as batch jobs do; the caller then merges.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from ._execution import ExecutionOutcome, TaskFactory, execute_quanta, try_execute_quantum, write_init_outputs
from ._model import QuantumGraph
from ._qbb import make_limited_butler
from ._written import WrittenJournal

if TYPE_CHECKING:
    from butler import QuantumBackedButler

_log = logging.getLogger(__name__)

# Set in the parent before forking; read by workers.  Forked children share it copy-on-write.
_WORKER_GRAPH: QuantumGraph | None = None
_WORKER_REPO: Path | None = None
# Made once per process (worker, or the parent when jobs=1) on its first quantum.
_WORKER_BUTLER: QuantumBackedButler | None = None
_WORKER_TASKS: TaskFactory | None = None
_WORKER_CLOBBER = False
_WORKER_TIMEOUT: float | None = None
_WORKER_JOURNAL: WrittenJournal | None = None


def _run_one(index: int) -> str | None:
    """Worker body: run quantum ``index`` of the inherited graph; return an error line or None."""
    global _WORKER_BUTLER, _WORKER_TASKS
    graph = _WORKER_GRAPH
    assert graph is not None and _WORKER_REPO is not None
    if _WORKER_BUTLER is None or _WORKER_TASKS is None:
        _WORKER_BUTLER = make_limited_butler(
            _WORKER_REPO, graph.header, graph.datastore_records, clobber_outputs=_WORKER_CLOBBER
        )
        _WORKER_TASKS = TaskFactory(graph.header.tasks)
    quantum = graph.quanta[index]
    return try_execute_quantum(
        _WORKER_TASKS.get(quantum.task_label),
        quantum,
        _WORKER_BUTLER,
        timeout=_WORKER_TIMEOUT,
        journal=_WORKER_JOURNAL,
    )


def run_graph_locally(
    graph: QuantumGraph,
    repo: Path,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
    *,
    clobber_outputs: bool = False,
    timeout: float | None = None,
    fail_fast: bool = False,
    no_versions: bool = False,
) -> ExecutionOutcome:
    """Execute every quantum of ``graph`` against ``repo``'s datastore; a task failure never raises.

    ``clobber_outputs`` lets outputs replace files already there (``pipetask run --clobber-outputs``);
    ``timeout`` fails a quantum running longer (seconds); ``fail_fast`` starts nothing after the
    first failure; ``no_versions`` neither checks nor writes the run's package versions.
    """
    global _WORKER_GRAPH, _WORKER_REPO, _WORKER_BUTLER, _WORKER_TASKS, _WORKER_CLOBBER
    global _WORKER_TIMEOUT, _WORKER_JOURNAL
    _WORKER_GRAPH, _WORKER_REPO = graph, repo
    _WORKER_BUTLER = _WORKER_TASKS = None
    _WORKER_CLOBBER = clobber_outputs
    _WORKER_TIMEOUT = timeout
    init_butler = make_limited_butler(
        repo, graph.header, graph.datastore_records, clobber_outputs=clobber_outputs
    )
    # Workers inherit it and each opens its own journal file on its first quantum.
    _WORKER_JOURNAL = WrittenJournal(init_butler.root, graph.header.id_prefix)
    write_init_outputs(graph.header, init_butler, no_versions=no_versions)

    def on_done(i: int, error: str | None) -> None:
        if error is not None:
            _log.error("%s", error)
        if progress is not None:
            progress(1)

    try:
        if jobs <= 1:
            return execute_quanta(graph.quanta, _run_one, on_done=on_done, fail_fast=fail_fast)
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            # A few quanta queued per worker, so workers never wait on the parent.
            return execute_quanta(
                graph.quanta,
                _run_one,
                pool=pool,
                in_flight=jobs * 4,
                on_done=on_done,
                fail_fast=fail_fast,
            )
    finally:
        _WORKER_JOURNAL.close()

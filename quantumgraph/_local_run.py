"""``pipetask run``: execute a whole graph on this machine, on N processes, in dependency order.

Workers are forked once and inherit the graph, so scheduling a quantum only sends its index.
A failed quantum's descendants are not run; everything else is.  Workers write straight to the
datastore through a quantum-backed butler, exactly as batch jobs do; the caller then merges.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from ._execution import TaskFactory, execute_quantum, write_init_outputs
from ._model import QuantumGraph
from ._qbb import make_limited_butler

_log = logging.getLogger(__name__)

# Set in the parent before forking; read by workers.  Forked children share it copy-on-write.
_WORKER_GRAPH: QuantumGraph | None = None
_WORKER_REPO: Path | None = None
_WORKER_STATE: dict[str, object] = {}


@dataclass(slots=True)
class RunSummary:
    """What happened to each quantum of a local run."""

    succeeded: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    """Quantum index -> one-line error."""
    pruned: list[int] = field(default_factory=list)
    """Quanta not run because something they depend on failed."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.pruned


def _run_one(index: int) -> tuple[int, str | None]:
    """Worker body: run quantum ``index`` of the inherited graph; return an error line or None."""
    graph = _WORKER_GRAPH
    assert graph is not None and _WORKER_REPO is not None
    butler = _WORKER_STATE.get("butler")
    if butler is None:
        butler = make_limited_butler(_WORKER_REPO, graph.header, graph.datastore_records)
        _WORKER_STATE["butler"] = butler
        _WORKER_STATE["tasks"] = TaskFactory(graph.header.tasks)
    tasks = _WORKER_STATE["tasks"]
    assert isinstance(tasks, TaskFactory)
    quantum = graph.quanta[index]
    try:
        execute_quantum(tasks.get(quantum.task_label), quantum, butler)  # type: ignore[arg-type]
    except Exception as exc:
        _log.debug("quantum %s failed:\n%s", quantum.id, traceback.format_exc())
        return index, str(exc)
    return index, None


def run_graph_locally(
    graph: QuantumGraph, repo: Path, jobs: int = 1, progress: Callable[[int], None] | None = None
) -> RunSummary:
    """Execute every quantum of ``graph`` against ``repo``'s datastore; a task failure never raises."""
    global _WORKER_GRAPH, _WORKER_REPO
    _WORKER_GRAPH, _WORKER_REPO = graph, repo
    _WORKER_STATE.clear()
    init_butler = make_limited_butler(repo, graph.header, graph.datastore_records)
    write_init_outputs(graph.header.tasks, graph.header.init_outputs, init_butler)

    index_of = {q.id: i for i, q in enumerate(graph.quanta)}
    deps = graph.dependencies()
    waiting_on = {index_of[qid]: {index_of[d] for d in ds} for qid, ds in deps.items()}
    children: dict[int, list[int]] = {i: [] for i in range(len(graph.quanta))}
    for i, parents in waiting_on.items():
        for p in parents:
            children[p].append(i)
    summary = RunSummary()
    ready = [i for i, parents in waiting_on.items() if not parents]

    def prune(i: int) -> None:
        stack = list(children[i])
        while stack:
            c = stack.pop()
            if c in waiting_on:
                del waiting_on[c]
                summary.pruned.append(c)
                stack.extend(children[c])

    def finish(i: int, error: str | None) -> None:
        if error is None:
            summary.succeeded.append(i)
            for c in children[i]:
                parents = waiting_on.get(c)
                if parents is not None:
                    parents.discard(i)
                    if not parents:
                        ready.append(c)
        else:
            summary.failed[i] = error
            _log.error("%s", error)
            prune(i)
        if progress is not None:
            progress(1)

    if jobs <= 1:
        while ready:
            i = ready.pop(0)
            waiting_on.pop(i, None)
            finish(*_run_one(i))
        return summary

    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        running: set[Future[tuple[int, str | None]]] = set()
        while ready or running:
            # Keep a few quanta queued per worker so workers never wait on the parent.
            while ready and len(running) < jobs * 4:
                i = ready.pop(0)
                waiting_on.pop(i, None)
                running.add(pool.submit(_run_one, i))
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                finish(*fut.result())
    return summary

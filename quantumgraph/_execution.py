"""Running quanta: import and configure tasks, fetch inputs, call ``run``, store outputs.

Everything here works through a *limited butler* (``get``/``put``/``exists`` on references),
so the same code runs inside a batch job, where only the graph file and the datastore are
available, and under ``pipetask run`` on a laptop.  :func:`execute_quanta` is the one loop both
use: a batch job (``pipetask run-qbb``) runs its quanta in this process, ``pipetask run`` hands
them to a pool of forked workers; which quanta run, and which are skipped because an input's
producer failed, is decided here for both.
"""

from __future__ import annotations

import heapq
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from butler import TRACE, VERBOSE, DatastoreError, StoredFileInfo

from ._exceptions import QuantumExecutionError, RunConflictError
from ._model import GraphHeader, Quantum, TaskInfo
from ._pipeline import import_task_class
from ._provenance import (
    PACKAGES_DATASET_TYPE,
    PROVENANCE_CONNECTIONS,
    QuantumRecorder,
    current_packages,
    package_differences,
    provenance_refs,
    time_limit,
)
from ._task import PipelineTask
from ._written import WrittenJournal

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

    from butler import DatasetRef, LimitedButler

_log = logging.getLogger(__name__)


class TaskFactory:
    """Makes each task once per process from the graph's TaskInfo (class path + resolved config)."""

    def __init__(self, tasks: Mapping[str, TaskInfo]) -> None:
        self._infos = tasks
        self._tasks: dict[str, PipelineTask] = {}

    def get(self, label: str) -> PipelineTask:
        task = self._tasks.get(label)
        if task is None:
            info = self._infos[label]
            cls = import_task_class(info.task_class, f"task {label!r}")
            task = cls(cls.Config.from_overrides(dict(info.config)))
            self._tasks[label] = task
        return task


def execute_quantum(
    task: PipelineTask,
    quantum: Quantum,
    butler: LimitedButler,
    written: list[tuple[DatasetRef, Any]] | None = None,
) -> None:
    """Run one quantum: read inputs, call ``task.run``, write every declared output.

    Raises QuantumExecutionError naming the task and data ID when the task raises or returns
    something that does not match its output connections; outputs written before the failure
    stay (the merge job registers whatever exists).  Each output put is appended to ``written``
    with what the butler's ``put`` returned.  The provenance outputs (``_log``, ``_metadata``)
    are not the task's: :func:`try_execute_quantum` writes them.
    """
    where = f"quantum {quantum.id} ({quantum.task_label} {{{quantum.data_id}}})"
    start = time.perf_counter()
    kwargs: dict[str, Any] = {}
    for name, refs in quantum.inputs.items():
        conn = type(task).inputs[name]
        try:
            values = [butler.get(ref) for ref in refs]
        except LookupError as exc:
            raise QuantumExecutionError(
                f"{where}: input {name!r} is missing (did the quantum producing it fail?): {exc}"
            ) from exc
        kwargs[name] = values if conn.multiple else values[0]
    if _log.isEnabledFor(TRACE):
        read = {name: [str(ref.id) for ref in refs] for name, refs in quantum.inputs.items()}
        _log.log(TRACE, "%s: read inputs %s", where, read)
    if type(task).wants_data_id:
        kwargs["data_id"] = quantum.data_id
    try:
        result = task.run(**kwargs)
    except Exception as exc:
        raise QuantumExecutionError(f"{where}: task raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, Mapping):
        raise QuantumExecutionError(
            f"{where}: run() must return a dict of output connection -> object, got {type(result).__name__}"
        )
    task_outputs = {
        name: refs for name, refs in quantum.outputs.items() if name not in PROVENANCE_CONNECTIONS
    }
    unknown = set(result) - set(task_outputs)
    if unknown:
        raise QuantumExecutionError(
            f"{where}: run() returned unknown output(s) {', '.join(sorted(unknown))}; "
            f"outputs are {', '.join(sorted(task_outputs))}"
        )
    missing = set(task_outputs) - set(result)
    if missing:
        raise QuantumExecutionError(f"{where}: run() did not return output(s) {', '.join(sorted(missing))}")
    for name, refs in task_outputs.items():
        for ref in refs:
            try:
                stored = butler.put(result[name], ref)
                if written is not None:
                    written.append((ref, stored))
            except DatastoreError as exc:
                # The datastore names the dataset and the file (and "no space left" on a full
                # disk); only the executor knows which quantum was writing.
                raise QuantumExecutionError(f"{where}: cannot write output {name!r}: {exc}") from exc
    _log.log(VERBOSE, "%s done in %.3f s", where, time.perf_counter() - start)


def write_init_outputs(header: GraphHeader, butler: LimitedButler, *, no_versions: bool = False) -> int:
    """Write each task's ``{label}_config`` and the run's ``packages`` once; safe to rerun.

    Existing configs are left alone.  An existing ``packages`` (an extended run, or a rerun of
    the init job) is compared with this process's versions: a difference is refused with
    :class:`RunConflictError` naming the packages, unless ``no_versions`` (``--no-versions``),
    which neither checks nor writes versions.
    """
    written = 0
    for label, refs in header.init_outputs.items():
        for ref in refs:
            if not butler.exists(ref):
                butler.put(dict(header.tasks[label].config), ref)
                written += 1
    if no_versions:
        return written
    for ref in header.global_init_outputs:
        if ref.dataset_type.name != PACKAGES_DATASET_TYPE:
            continue
        current = current_packages()
        if butler.exists(ref):
            existing = butler.get(ref)
            diffs = package_differences(existing if isinstance(existing, Mapping) else {}, current)
            if diffs:
                raise RunConflictError(
                    f"output run {ref.run!r} was made with other package versions ({'; '.join(diffs)}); "
                    "use a new output run, or pass --no-versions to mix them"
                )
        else:
            butler.put(current, ref)
            written += 1
    return written


def try_execute_quantum(
    task: PipelineTask,
    quantum: Quantum,
    butler: LimitedButler,
    *,
    timeout: float | None = None,
    journal: WrittenJournal | None = None,
) -> str | None:
    """:func:`execute_quantum` with its provenance; a failure becomes its one-line error (None if it ran).

    Any exception counts: a task's bug must fail its quantum, never the whole run.  Whatever
    happened, the quantum's ``_log`` (with the exception and traceback on failure) and
    ``_metadata`` (times, memory, host, outputs written, success) are then written, if the graph
    predicts them.  ``timeout`` (seconds) fails a quantum that runs longer.  What was written is
    appended to ``journal`` for the merge (see :mod:`quantumgraph._written`).
    """
    written: list[tuple[DatasetRef, Any]] = []
    recorder = QuantumRecorder(quantum)
    error: str | None = None
    with recorder:
        try:
            with time_limit(timeout, f"quantum {quantum.id} ({quantum.task_label} {{{quantum.data_id}}})"):
                execute_quantum(task, quantum, butler, written)
        except Exception as exc:
            _log.debug("quantum %s failed", quantum.id, exc_info=True)
            error = str(exc)
            recorder.failed(exc)
    recorder.written = [ref for ref, _ in written]
    log_ref, meta_ref = provenance_refs(quantum)
    try:
        # Provenance describes the latest attempt: a rerun (a retried job) replaces the earlier one's.
        if log_ref is not None:
            written.append((log_ref, butler.put(recorder.log(), log_ref, overwrite=True)))
        if meta_ref is not None:
            written.append((meta_ref, butler.put(recorder.metadata(), meta_ref, overwrite=True)))
    except Exception as exc:
        _log.debug("quantum %s: provenance not written", quantum.id, exc_info=True)
        error = (
            f"{error}; " if error else ""
        ) + f"cannot write the provenance of quantum {quantum.id}: {exc}"
    if journal is not None:
        journal.append(info for _, info in written if isinstance(info, StoredFileInfo))
    return error


@dataclass(slots=True)
class ExecutionOutcome:
    """What happened to each quantum given to :func:`execute_quanta`, by position in that sequence."""

    succeeded: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    """Position -> one-line error."""
    pruned: dict[int, str] = field(default_factory=dict)
    """Position -> why it was not run: an input comes from a quantum that failed or was not run."""
    stopped: list[int] = field(default_factory=list)
    """Positions never started because ``fail_fast`` stopped the execution at the first failure."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.pruned and not self.stopped


def execute_quanta(
    quanta: Sequence[Quantum],
    run_one: Callable[[int], str | None],
    *,
    pool: Executor | None = None,
    in_flight: int = 1,
    on_done: Callable[[int, str | None], None] | None = None,
    fail_fast: bool = False,
) -> ExecutionOutcome:
    """Run ``quanta`` (producers before consumers, as in a graph) through ``run_one``.

    ``run_one(i)`` runs ``quanta[i]`` and returns None or its one-line error.  A quantum reading
    an output of an *earlier* quantum of the sequence waits for it, and is not run (pruned, with
    its consumers) if that one failed or was pruned; an input produced by nobody here must already
    exist.  Without a ``pool`` everything runs here, in sequence order; with one, up to
    ``in_flight`` quanta are queued on it at a time (``run_one`` must then be picklable).
    ``on_done(i, error)`` is called, in this process, as each quantum that ran finishes.
    With ``fail_fast`` no quantum is started after the first failure (those already running
    finish); the rest are listed in ``stopped``.
    """
    outcome = ExecutionOutcome()
    producer: dict[uuid.UUID, int] = {}
    waiting_on: dict[int, set[int]] = {}
    children: list[list[int]] = [[] for _ in quanta]
    for i, quantum in enumerate(quanta):
        parents = {producer[ref.id] for ref in quantum.input_refs() if ref.id in producer}
        waiting_on[i] = parents
        for p in parents:
            children[p].append(i)
        for ref in quantum.output_refs():
            producer[ref.id] = i
    ready = [i for i, parents in waiting_on.items() if not parents]  # already in index order: a heap

    def prune_consumers(i: int) -> None:
        stack = [(i, c) for c in children[i]]
        while stack:
            parent, c = stack.pop()
            if c not in waiting_on:
                continue
            del waiting_on[c]
            lost = next(ref for ref in quanta[c].input_refs() if producer.get(ref.id) == parent)
            q = quanta[c]
            outcome.pruned[c] = (
                f"quantum {q.id} ({q.task_label} {{{q.data_id}}}) not run: its input "
                f"{lost.dataset_type.name} {{{lost.data_id}}} comes from a quantum that failed in this job"
            )
            stack.extend((c, cc) for cc in children[c])

    def finish(i: int, error: str | None) -> None:
        if error is None:
            outcome.succeeded.append(i)
            for c in children[i]:
                parents = waiting_on.get(c)
                if parents is not None:
                    parents.discard(i)
                    if not parents:
                        heapq.heappush(ready, c)
        else:
            outcome.failed[i] = error
        if on_done is not None:
            on_done(i, error)
        if error is not None:
            prune_consumers(i)

    def stop_rest() -> ExecutionOutcome:
        outcome.stopped = sorted(set(ready) | set(waiting_on))
        return outcome

    if pool is None:
        while ready:
            if fail_fast and outcome.failed:
                return stop_rest()
            i = heapq.heappop(ready)
            del waiting_on[i]
            finish(i, run_one(i))
        return outcome

    from concurrent.futures import FIRST_COMPLETED, wait  # only pipetask run's pool needs it

    running: dict[Future[str | None], int] = {}
    while ready or running:
        if fail_fast and outcome.failed:
            for fut in running:
                fut.cancel()
            done, _ = wait(running)
            for fut in done:
                i = running.pop(fut)
                if fut.cancelled():
                    waiting_on[i] = set()
                else:
                    finish(i, fut.result())
            return stop_rest()
        while ready and len(running) < max(in_flight, 1):
            i = heapq.heappop(ready)
            del waiting_on[i]
            running[pool.submit(run_one, i)] = i
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for fut in done:
            finish(running.pop(fut), fut.result())
    return outcome

"""Running quanta: import and configure tasks, fetch inputs, call ``run``, store outputs.

Everything here works through a *limited butler* (``get``/``put``/``exists`` on references),
so the same code runs inside a batch job, where only the graph file and the datastore are
available, and under ``pipetask run`` on a laptop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from butler import DatastoreError

from ._exceptions import QuantumExecutionError
from ._model import Quantum, TaskInfo
from ._pipeline import import_task_class
from ._task import PipelineTask

if TYPE_CHECKING:
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


def execute_quantum(task: PipelineTask, quantum: Quantum, butler: LimitedButler) -> None:
    """Run one quantum: read inputs, call ``task.run``, write every declared output.

    Raises QuantumExecutionError naming the task and data ID when the task raises or returns
    something that does not match its output connections; outputs written before the failure
    stay (the merge job registers whatever exists).
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
    try:
        result = task.run(**kwargs)
    except Exception as exc:
        raise QuantumExecutionError(f"{where}: task raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, Mapping):
        raise QuantumExecutionError(
            f"{where}: run() must return a dict of output connection -> object, got {type(result).__name__}"
        )
    unknown = set(result) - set(quantum.outputs)
    if unknown:
        raise QuantumExecutionError(
            f"{where}: run() returned unknown output(s) {', '.join(sorted(unknown))}; "
            f"outputs are {', '.join(sorted(quantum.outputs))}"
        )
    missing = set(quantum.outputs) - set(result)
    if missing:
        raise QuantumExecutionError(f"{where}: run() did not return output(s) {', '.join(sorted(missing))}")
    for name, refs in quantum.outputs.items():
        for ref in refs:
            try:
                butler.put(result[name], ref)
            except DatastoreError as exc:
                # The datastore names the dataset and the file (and "no space left" on a full
                # disk); only the executor knows which quantum was writing.
                raise QuantumExecutionError(f"{where}: cannot write output {name!r}: {exc}") from exc
    _log.debug("%s done in %.3f s", where, time.perf_counter() - start)


def write_init_outputs(
    tasks: Mapping[str, TaskInfo], init_outputs: Mapping[str, list[DatasetRef]], butler: LimitedButler
) -> int:
    """Write each task's ``{label}_config`` once; leaves existing ones alone (safe to rerun)."""
    written = 0
    for label, refs in init_outputs.items():
        for ref in refs:
            if not butler.exists(ref):
                butler.put(dict(tasks[label].config), ref)
                written += 1
    return written

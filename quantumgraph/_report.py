"""What happened to each quantum of a graph, read from the provenance the quanta wrote.

``pipetask report REPO GRAPH`` and ``bps report`` (for the failed jobs it lists) both use
:func:`report_graph`: a quantum *succeeded* or *failed* as its ``{label}_metadata`` says; one
without metadata was *blocked* if a quantum it depends on failed or was blocked, else *not
attempted*.  A failure's message comes from the exception recorded in its ``{label}_log``.

The metadata is looked up in the graph's output run (registered by the merge), and, for a quantum
the merge has not registered yet, at the file's predicted path: so a report works while a
workflow is still running, before any merge.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from butler import DataCoordinate, DatasetRef, MissingDatasetTypeError

from ._provenance import provenance_refs

if TYPE_CHECKING:
    from butler import Butler

    from ._model import QuantumGraph

#: The states of a quantum in a report, in the order reports list them.
QUANTUM_STATES = ("succeeded", "failed", "blocked", "not_attempted")


@dataclass(frozen=True, slots=True)
class QuantumFailure:
    """One failed quantum: where, and the exception its log recorded."""

    task: str
    quantum_id: str
    data_id: dict[str, Any]
    exception_type: str | None
    """Qualified name of the task's exception (``builtins.ZeroDivisionError``), if the log has it."""
    message: str
    """The exception's message from the log (or the metadata's one-line error if there is no log)."""


@dataclass(slots=True)
class TaskSummary:
    """Counts of one task's quanta by state."""

    succeeded: int = 0
    failed: int = 0
    blocked: int = 0
    not_attempted: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.blocked + self.not_attempted


@dataclass(slots=True)
class GraphReport:
    """Per task label, quanta by state; every failure with its data ID and message."""

    output_run: str
    tasks: dict[str, TaskSummary] = field(default_factory=dict)
    failures: list[QuantumFailure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A plain, JSON-ready dict (``pipetask report --format json``)."""
        return {
            "output_run": self.output_run,
            "tasks": {
                label: {**asdict(summary), "total": summary.total} for label, summary in self.tasks.items()
            },
            "failures": [asdict(f) for f in self.failures],
        }


def _data_id_dict(data_id: DataCoordinate) -> dict[str, Any]:
    return dict(zip(data_id.dimensions, data_id.values_tuple, strict=True))


class _ProvenanceReader:
    """Reads a quantum's metadata and log: registered in the run, else at the predicted path."""

    def __init__(self, butler: Butler, run: str) -> None:
        self._butler = butler
        self._run = run
        self._registered: dict[str, dict[DataCoordinate, DatasetRef]] = {}

    def _find(self, ref: DatasetRef) -> DatasetRef | None:
        name = ref.dataset_type.name
        by_data_id = self._registered.get(name)
        if by_data_id is None:
            try:
                refs = self._butler.registry.query_datasets(name, [self._run])
            except MissingDatasetTypeError:
                refs = []
            by_data_id = self._registered[name] = {r.data_id: r for r in refs}
        return by_data_id.get(ref.data_id)

    def read(self, ref: DatasetRef | None) -> Any:
        if ref is None:
            return None
        registered = self._find(ref)
        if registered is not None:
            return self._butler.get(registered)
        datastore = self._butler.datastore
        info = datastore.info_for_existing(ref)
        return None if info is None else datastore.read(info, ref.dataset_type.storage_class)


def _failure(
    task: str, quantum_id: uuid.UUID, data_id: DataCoordinate, meta: Mapping[str, Any], log: Any
) -> QuantumFailure:
    exception = None
    if isinstance(log, list):
        for record in reversed(log):
            if isinstance(record, dict) and isinstance(record.get("exception"), dict):
                exception = record["exception"]
                break
    if exception is not None:
        return QuantumFailure(
            task,
            str(quantum_id),
            _data_id_dict(data_id),
            exception.get("type"),
            str(exception.get("message")),
        )
    return QuantumFailure(
        task, str(quantum_id), _data_id_dict(data_id), None, str(meta.get("error") or "failed")
    )


def report_graph(butler: Butler, graph: QuantumGraph | str | Path) -> GraphReport:
    """Each quantum of ``graph`` (a graph or a graph file) by state, from its provenance in ``butler``."""
    if isinstance(graph, str | Path):
        from ._file import GraphReader

        with GraphReader(graph) as graph_file:
            graph = graph_file.read_all()
    run = graph.header.output_run
    provenance = _ProvenanceReader(butler, run)
    report = GraphReport(run, {label: TaskSummary() for label in graph.header.tasks})
    state: dict[uuid.UUID, str] = {}
    deps = graph.dependencies()
    for quantum in graph.quanta:  # producers before consumers: parents' states are known
        summary = report.tasks[quantum.task_label]
        log_ref, meta_ref = provenance_refs(quantum)
        meta = provenance.read(meta_ref)
        if isinstance(meta, dict) and meta.get("succeeded") is True:
            state[quantum.id] = "succeeded"
            summary.succeeded += 1
        elif isinstance(meta, dict):
            state[quantum.id] = "failed"
            summary.failed += 1
            report.failures.append(
                _failure(quantum.task_label, quantum.id, quantum.data_id, meta, provenance.read(log_ref))
            )
        elif any(state.get(p) in ("failed", "blocked") for p in deps.get(quantum.id, ())):
            state[quantum.id] = "blocked"
            summary.blocked += 1
        else:
            state[quantum.id] = "not_attempted"
            summary.not_attempted += 1
    return report


def format_report(report: GraphReport) -> str:
    """The text ``pipetask report`` prints: a table per task label, then one line per failure."""
    headers = ("task", "succeeded", "failed", "blocked", "not attempted", "total")
    rows = [
        (label, str(s.succeeded), str(s.failed), str(s.blocked), str(s.not_attempted), str(s.total))
        for label, s in report.tasks.items()
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [f"output run: {report.output_run}"]
    lines.append(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    if report.failures:
        lines.append("")
        lines.append(f"{len(report.failures)} failed quanta:")
        for f in report.failures:
            data_id = ", ".join(f"{k}={v}" for k, v in f.data_id.items())
            kind = f"{f.exception_type.rpartition('.')[2]}: " if f.exception_type else ""
            lines.append(f"  {f.task} {{{data_id}}}: {kind}{f.message}")
    return "\n".join(lines)

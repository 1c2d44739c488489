"""The in-memory QuantumGraph: the plan of every unit of work with exact inputs and outputs.

These classes are what the builder produces, what the graph file stores and what executors and
BPS read.  They hold butler types (:class:`DatasetRef`, :class:`StoredFileInfo`) but no
registry or datastore objects, so loading a graph never opens a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from butler import DataCoordinate, DatasetRef, DatasetType, StoredFileInfo

ConnectionKind = Literal["input", "output", "init_output"]

#: Major version of the QuantumGraph file format; readers refuse files with another major.
FORMAT_MAJOR = 1
FORMAT_MINOR = 2


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One resolved connection of a task: its Python attribute name and dataset type."""

    name: str
    dataset_type: str
    kind: ConnectionKind
    multiple: bool = False


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What the graph records about one task: enough to import, configure and run it."""

    label: str
    task_class: str
    """Dotted path ``module.Class``."""
    config: Mapping[str, Any]
    """Fully resolved config values (defaults with pipeline overrides applied)."""
    dimensions: tuple[str, ...]
    connections: tuple[ConnectionInfo, ...]


@dataclass(slots=True)
class GraphHeader:
    """Everything about a graph except its quanta: written first, read by every job."""

    tasks: dict[str, TaskInfo]
    dataset_types: dict[str, DatasetType]
    universe_config: dict[str, Any]
    input_collections: tuple[str, ...]
    output_run: str
    output: str | None
    """Name of the output CHAINED collection, if the graph was built with one."""
    init_outputs: dict[str, list[DatasetRef]] = field(default_factory=dict)
    """Per task label, datasets written once before any quantum (e.g. ``{label}_config``)."""
    pipeline_yaml: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Creation time, user, host, command line, data query, counts; free-form but small."""
    id_prefix: int = 0
    """Upper 64 bits shared by the IDs this graph assigned (see :mod:`quantumgraph._ids`)."""
    global_init_outputs: list[DatasetRef] = field(default_factory=list)
    """Datasets written once per run, not per task: the ``packages`` dataset (format 1.2)."""

    def all_init_outputs(self) -> list[DatasetRef]:
        """Every init output: the tasks' (configs), then the run's own (packages)."""
        return [ref for refs in self.init_outputs.values() for ref in refs] + list(self.global_init_outputs)


@dataclass(slots=True)
class Quantum:
    """One unit of work: a task run once on one data ID with exact inputs and outputs."""

    id: uuid.UUID
    task_label: str
    data_id: DataCoordinate
    inputs: dict[str, list[DatasetRef]]
    """Connection name -> input references (a one-element list unless ``multiple``)."""
    outputs: dict[str, list[DatasetRef]]
    """Connection name -> predicted output references with their UUIDs."""

    def input_refs(self) -> Iterator[DatasetRef]:
        for refs in self.inputs.values():
            yield from refs

    def output_refs(self) -> Iterator[DatasetRef]:
        for refs in self.outputs.values():
            yield from refs


@dataclass(slots=True)
class QuantumGraph:
    """A whole graph in memory.  ``quanta`` are in a dependency-respecting (topological) order.

    ``datastore_records`` holds the records of every input that already exists in the repository
    (overall inputs), keyed by dataset ID; predicted outputs have none until a job writes them.
    """

    header: GraphHeader
    quanta: list[Quantum]
    datastore_records: dict[uuid.UUID, StoredFileInfo]

    def __len__(self) -> int:
        return len(self.quanta)

    def producers(self) -> dict[uuid.UUID, uuid.UUID]:
        """Dataset ID -> ID of the quantum in this graph that produces it."""
        return {ref.id: q.id for q in self.quanta for ref in q.output_refs()}

    def dependencies(self) -> dict[uuid.UUID, set[uuid.UUID]]:
        """Quantum ID -> IDs of the quanta whose outputs it reads."""
        producers = self.producers()
        deps: dict[uuid.UUID, set[uuid.UUID]] = {}
        for q in self.quanta:
            deps[q.id] = {producers[r.id] for r in q.input_refs() if r.id in producers}
        return deps

    def iter_quantum_summaries(self) -> Iterator[tuple[uuid.UUID, str, DataCoordinate]]:
        """(ID, task label, data ID) of every quantum in graph order (see :class:`GraphSummary`)."""
        return ((q.id, q.task_label, q.data_id) for q in self.quanta)

    def quanta_by_task(self) -> dict[str, list[Quantum]]:
        out: dict[str, list[Quantum]] = {label: [] for label in self.header.tasks}
        for q in self.quanta:
            out[q.task_label].append(q)
        return out


@runtime_checkable
class GraphSummary(Protocol):
    """The one way to read a graph's shape without its references: for planning workflows.

    Both the in-memory :class:`QuantumGraph` and the file's ``GraphReader`` implement it, so a
    caller (bps turning a graph into jobs) reads either the same way; the reader answers from the
    file's raw block records without building a single ``DatasetRef``.
    """

    @property
    def header(self) -> GraphHeader: ...

    def iter_quantum_summaries(self) -> Iterator[tuple[uuid.UUID, str, DataCoordinate]]:
        """(ID, task label, data ID) of every quantum, in a dependency-respecting order."""
        ...

    def dependencies(self) -> dict[uuid.UUID, set[uuid.UUID]]:
        """Quantum ID -> IDs of the quanta whose outputs it reads, for every quantum."""
        ...

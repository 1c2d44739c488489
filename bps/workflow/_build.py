"""QuantumGraph -> WorkflowGraph: one init job, one job per quantum, one final merge job.

Edges are kept transitively reduced where that is free: the init job points only at quanta that
have no parent quantum, and the final job depends only on jobs nothing else depends on.  The
ordering is the same as "every quantum after init, final after everything", with far fewer edges
for engines (DAGMan) that pay per edge.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .._exceptions import EmptyGraphError
from .._gcpause import gc_paused
from ..config._model import BpsConfig, FinalJobWhen
from ._commands import final_command, init_command, quantum_command, quantum_command_prefix
from ._graph import WorkflowGraph
from ._job import FINAL_LABEL, INIT_LABEL, RESERVED_LABELS, GenericJob

if TYPE_CHECKING:
    from quantumgraph._model import GraphHeader, QuantumGraph

_LOG = logging.getLogger(__name__)


@runtime_checkable
class GraphSource(Protocol):
    """What :func:`build_workflow` needs from a graph file reader (``quantumgraph.GraphReader``).

    ``GraphReader`` also offers ``quantum_task_labels()`` (labels parallel to ``quantum_ids()``,
    from the index); a reader without it has each quantum read once for its label, much slower.
    """

    @property
    def header(self) -> GraphHeader: ...

    def quantum_ids(self) -> list[uuid.UUID]: ...

    def dependencies(self) -> dict[uuid.UUID, set[uuid.UUID]]: ...


def _labels_and_order(graph: QuantumGraph | GraphSource) -> tuple[list[uuid.UUID], Mapping[uuid.UUID, str]]:
    """Quantum IDs in graph (topological) order and each one's task label."""
    from quantumgraph._model import QuantumGraph

    if isinstance(graph, QuantumGraph):
        return [q.id for q in graph.quanta], {q.id: q.task_label for q in graph.quanta}
    ids = graph.quantum_ids()
    fast = getattr(graph, "quantum_task_labels", None)
    if callable(fast):
        return ids, dict(zip(ids, fast(), strict=True))
    _LOG.warning("graph reader has no quantum_task_labels(); reading %d quanta for labels", len(ids))
    read_quantum = graph.read_quantum  # type: ignore[attr-defined]  # GraphReader has it; the protocol not
    return ids, {qid: read_quantum(qid)[0].task_label for qid in ids}


def build_workflow(config: BpsConfig, graph_path: Path, graph: QuantumGraph | GraphSource) -> WorkflowGraph:
    """Turn a QuantumGraph (in memory or through a file reader) into a :class:`WorkflowGraph`.

    ``graph_path`` is the graph file every job will read (normally the copy in the submit
    directory), so it is written into the commands as an absolute path.
    """
    with gc_paused():
        return _build(config, graph_path, graph)


def _build(config: BpsConfig, graph_path: Path, graph: QuantumGraph | GraphSource) -> WorkflowGraph:
    order, labels = _labels_and_order(graph)
    if not order:
        inputs = ", ".join(config.payload.in_collection)
        raise EmptyGraphError(
            "the QuantumGraph has no quanta: the data query selected nothing to do "
            f"(dataQuery: {config.payload.data_query!r}, inCollection: {inputs})"
        )
    task_labels = set(labels.values())
    if task_labels & RESERVED_LABELS:
        clash = ", ".join(sorted(task_labels & RESERVED_LABELS))
        raise ValueError(f"task label(s) {clash} are reserved for bps's own jobs; rename the task(s)")
    for label in config.task_resources:
        if label not in task_labels:
            _LOG.warning("pipetask.%s sets resources for a task label with no quanta in this graph", label)

    repo = config.payload.butler_config
    graph_file = str(Path(graph_path).resolve())
    files = (graph_file,)
    workflow = WorkflowGraph(config.uniq_proc_name, final_job_when=config.final_job.when_run)

    base = config.resources
    init = GenericJob(
        name=INIT_LABEL,
        label=INIT_LABEL,
        command=init_command(repo, graph_file),
        request_cpus=base.request_cpus,
        request_memory=base.request_memory,
        number_of_retries=base.number_of_retries,
        is_init=True,
        files=files,
    )
    prefix = quantum_command_prefix(repo, graph_file)
    per_label_resources = {label: config.resources_for(label) for label in task_labels}
    counters: dict[str, int] = dict.fromkeys(task_labels, 0)
    names: dict[uuid.UUID, str] = {}
    jobs = [init]
    for qid in order:
        label = labels[qid]
        counters[label] += 1
        name = f"{label}_{counters[label]}"
        names[qid] = name
        res = per_label_resources[label]
        ids = (qid,)
        jobs.append(
            GenericJob(
                name,
                label,
                quantum_command(prefix, ids),
                res.request_cpus,
                res.request_memory,
                res.number_of_retries,
                ids,
                False,
                False,
                files,
            )
        )

    edges: list[tuple[str, str]] = []
    has_children: set[str] = set()
    deps = graph.dependencies()
    for qid in order:
        child = names[qid]
        parents = deps.get(qid)
        if parents:
            for parent_id in parents:
                parent = names[parent_id]
                edges.append((parent, child))
                has_children.add(parent)
        else:
            edges.append((INIT_LABEL, child))

    if config.final_job.when_run is not FinalJobWhen.NEVER:
        final_res = config.final_job.resources
        final = GenericJob(
            name=FINAL_LABEL,
            label=FINAL_LABEL,
            command=final_command(repo, graph_file, update_output_chain=config.final_job.update_output_chain),
            request_cpus=final_res.request_cpus,
            request_memory=final_res.request_memory,
            number_of_retries=final_res.number_of_retries,
            is_final=True,
            files=files,
        )
        jobs.append(final)
        edges.extend((names[qid], FINAL_LABEL) for qid in order if names[qid] not in has_children)

    workflow.add_jobs(jobs)
    workflow.add_dependencies(edges)
    return workflow

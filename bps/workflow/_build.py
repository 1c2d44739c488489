"""QuantumGraph -> WorkflowGraph: one init job, one job per cluster of quanta, one final merge job.

Quanta are grouped into jobs by the configured ``clusterAlgorithm`` (see :mod:`._cluster`; the
default is one quantum per job).  Edges are kept transitively reduced where that is free: the
init job points only at jobs that have no parent job, and the final job depends only on jobs
nothing else depends on.  The ordering is the same as "every job after init, final after
everything", with far fewer edges for engines (DAGMan) that pay per edge.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from butler import gc_paused

from .._exceptions import EmptyGraphError, WorkflowBuildError
from ..config._model import BpsConfig, FinalJobWhen, JobResources, TaskResources
from ._cluster import QuantumCluster, QuantumGraphSummary, cluster_quanta, job_edges, job_local_types
from ._commands import (
    final_command,
    init_command,
    quantum_command,
    quantum_command_prefix,
    with_task_search_path,
)
from ._graph import WorkflowGraph
from ._job import FINAL_LABEL, INIT_LABEL, RESERVED_LABELS, GenericJob
from ._templates import JobCommands

if TYPE_CHECKING:
    from butler import DataCoordinate
    from quantumgraph import GraphSummary

_LOG = logging.getLogger(__name__)


def summarize_graph(graph: GraphSummary) -> QuantumGraphSummary:
    """What clustering needs of ``graph``: IDs in graph order, labels, data IDs and dependencies.

    ``graph`` is the in-memory QuantumGraph bps just built or the reader of a given
    ``qgraphFile``: both offer quantumgraph's one summary interface.
    """
    order: list[uuid.UUID] = []
    labels: dict[uuid.UUID, str] = {}
    data_ids: dict[uuid.UUID, DataCoordinate] = {}
    for qid, label, data_id in graph.iter_quantum_summaries():
        order.append(qid)
        labels[qid] = label
        data_ids[qid] = data_id
    return QuantumGraphSummary(graph.header, order, labels, data_ids, graph.dependencies())


def build_workflow(
    config: BpsConfig,
    graph_path: Path,
    graph: GraphSummary,
    *,
    timings: dict[str, float] | None = None,
) -> WorkflowGraph:
    """Turn a QuantumGraph (in memory or through a file reader) into a :class:`WorkflowGraph`.

    ``graph_path`` is the graph file every job will read (normally the copy in the submit
    directory), so it is written into the commands as an absolute path.  ``timings``, if given,
    receives the seconds spent clustering (key ``clustering``).
    """
    with gc_paused():
        return _build(config, graph_path, graph, timings)


def _job_resources(resources: JobResources) -> dict[str, Any]:
    """GenericJob keyword arguments for ``resources``."""
    return {
        "request_cpus": resources.request_cpus,
        "request_memory": resources.request_memory,
        "number_of_retries": resources.number_of_retries,
        "request_disk": resources.request_disk,
        "request_walltime": resources.request_walltime,
        "retry_unless_exit": resources.retry_unless_exit,
        "memory_multiplier": resources.memory_multiplier,
        "memory_limit": resources.effective_memory_limit(),
    }


def aggregate_resources(per_task: Mapping[str, JobResources], counts: Mapping[str, int]) -> JobResources:
    """Resources of a job running ``counts[label]`` quanta of each task, one after the other.

    Memory, cpus, disk, retries, memory multiplier and limit: the largest of the tasks' values
    (the limit never below the memory); walltime: the sum over the job's quanta (None if any
    task has none); exit codes that stop retries: those of every task.
    """
    values = [per_task[label] for label in counts]
    walltimes = [per_task[label].request_walltime for label in counts]
    multipliers = [v.memory_multiplier for v in values if v.memory_multiplier is not None]
    memory = max(v.request_memory for v in values)
    limits = [v.memory_limit for v in values if v.memory_limit is not None]
    return JobResources(
        request_memory=memory,
        request_cpus=max(v.request_cpus for v in values),
        number_of_retries=max(v.number_of_retries for v in values),
        request_disk=max(v.request_disk for v in values),
        request_walltime=(
            None
            if any(w is None for w in walltimes)
            else sum(w * counts[label] for w, label in zip(walltimes, counts, strict=True) if w is not None)
        ),
        retry_unless_exit=tuple(sorted({code for v in values for code in v.retry_unless_exit})),
        memory_multiplier=max(multipliers) if multipliers else None,
        memory_limit=max(*limits, memory) if limits else None,
    )


class _Resources:
    """Resources per job, cached by what they depend on (task labels and counts, cluster label)."""

    def __init__(self, config: BpsConfig, task_labels: set[str]) -> None:
        self._per_task = {label: config.resources_for(label) for label in task_labels}
        single = config.clustering.algorithm == "single"
        self._clusters = {} if single else dict(config.clustering.clusters)
        self._cache: dict[tuple[str, tuple[tuple[str, int], ...]], dict[str, Any]] = {}

    def for_cluster(self, cluster: QuantumCluster, labels: Mapping[uuid.UUID, str]) -> dict[str, Any]:
        ids = cluster.quantum_ids
        if len(ids) == 1:
            counts: tuple[tuple[str, int], ...] = ((labels[ids[0]], 1),)
        else:
            counts = tuple(sorted(Counter(labels[q] for q in ids).items()))
        key = (cluster.label, counts)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._compute(cluster.label, dict(counts))
        return found

    def _compute(self, label: str, counts: dict[str, int]) -> dict[str, Any]:
        if len(counts) == 1 and sum(counts.values()) == 1 and label in counts:
            resources = self._per_task[label]
        else:
            resources = aggregate_resources(self._per_task, counts)
        spec = self._clusters.get(label)
        override = spec.resources if spec is not None else TaskResources()
        if not override.is_empty:
            resources = override.apply(resources)
            limit = resources.memory_limit
            if limit is not None and limit < resources.request_memory and spec is not None:
                raise spec.error(
                    "memoryLimit",
                    f"memoryLimit ({limit} MB) is below the job's requestMemory "
                    f"({resources.request_memory} MB)",
                )
        return _job_resources(resources)


def _build(
    config: BpsConfig, graph_path: Path, graph: GraphSummary, timings: dict[str, float] | None
) -> WorkflowGraph:
    summary = summarize_graph(graph)
    order = summary.quantum_ids
    if not order:
        inputs = ", ".join(config.payload.in_collection)
        raise EmptyGraphError(
            "the QuantumGraph has no quanta: the data query selected nothing to do "
            f"(dataQuery: {config.payload.data_query!r}, inCollection: {inputs})"
        )
    labels = summary.labels
    task_labels = set(labels.values())
    if task_labels & RESERVED_LABELS:
        clash = ", ".join(sorted(task_labels & RESERVED_LABELS))
        raise WorkflowBuildError(f"task label(s) {clash} are reserved for bps's own jobs; rename the task(s)")
    for label in config.task_resources:
        if label not in task_labels:
            _LOG.warning("pipetask.%s sets resources for a task label with no quanta in this graph", label)

    start = time.perf_counter()
    clusters = cluster_quanta(summary, config)
    job_graph_edges = job_edges(clusters, summary, config)
    local_types = job_local_types(clusters, summary, config)
    elapsed = time.perf_counter() - start
    if timings is not None:
        timings["clustering"] = elapsed
    _LOG.info(
        "clusterAlgorithm %s: %d quanta in %d jobs (%.3f s)",
        config.clustering.algorithm,
        len(order),
        len(clusters),
        elapsed,
    )

    repo = config.payload.butler_config
    graph_file = str(Path(graph_path).resolve())
    files = (graph_file,)
    workflow = WorkflowGraph(config.uniq_proc_name, final_job_when=config.final_job.when_run)
    templates = None
    if config.commands is not None:
        graph_id = f"{summary.header.id_prefix:x}"
        templates = JobCommands(
            config.commands.run_quantum, config.commands.init, config.final_job.commands, graph_file, graph_id
        )

    # Jobs that import task classes get the pipeline's task directories on PYTHONPATH.
    python_path = [str(p) for p in graph.header.metadata.get("python_path") or []]
    inherited = os.environ.get("PYTHONPATH")
    jobs = []
    if config.run_init:
        init_resources = config.init_resources or config.resources
        jobs.append(
            GenericJob(
                name=INIT_LABEL,
                label=INIT_LABEL,
                command=(
                    templates.init(INIT_LABEL, INIT_LABEL)
                    if templates is not None
                    else init_command(repo, graph_file)
                ),
                is_init=True,
                files=files,
                environment=with_task_search_path(python_path, config.environment_for(INIT_LABEL), inherited),
                **_job_resources(init_resources),
            )
        )
    prefix = quantum_command_prefix(repo, graph_file)
    resources = _Resources(config, task_labels)
    environments: dict[str, tuple[tuple[str, str], ...]] = {}
    for cluster, local in zip(clusters, local_types, strict=True):
        label = cluster.label
        environment = environments.get(label)
        if environment is None:
            environment = environments[label] = with_task_search_path(
                python_path, config.environment_for(label), inherited
            )
        jobs.append(
            GenericJob(
                name=cluster.name,
                label=label,
                command=(
                    templates.quantum(cluster.name, label, cluster.quantum_ids, local)
                    if templates is not None
                    else quantum_command(prefix, cluster.quantum_ids, local)
                ),
                quantum_ids=cluster.quantum_ids,
                files=files,
                environment=environment,
                **resources.for_cluster(cluster, labels),
            )
        )

    names = [cluster.name for cluster in clusters]
    has_parent = {child for _, child in job_graph_edges}
    has_children = {parent for parent, _ in job_graph_edges}
    edges = [(names[parent], names[child]) for parent, child in sorted(job_graph_edges)]
    if config.run_init:
        edges.extend((INIT_LABEL, names[j]) for j in range(len(clusters)) if j not in has_parent)

    if config.final_job.when_run is not FinalJobWhen.NEVER:
        final_argv = templates.final(FINAL_LABEL, FINAL_LABEL) if templates is not None else None
        final = GenericJob(
            name=FINAL_LABEL,
            label=FINAL_LABEL,
            command=final_argv
            or final_command(repo, graph_file, update_output_chain=config.final_job.update_output_chain),
            is_final=True,
            files=files,
            environment=config.environment_for(FINAL_LABEL),
            **_job_resources(config.final_job.resources),
        )
        jobs.append(final)
        edges.extend((names[j], FINAL_LABEL) for j in range(len(clusters)) if j not in has_children)

    workflow.add_jobs(jobs)
    workflow.add_dependencies(edges)
    return workflow

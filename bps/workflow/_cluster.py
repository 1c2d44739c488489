"""Clustering: which quanta run together in one batch job.

``clusterAlgorithm`` picks one of:

``single`` (the default)
    one quantum per job.
``dimension``
    the named clusters of ``cluster: {<name>: {pipetasks: ..., dimensions: ...}}``: the quanta of
    the listed tasks that share their values of the listed dimensions (plus the dimensions those
    require, such as ``instrument`` for ``exposure``) make one job, labelled ``<name>``.  Quanta of
    tasks in no cluster stay one per job.
``chain``
    a quantum whose only parent quantum has it as its only child joins that parent's job,
    transitively (``isr -> calibrate`` of one exposure and detector become one job).  The job's
    label is the chain's task labels joined by ``-`` (``isr-calibrate``).
a dotted path ``package.module.function``
    a function of yours, called as ``function(summary, config)`` with a
    :class:`QuantumGraphSummary` and the :class:`~bps.config.BpsConfig`, returning an iterable of
    :class:`QuantumCluster` (or ``(name, label, quantum_ids)`` tuples).  Quanta it leaves out
    become one-quantum jobs.  bps runs each cluster's quanta in graph order, whatever order the
    function gives, and makes the names unique and safe for file names.

Whatever made them, the clusters are then checked: every quantum in exactly one job, and no
dependency cycle between jobs (a cluster holding tasks A and C while B, which runs between them,
is outside it would have to run both before and after B's job).  Problems are
:class:`~bps.BpsConfigError` naming the cluster, the tasks and the config file.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import BpsConfigError
from ..config._model import BpsConfig, ClusterSpec

if TYPE_CHECKING:
    from butler import DataCoordinate, DimensionUniverse
    from quantumgraph import GraphHeader

_LOG = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_BAD_LABEL = re.compile(r"[\s/\\]")


@dataclass(frozen=True, slots=True)
class QuantumCluster:
    """Quanta that run in one batch job, one after the other."""

    name: str
    """The job name (unique in the workflow, readable: ``<label>_<data-ID values>``)."""
    label: str
    """What reports group the job under: a task label, a cluster name or a chain's labels."""
    quantum_ids: tuple[uuid.UUID, ...]
    """In the order the job runs them (every quantum after the ones of this job it reads)."""


@dataclass
class QuantumGraphSummary:
    """What clustering sees of a QuantumGraph: every quantum's ID, task label, data ID and parents.

    Built without decoding any dataset reference, so it is cheap even for large graphs.
    """

    header: GraphHeader
    """Tasks (connections, dimensions), dataset types and the dimension universe config."""
    quantum_ids: list[uuid.UUID]
    """Every quantum, in graph order: each after the quanta whose outputs it reads."""
    labels: dict[uuid.UUID, str]
    data_ids: dict[uuid.UUID, DataCoordinate]
    dependencies: Mapping[uuid.UUID, set[uuid.UUID]]
    """Quantum -> the quanta whose outputs it reads (its parents)."""

    @functools.cached_property
    def children(self) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Quantum -> the quanta that read its outputs."""
        out: dict[uuid.UUID, list[uuid.UUID]] = {qid: [] for qid in self.quantum_ids}
        for qid, parents in self.dependencies.items():
            for parent in parents:
                out[parent].append(qid)
        return out

    @functools.cached_property
    def position(self) -> dict[uuid.UUID, int]:
        """Quantum -> its index in :attr:`quantum_ids`."""
        return {qid: i for i, qid in enumerate(self.quantum_ids)}

    @functools.cached_property
    def universe(self) -> DimensionUniverse:
        """The graph's dimension universe (the shipped default if the graph does not carry one)."""
        from butler import DimensionUniverse

        if self.header.universe_config.get("dimensions"):
            return DimensionUniverse(self.header.universe_config)
        return DimensionUniverse.default()

    def task_dimensions(self, label: str) -> tuple[str, ...]:
        """Data-ID dimensions of ``label``'s quanta (its declared ones if it has no quanta)."""
        return self._task_dimensions.get(label) or tuple(self.header.tasks[label].dimensions)

    @functools.cached_property
    def _task_dimensions(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for qid in self.quantum_ids:
            label = self.labels[qid]
            if label not in out:
                out[label] = self.data_ids[qid].dimensions
        return out


ClusterFunction = Callable[[QuantumGraphSummary, BpsConfig], Iterable[QuantumCluster | tuple[Any, ...]]]


# -- names -----------------------------------------------------------------------------------------
def _text(value: object) -> str:
    text = str(value)
    return text if type(value) is int else _UNSAFE.sub("-", text).strip("-") or "-"


class _Namer:
    """``<label>_<values>`` job names, data-ID values in the order of the task's declared dimensions."""

    def __init__(self, header: GraphHeader) -> None:
        self._declared = {label: tuple(task.dimensions) for label, task in header.tasks.items()}
        self._positions: dict[tuple[str, tuple[str, ...]], tuple[int, ...]] = {}
        self._texts: dict[tuple[type, object], str] = {}

    def text(self, value: object) -> str:
        """``_text(value)``, remembered: data-ID values repeat across thousands of quanta."""
        key = (type(value), value)
        found = self._texts.get(key)
        if found is None:
            found = self._texts[key] = _text(value)
        return found

    def values(self, label: str, data_id: DataCoordinate) -> list[str]:
        dims = data_id.dimensions
        key = (label, dims)
        positions = self._positions.get(key)
        if positions is None:
            declared = [d for d in self._declared.get(label, ()) if d in dims]
            order = declared + [d for d in dims if d not in declared]
            positions = self._positions[key] = tuple(dims.index(d) for d in order)
        values = data_id.values_tuple
        text = self.text
        return [text(values[i]) for i in positions]

    def name(self, label: str, data_id: DataCoordinate) -> str:
        return "_".join([self.text(label), *self.values(label, data_id)])


# -- the built-in algorithms -----------------------------------------------------------------------
def single_clustering(summary: QuantumGraphSummary, config: BpsConfig) -> list[QuantumCluster]:
    """One quantum per job, named ``<task label>_<data-ID values>``."""
    del config
    namer = _Namer(summary.header)
    labels, data_ids = summary.labels, summary.data_ids
    return [
        QuantumCluster(namer.name(labels[qid], data_ids[qid]), labels[qid], (qid,))
        for qid in summary.quantum_ids
    ]


def _key_dimensions(spec: ClusterSpec, universe: DimensionUniverse) -> tuple[str, ...]:
    """The listed dimensions in the listed order, each preceded by the ones it requires."""
    known = set(universe.names)
    for dim in spec.dimensions:
        if dim not in known:
            raise spec.error(
                "dimensions", f"unknown dimension {dim!r}; known dimensions: {', '.join(universe.names)}"
            )
    out: list[str] = []
    for dim in spec.dimensions:
        for needed in universe.required_closure([dim]):
            if needed != dim and needed not in out:
                out.append(needed)
        if dim not in out:
            out.append(dim)
    return tuple(out)


def dimension_clustering(summary: QuantumGraphSummary, config: BpsConfig) -> list[QuantumCluster]:
    """The ``cluster:`` entries: quanta of the listed tasks grouped by the listed dimensions."""
    specs = list(config.clustering.clusters.values())
    tasks = summary.header.tasks
    key_dims: dict[str, tuple[str, ...]] = {}
    spec_of: dict[str, ClusterSpec] = {}
    same: dict[str, dict[str, str]] = {}  # cluster -> dimension -> its equal partner (equalDimensions)
    for spec in specs:
        dims = key_dims[spec.name] = _key_dimensions(spec, summary.universe) if spec.dimensions else ()
        pairs = same[spec.name] = {}
        for a, b in spec.equal_dimensions:
            pairs[a], pairs[b] = b, a
        for label in spec.pipetasks:
            if label not in tasks:
                raise spec.error(
                    "pipetasks", f"unknown task label {label!r}; the pipeline's tasks are {', '.join(tasks)}"
                )
            have = summary.task_dimensions(label)
            lacking = [d for d in dims if d not in have and pairs.get(d) not in have]
            if lacking:
                raise spec.error(
                    "dimensions",
                    f"task {label!r} has dimensions ({', '.join(have)}), not {', '.join(lacking)}; "
                    "a cluster can only group its tasks by dimensions every one of them has",
                )
            spec_of[label] = spec
        if spec.name in tasks and spec.name not in spec.pipetasks:
            raise spec.error(
                "", f"the cluster name {spec.name!r} is the label of a task outside it; rename it"
            )
    if not specs:
        _LOG.warning("clusterAlgorithm is dimension but no cluster: entries are defined; one quantum per job")

    namer = _Namer(summary.header)
    groups: dict[tuple[str, tuple[Any, ...]], list[uuid.UUID]] = {}
    first: dict[tuple[str, tuple[Any, ...]], int] = {}  # group -> where its first quantum is
    singles: list[tuple[int, QuantumCluster]] = []
    positions: dict[tuple[str, tuple[str, ...]], tuple[int, ...]] = {}
    labels, data_ids = summary.labels, summary.data_ids
    for index, qid in enumerate(summary.quantum_ids):
        label = labels[qid]
        data_id = data_ids[qid]
        found = spec_of.get(label)
        if found is None:
            singles.append((index, QuantumCluster(namer.name(label, data_id), label, (qid,))))
            continue
        pos_key = (found.name, data_id.dimensions)
        pos = positions.get(pos_key)
        if pos is None:
            have_dims = data_id.dimensions
            alias = same[found.name]
            resolved_dims = [d if d in have_dims else alias.get(d, d) for d in key_dims[found.name]]
            lacking = [d for d in resolved_dims if d not in have_dims]
            if lacking:
                raise found.error(
                    "dimensions", f"quantum {qid} of task {label!r} has no {', '.join(lacking)}"
                )
            pos = positions[pos_key] = tuple(have_dims.index(d) for d in resolved_dims)
        values = data_id.values_tuple
        group = (found.name, tuple(values[i] for i in pos))
        members = groups.get(group)
        if members is None:
            groups[group] = [qid]
            first[group] = index
        else:
            members.append(qid)
    text = namer.text
    clustered = [
        (
            first[group],
            QuantumCluster("_".join([group[0], *(text(v) for v in group[1])]), group[0], tuple(ids)),
        )
        for group, ids in groups.items()
    ]
    # In graph order of their first quanta, like the jobs of the other algorithms.
    return [cluster for _, cluster in sorted(clustered + singles, key=lambda item: item[0])]


def chain_clustering(summary: QuantumGraphSummary, config: BpsConfig) -> list[QuantumCluster]:
    """Parent and child in one job when their edge is the parent's only outgoing one and the
    child's only incoming one, transitively."""
    del config
    children = summary.children
    deps = summary.dependencies
    head_of: dict[uuid.UUID, uuid.UUID] = {}
    chains: dict[uuid.UUID, list[uuid.UUID]] = {}
    for qid in summary.quantum_ids:
        parents = deps.get(qid, ())
        if len(parents) == 1:
            (parent,) = parents
            if len(children[parent]) == 1:
                head = head_of[parent]
                head_of[qid] = head
                chains[head].append(qid)
                continue
        head_of[qid] = qid
        chains[qid] = [qid]
    namer = _Namer(summary.header)
    labels, data_ids = summary.labels, summary.data_ids
    out = []
    for head, ids in chains.items():
        label = "-".join(labels[q] for q in ids)
        name = "_".join([namer.text(label), *namer.values(labels[head], data_ids[head])])
        out.append(QuantumCluster(name, label, tuple(ids)))
    return out


BUILTIN_ALGORITHMS: dict[str, Callable[[QuantumGraphSummary, BpsConfig], list[QuantumCluster]]] = {
    "single": single_clustering,
    "dimension": dimension_clustering,
    "chain": chain_clustering,
}


# -- running and checking --------------------------------------------------------------------------
def _load_function(config: BpsConfig) -> ClusterFunction:
    path = config.clustering.algorithm
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, attr)
    except ImportError as err:
        raise config.clustering.error(
            "clusterAlgorithm", f"cannot import module {module_name!r}: {err}"
        ) from err
    except AttributeError:
        raise config.clustering.error(
            "clusterAlgorithm", f"module {module_name!r} has no function {attr!r}"
        ) from None
    if not callable(function):
        raise config.clustering.error("clusterAlgorithm", f"{path} is not a function")
    return function  # type: ignore[no-any-return]


def _user_clusters(summary: QuantumGraphSummary, config: BpsConfig) -> list[QuantumCluster]:
    path = config.clustering.algorithm
    function = _load_function(config)
    try:
        result = list(function(summary, config))
    except BpsConfigError:
        raise
    except Exception as err:
        raise config.clustering.error(
            "clusterAlgorithm", f"{path} raised {type(err).__name__}: {err}"
        ) from err
    out = []
    for item in result:
        if isinstance(item, QuantumCluster):
            out.append(item)
            continue
        try:
            name, label, ids = item
            out.append(QuantumCluster(str(name), str(label), tuple(ids)))
        except (TypeError, ValueError):
            raise config.clustering.error(
                "clusterAlgorithm",
                f"{path} returned {type(item).__name__} {item!r:.80}; "
                "expected QuantumCluster(name, label, quantum_ids)",
            ) from None
    return out


def cluster_quanta(summary: QuantumGraphSummary, config: BpsConfig) -> list[QuantumCluster]:
    """Group every quantum into exactly one job with the configured algorithm, checked.

    Returns the clusters in graph order (by their first quantum), each one's quanta in graph
    order, with unique names.  Acyclicity is checked by :func:`job_edges`.  The built-in
    algorithms walk the quanta once in graph order, so only a user function's result is checked
    for completeness, overlaps and order.
    """
    algorithm = config.clustering.algorithm
    grouping = [
        name for name, spec in config.clustering.clusters.items() if spec.pipetasks or spec.dimensions
    ]
    if algorithm == "single" and config.clustering.clusters:
        _LOG.warning("cluster: entries are ignored with clusterAlgorithm: single (one quantum per job)")
    elif algorithm == "chain" and grouping:
        _LOG.warning(
            "cluster: pipetasks/dimensions of %s are ignored with clusterAlgorithm: chain "
            "(only their resource keys apply, to jobs of that label)",
            ", ".join(grouping),
        )
    builtin = BUILTIN_ALGORITHMS.get(algorithm)
    if builtin is not None:
        # Built by walking the quanta once in graph order: complete, disjoint and ordered already.
        return _unique_names(builtin(summary, config))
    clusters = _user_clusters(summary, config)
    position = summary.position
    seen: dict[uuid.UUID, str] = {}
    checked: list[tuple[int, QuantumCluster]] = []
    reserved = {"pipetaskInit", "finalJob"}
    for cluster in clusters:
        _check_user_cluster(cluster, config, position, reserved)
        for qid in cluster.quantum_ids:
            if qid in seen:
                raise config.clustering.error(
                    "clusterAlgorithm",
                    f"quantum {qid} ({summary.labels[qid]}) is in two jobs, {seen[qid]!r} and "
                    f"{cluster.name!r}; every quantum must be in exactly one job",
                )
            seen[qid] = cluster.name
        ids = cluster.quantum_ids
        if len(ids) > 1 and any(position[a] > position[b] for a, b in zip(ids, ids[1:], strict=False)):
            ids = tuple(sorted(ids, key=position.__getitem__))
            cluster = QuantumCluster(cluster.name, cluster.label, ids)
        checked.append((position[ids[0]], cluster))
    if len(seen) != len(position):
        namer = _Namer(summary.header)
        for qid in summary.quantum_ids:
            if qid not in seen:
                label = summary.labels[qid]
                checked.append(
                    (position[qid], QuantumCluster(namer.name(label, summary.data_ids[qid]), label, (qid,)))
                )
    checked.sort(key=lambda item: item[0])
    return _unique_names([cluster for _, cluster in checked])


def _check_user_cluster(
    cluster: QuantumCluster, config: BpsConfig, position: Mapping[uuid.UUID, int], reserved: set[str]
) -> None:
    def fail(message: str) -> BpsConfigError:
        return config.clustering.error(
            "clusterAlgorithm", f"{config.clustering.algorithm} returned cluster {cluster.name!r}: {message}"
        )

    if not cluster.label or _BAD_LABEL.search(cluster.label) or cluster.label in reserved:
        raise fail(f"label {cluster.label!r} is empty, reserved, or holds a space or slash")
    if not cluster.quantum_ids:
        raise fail("it has no quanta")
    for qid in cluster.quantum_ids:
        if not isinstance(qid, uuid.UUID) or qid not in position:
            raise fail(f"{qid!r} is not the ID of a quantum of this graph")


def _unique_names(clusters: list[QuantumCluster]) -> list[QuantumCluster]:
    """Safe, unique names: unsafe characters become ``-``, repeats get ``_2``, ``_3``..."""
    used: set[str] = {"pipetaskInit", "finalJob"}
    out = []
    for cluster in clusters:
        name = cluster.name
        if _UNSAFE.search(name) or not name:
            name = _UNSAFE.sub("-", name).strip("-") or "job"
        if name in used:
            n = 2
            while f"{name}_{n}" in used:
                n += 1
            _LOG.debug("job name %s is taken; using %s_%d", name, name, n)
            name = f"{name}_{n}"
        used.add(name)
        out.append(
            cluster if name == cluster.name else QuantumCluster(name, cluster.label, cluster.quantum_ids)
        )
    return out


def job_edges(
    clusters: Sequence[QuantumCluster], summary: QuantumGraphSummary, config: BpsConfig
) -> set[tuple[int, int]]:
    """Parent -> child edges between jobs (indices into ``clusters``), refusing a cycle."""
    job_of: dict[uuid.UUID, int] = {}
    for j, cluster in enumerate(clusters):
        for qid in cluster.quantum_ids:
            job_of[qid] = j
    edges: set[tuple[int, int]] = set()
    deps = summary.dependencies
    for qid in summary.quantum_ids:
        child = job_of[qid]
        for parent_id in deps.get(qid, ()):
            parent = job_of[parent_id]
            if parent != child:
                edges.add((parent, child))
    if any(len(c.quantum_ids) > 1 for c in clusters):
        cycle = _find_cycle(len(clusters), edges)
        if cycle:
            raise _cycle_error(cycle, clusters, summary, config)
    return edges


def _find_cycle(n: int, edges: set[tuple[int, int]]) -> list[int]:
    """A cycle of job indices (first == last) if the job graph has one, else ``[]`` (Kahn)."""
    children: list[list[int]] = [[] for _ in range(n)]
    parents: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    for parent, child in edges:
        children[parent].append(child)
        parents[child].append(parent)
        indegree[child] += 1
    ready = [j for j in range(n) if indegree[j] == 0]
    done = 0
    while ready:
        j = ready.pop()
        done += 1
        for c in children[j]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    if done == n:
        return []
    # Every job left has a parent that is left too: walk parents until one repeats.
    j = next(j for j in range(n) if indegree[j] > 0)
    walk: list[int] = []
    where: dict[int, int] = {}
    while j not in where:
        where[j] = len(walk)
        walk.append(j)
        j = next(p for p in parents[j] if indegree[p] > 0)
    cycle = walk[where[j] :] + [j]
    cycle.reverse()  # parent -> child order
    return cycle


def _cycle_error(
    cycle: list[int], clusters: Sequence[QuantumCluster], summary: QuantumGraphSummary, config: BpsConfig
) -> BpsConfigError:
    labels = summary.labels

    def tasks(j: int) -> list[str]:
        return list(dict.fromkeys(labels[q] for q in clusters[j].quantum_ids))

    def describe(j: int) -> str:
        names = tasks(j)
        return f"{clusters[j].name} (task{'s' if len(names) > 1 else ''} {', '.join(names)})"

    path = " -> ".join([*(describe(j) for j in cycle[:-1]), clusters[cycle[-1]].name])
    culprits = [j for j in cycle[:-1] if len(clusters[j].quantum_ids) > 1]
    inside = {label for j in culprits for label in tasks(j)}
    between = sorted({label for j in cycle[:-1] if j not in culprits for label in tasks(j)} - inside)
    cluster_labels = list(dict.fromkeys(clusters[j].label for j in culprits))
    advice = (
        f"task(s) {', '.join(between)} run between tasks of the cluster but are not in it: "
        "add them to the cluster or split the cluster"
        if between
        else "split the cluster"
    )
    message = f"would make a dependency cycle between jobs: {path}; {advice}"
    spec = config.clustering.clusters.get(cluster_labels[0]) if cluster_labels else None
    if config.clustering.algorithm == "dimension" and spec is not None:
        return spec.error("pipetasks", f"cluster {spec.name!r} {message}")
    which = ", ".join(repr(label) for label in cluster_labels)
    return config.clustering.error("clusterAlgorithm", f"cluster {which} {message}")


# -- job-local datasets ----------------------------------------------------------------------------
def job_local_types(
    clusters: Sequence[QuantumCluster], summary: QuantumGraphSummary, config: BpsConfig
) -> list[tuple[str, ...]]:
    """Per cluster, the ``jobLocalDatasetTypes`` its job may keep in memory (``--job-local``).

    A type qualifies for a job when the job produces some of it, and every quantum that might
    read what the job's quanta produce of it (a child quantum whose task has an input of that
    type) is in the same job, with at least one such reader.  Otherwise the job writes it.
    """
    wanted = config.clustering.job_local_dataset_types
    none: tuple[str, ...] = ()
    if not wanted:
        return [none] * len(clusters)
    header = summary.header
    produced_by: dict[str, set[str]] = {name: set() for name in wanted}
    read_by: dict[str, set[str]] = {name: set() for name in wanted}
    for name in wanted:
        if name not in header.dataset_types:
            known = ", ".join(sorted(header.dataset_types))
            raise config.clustering.error(
                "jobLocalDatasetTypes", f"{name!r} is not a dataset type of this graph (known: {known})"
            )
    for label, task in header.tasks.items():
        for conn in task.connections:
            if conn.dataset_type in produced_by:
                if conn.kind == "output":
                    produced_by[conn.dataset_type].add(label)
                elif conn.kind == "input":
                    read_by[conn.dataset_type].add(label)
    for name in wanted:
        if not produced_by[name]:
            raise config.clustering.error(
                "jobLocalDatasetTypes", f"{name!r} is not produced by any task of the pipeline"
            )
    if config.clustering.algorithm == "single":
        _LOG.warning("jobLocalDatasetTypes has no effect with clusterAlgorithm: single (one quantum per job)")
    labels = summary.labels
    children = summary.children
    out: list[tuple[str, ...]] = []
    for cluster in clusters:
        if len(cluster.quantum_ids) < 2:
            out.append(none)
            continue
        members = set(cluster.quantum_ids)
        local = []
        for name in wanted:
            producers = [q for q in cluster.quantum_ids if labels[q] in produced_by[name]]
            if not producers:
                continue
            readers = [c for q in producers for c in children[q] if labels[c] in read_by[name]]
            if readers and all(c in members for c in readers):
                local.append(name)
        out.append(tuple(local))
    return out

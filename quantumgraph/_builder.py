"""The QuantumGraph builder: from a pipeline, input collections and a data query to quanta.

How it works, in order:

1. The pipeline graph gives the dataset types, the task order and the overall inputs (types no
   task produces).
2. Each overall input type is queried once in the input collections (find-first), with the data
   query applied to every input type whose dimensions can express it.
3. Tasks are visited in dependency order.  A task's quanta are the distinct projections onto
   its dimensions of the data IDs of its *driving* inputs (those with at least the task's
   dimensions), intersected across them; inputs with fewer dimensions are looked up per quantum.
   A quantum whose single input is missing is dropped (logged), as there is nothing to run.
4. Predicted outputs get IDs from one :class:`IdFactory`, in quantum order, so the graph file
   can store them as counters; their data IDs are the quantum's projected onto the output type.
   Every quantum also predicts its provenance, ``{label}_log`` and ``{label}_metadata``, and the
   run its ``packages`` (see :mod:`quantumgraph._provenance`).
5. The datastore records of every overall input used are attached, so batch jobs never need the
   registry.
"""

from __future__ import annotations

import datetime
import getpass
import logging
import os
import socket
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from butler import (
    DataCoordinate,
    DatasetRef,
    DatasetType,
    DimensionUniverse,
    MissingCollectionError,
    MissingDatasetTypeError,
    StoredFileInfo,
)

from ._exceptions import GraphBuildError
from ._ids import IdFactory
from ._model import GraphHeader, Quantum, QuantumGraph
from ._pipeline import Pipeline
from ._pipeline_graph import PipelineGraph
from ._provenance import (
    LOG_CONNECTION,
    METADATA_CONNECTION,
    PACKAGES_DATASET_TYPE,
    log_dataset_type_name,
    metadata_dataset_type_name,
)
from ._skip import SucceededQuanta

if TYPE_CHECKING:
    from butler import Butler

_log = logging.getLogger(__name__)


class _Projector:
    """Projects data IDs onto other dimension sets, filling implied values from dimension records."""

    def __init__(self, butler: Butler, universe: DimensionUniverse) -> None:
        self._butler = butler
        self._universe = universe
        self._implied: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}

    def _implied_table(self, dim: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        table = self._implied.get(dim)
        if table is None:
            d = self._universe[dim]
            required = [r for r in self._universe.required_closure([dim]) if r != dim]
            table = {}
            for rec in self._butler.registry.fetch_dimension_records(dim):
                key = tuple(rec[r] for r in required) + (rec[d.key_name],)
                table[key] = {i: rec[i] for i in d.implies}
            self._implied[dim] = table
        return table

    def expand(self, values: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
        """Add implied dimension values to ``values`` until everything in ``wanted`` is present."""
        out = dict(values)
        frontier = [d for d in out if self._universe[d].implies]
        while frontier and not wanted <= out.keys():
            dim = frontier.pop()
            required = [r for r in self._universe.required_closure([dim]) if r != dim]
            if not all(r in out for r in required):
                continue
            implied = self._implied_table(dim).get(tuple(out[r] for r in required) + (out[dim],))
            if implied is None:
                continue
            for name, value in implied.items():
                if name not in out:
                    out[name] = value
                    if self._universe[name].implies:
                        frontier.append(name)
        return out

    def project(self, data_id: DataCoordinate, target: tuple[str, ...]) -> DataCoordinate | None:
        """``data_id`` restricted to ``target`` dimensions, or None if some value cannot be found."""
        dims = data_id.dimensions
        if all(t in dims for t in target):
            return DataCoordinate(target, tuple(data_id.values_tuple[dims.index(t)] for t in target))
        full = self.expand(dict(zip(dims, data_id.values_tuple, strict=True)), set(target))
        if not all(t in full for t in target):
            return None
        return DataCoordinate(target, tuple(full[t] for t in target))


def _metadata(pipeline: Pipeline, where: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers): not worth failing a build over
        user = os.environ.get("USER", "unknown")
    meta = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "user": user,
        "host": socket.gethostname(),
        "command": " ".join(sys.argv),
        "data_query": where or "",
        "pipeline_source": pipeline.source,
        # Where task modules were found: bps gives these to batch jobs (PYTHONPATH).
        "python_path": [str(p) for p in pipeline.python_path],
    }
    meta.update(extra)
    return meta


def _query_where_for(dt: DatasetType, referenced: set[str], universe: DimensionUniverse) -> bool:
    """Whether the data query can be applied to inputs of ``dt`` (all it names is reachable)."""
    return referenced <= set(universe.implied_closure(dt.dimensions))


def build_quantum_graph(
    butler: Butler,
    pipeline: Pipeline,
    *,
    input_collections: Sequence[str],
    output_run: str,
    output: str | None = None,
    where: str | None = None,
    existing_run_ok: bool = False,
    skip_existing_in: Sequence[str] = (),
) -> QuantumGraph:
    """Plan every quantum of ``pipeline`` over the inputs found in ``input_collections``.

    With ``skip_existing_in`` (collections), a quantum whose ``{label}_metadata`` there says it
    succeeded, and whose outputs are all there, is left out; its outputs become inputs of the
    quanta that read them.  A quantum that failed, never ran or lost an output is planned again.

    An ``output_run`` that already exists is refused unless ``existing_run_ok``: ``pipetask run``
    passes it because it reserves the run itself, atomically, when execution starts, and decides
    there (with --extend-run / --clobber-outputs) whether an existing run may be written.

    Raises GraphBuildError when the result would be empty or the collections are unusable, and
    the butler's own errors (MissingDatasetTypeError, QuerySyntaxError, ...) for bad input.
    The phases are the steps of the module docstring, one function each.  A pipeline that names
    an ``instrument`` plans quanta of that instrument only (its name is added to the data query).
    """
    universe = butler.universe
    if pipeline.instrument:
        constraint = f"instrument = '{pipeline.instrument}'"
        where = f"{constraint} AND ({where})" if where and where.strip() else constraint
    pgraph = PipelineGraph.build(pipeline, universe)
    _check_collections(butler, input_collections, output_run, output, existing_run_ok)
    dataset_types = _resolve_dataset_types(butler, pgraph)
    available = _query_inputs(butler, pgraph, dataset_types, input_collections, where)
    ids = IdFactory()
    skip = SucceededQuanta.find(butler, pgraph, skip_existing_in) if skip_existing_in else None
    quanta, counts = _form_quanta(butler, pipeline, pgraph, dataset_types, available, ids, output_run, skip)
    if not quanta and skip is not None and skip.skipped:
        raise GraphBuildError(
            f"nothing to run: all {skip.skipped} quanta already succeeded in "
            f"{', '.join(skip_existing_in)} (--skip-existing-in)"
        )
    if not quanta:
        inputs = ", ".join(f"{n} ({len(available[n])} found)" for n in pgraph.overall_inputs)
        raise GraphBuildError(
            f"the graph is empty: no quanta for any task. Inputs searched in "
            f"{', '.join(input_collections)}: {inputs}" + (f"; data query: {where}" if where else "")
        )
    records = _input_records(butler, pgraph, available, quanta)
    init_outputs = {
        label: [
            DatasetRef(uuid.uuid4(), dataset_types[f"{label}_config"], DataCoordinate((), ()), output_run)
        ]
        for label in pipeline.tasks
    }
    packages = DatasetRef(
        uuid.uuid4(), dataset_types[PACKAGES_DATASET_TYPE], DataCoordinate((), ()), output_run
    )
    header = GraphHeader(
        tasks=pipeline.task_infos(),
        dataset_types=dataset_types,
        universe_config=universe.config,
        input_collections=tuple(input_collections),
        output_run=output_run,
        output=output,
        init_outputs=init_outputs,
        pipeline_yaml=pipeline.to_yaml(),
        metadata=_metadata(
            pipeline,
            where,
            {"quanta": len(quanta), "quanta_per_task": counts, "butler_root": str(butler.root)},
        ),
        id_prefix=ids.prefix,
        global_init_outputs=[packages],
    )
    return QuantumGraph(header, quanta, records)


def _check_collections(
    butler: Butler,
    input_collections: Sequence[str],
    output_run: str,
    output: str | None,
    existing_run_ok: bool = False,
) -> None:
    """The input collections exist; the output run is new and the output (if any) a chain."""
    if not input_collections:
        raise GraphBuildError("no input collections given (-i/--input, or inCollection in a submit YAML)")
    try:
        butler.registry.resolve_collections(list(input_collections))
    except MissingCollectionError as exc:
        raise GraphBuildError(f"input collections: {exc}") from exc
    _check_output_collections(butler, output_run, output, existing_run_ok)


def _resolve_dataset_types(butler: Butler, pgraph: PipelineGraph) -> dict[str, DatasetType]:
    """The graph's dataset types: the registry's definitions win for overall inputs (which must
    be registered); every other one must agree with the registry if registered there."""
    registry = butler.registry
    dataset_types = dict(pgraph.dataset_types)
    for name in pgraph.overall_inputs:
        try:
            registered = registry.get_dataset_type(name)
        except MissingDatasetTypeError as exc:
            consumers = ", ".join(pgraph.consumers[name])
            raise MissingDatasetTypeError(
                f"input dataset type {name!r} (needed by {consumers}) is not registered in {butler.root}"
            ) from exc
        registered.check_compatible(dataset_types[name])
    for name, dt in dataset_types.items():
        if name in pgraph.overall_inputs:
            continue
        try:
            registered = registry.get_dataset_type(name)
        except MissingDatasetTypeError:
            continue
        registered.check_compatible(dt)
    return dataset_types


def _query_inputs(
    butler: Butler,
    pgraph: PipelineGraph,
    dataset_types: dict[str, DatasetType],
    input_collections: Sequence[str],
    where: str | None,
) -> dict[str, dict[DataCoordinate, DatasetRef]]:
    """Each overall input type's datasets (find-first in the input collections), by data ID,
    with the data query applied to every type whose dimensions can express it."""
    universe = butler.universe
    referenced: set[str] = set()
    if where and where.strip():
        from butler.query import parse, referenced_dimensions

        node = parse(where)
        if node is not None:
            referenced = referenced_dimensions(node)
            for dim in referenced:
                universe[dim]  # unknown dimension names fail here with the list of known ones
    available: dict[str, dict[DataCoordinate, DatasetRef]] = {}
    applied = False
    for name in pgraph.overall_inputs:
        dt = dataset_types[name]
        use_where = bool(referenced) and _query_where_for(dt, referenced, universe)
        applied = applied or use_where
        refs = butler.registry.query_datasets(
            dt.name, list(input_collections), where=where if use_where else None, find_first=True
        )
        available[name] = {ref.data_id: ref for ref in refs}
    if referenced and not applied:
        raise GraphBuildError(
            f"the data query {where!r} names {', '.join(sorted(referenced))}, which no input dataset type "
            f"({', '.join(pgraph.overall_inputs)}) has or implies"
        )
    return available


def _form_quanta(
    butler: Butler,
    pipeline: Pipeline,
    pgraph: PipelineGraph,
    dataset_types: dict[str, DatasetType],
    available: dict[str, dict[DataCoordinate, DatasetRef]],
    ids: IdFactory,
    output_run: str,
    skip: SucceededQuanta | None = None,
) -> tuple[list[Quantum], dict[str, int]]:
    """Every task's quanta, in task (dependency) order, with IDs from ``ids`` for quanta and
    predicted outputs; returns them and the count per task.  ``available`` gains the outputs
    (the existing ones of quanta ``skip`` leaves out)."""
    projector = _Projector(butler, butler.universe)
    quanta: list[Quantum] = []
    counts: dict[str, int] = {}
    for label in pgraph.task_order:
        task_quanta = _plan_task(
            label, pipeline, pgraph, dataset_types, available, projector, ids, output_run, skip
        )
        counts[label] = len(task_quanta)
        quanta.extend(task_quanta)
    return quanta, counts


def _input_records(
    butler: Butler,
    pgraph: PipelineGraph,
    available: dict[str, dict[DataCoordinate, DatasetRef]],
    quanta: list[Quantum],
) -> dict[uuid.UUID, StoredFileInfo]:
    """Datastore records of every input no quantum of the graph produces (overall inputs, and
    outputs of quanta left out by --skip-existing-in), so batch jobs never need the registry."""
    produced = {ref.id for q in quanta for ref in q.output_refs()}
    existing = list(dict.fromkeys(ref.id for q in quanta for ref in q.input_refs() if ref.id not in produced))
    return butler.get_records(existing)


def _check_output_collections(
    butler: Butler, output_run: str, output: str | None, existing_run_ok: bool
) -> None:
    registry = butler.registry
    existing = {name: ctype for name, ctype in registry.query_collections()}
    if output_run in existing and not existing_run_ok:
        raise GraphBuildError(
            f"output run {output_run!r} already exists in {butler.root}; choose a new --output-run "
            "(by default a timestamped run under the output collection is used)"
        )
    if output is not None and output in existing and existing[output] != "CHAINED":
        raise GraphBuildError(
            f"output collection {output!r} exists and is a {existing[output]} collection, not CHAINED"
        )


def _plan_task(
    label: str,
    pipeline: Pipeline,
    pgraph: PipelineGraph,
    dataset_types: dict[str, DatasetType],
    available: dict[str, dict[DataCoordinate, DatasetRef]],
    projector: _Projector,
    ids: IdFactory,
    output_run: str,
    skip: SucceededQuanta | None = None,
) -> list[Quantum]:
    task = pipeline.tasks[label]
    dims = pgraph.task_dimensions[label]
    dimset = set(dims)
    inputs = [
        (name, dataset_types[task.dataset_type_of(name)], inp.multiple)
        for name, inp in task.task_class.inputs.items()
    ]
    if not inputs:
        raise GraphBuildError(f"task {label!r} has no inputs, so there is nothing to plan its quanta from")
    driving = [(n, dt, m) for n, dt, m in inputs if not set(dt.dimensions) < dimset]
    lookups = [(n, dt, m) for n, dt, m in inputs if set(dt.dimensions) < dimset]

    grouped: dict[str, dict[DataCoordinate, list[DatasetRef]]] = {}
    candidates: set[DataCoordinate] | None = None
    for name, dt, multiple in driving:
        groups: dict[DataCoordinate, list[DatasetRef]] = defaultdict(list)
        for data_id, ref in available.get(dt.name, {}).items():
            qid = projector.project(data_id, dims)
            if qid is not None:
                groups[qid].append(ref)
        if not multiple:
            for qid, refs in groups.items():
                if len(refs) > 1:
                    raise GraphBuildError(
                        f"task {label!r}: input {name!r} ({dt.name}) has {len(refs)} datasets for quantum "
                        f"{{{qid}}}; declare it Input(..., multiple=True) if the task gathers them"
                    )
        grouped[name] = groups
        keys = set(groups)
        candidates = keys if candidates is None else candidates & keys
    if candidates is None:
        raise GraphBuildError(f"task {label!r}: no input has the task's dimensions ({', '.join(dims)})")

    outputs = [(name, dataset_types[task.dataset_type_of(name)]) for name in task.task_class.outputs]
    outputs += [
        (LOG_CONNECTION, dataset_types[log_dataset_type_name(label)]),
        (METADATA_CONNECTION, dataset_types[metadata_dataset_type_name(label)]),
    ]
    quanta: list[Quantum] = []
    for qid in sorted(candidates, key=lambda d: d.values_tuple):
        q_inputs: dict[str, list[DatasetRef]] = {}
        for name, _dt, _m in driving:
            q_inputs[name] = sorted(grouped[name][qid], key=lambda r: r.data_id.values_tuple)
        missing = None
        for name, dt, _m in lookups:
            sub = qid.subset(dt.dimensions)
            found = available.get(dt.name, {}).get(sub)
            if found is None:
                missing = f"{name} ({dt.name} {{{sub}}})"
                break
            q_inputs[name] = [found]
        if missing is not None:
            _log.info("task %s: no quantum for {%s}: input %s not found", label, qid, missing)
            continue
        if skip is not None:
            existing = skip.outputs_if_succeeded(label, qid, outputs)
            if existing is not None:
                for ref in existing:
                    available.setdefault(ref.dataset_type.name, {})[ref.data_id] = ref
                continue
        quantum_id = ids.next_id()
        q_outputs: dict[str, list[DatasetRef]] = {}
        for name, dt in outputs:
            ref = DatasetRef(ids.next_id(), dt, qid.subset(dt.dimensions), output_run)
            q_outputs[name] = [ref]
            available.setdefault(dt.name, {})[ref.data_id] = ref
        quanta.append(Quantum(quantum_id, label, qid, q_inputs, q_outputs))
    return quanta


def iter_output_refs(graph: QuantumGraph) -> Iterable[DatasetRef]:
    """Every dataset the graph predicts: init outputs first, then each quantum's outputs."""
    for refs in graph.header.init_outputs.values():
        yield from refs
    for q in graph.quanta:
        yield from q.output_refs()

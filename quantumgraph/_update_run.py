"""``pipetask update-graph-run``: the same plan, writing into another output run.

Running a saved graph a second time (after a failed campaign was abandoned, or to repeat it
elsewhere) needs a new output run, and every dataset the graph predicts needs a new ID: a dataset
is (type, data ID, run) and carries one UUID for life.  The graph's structure, inputs and
configs stay as they are; the quanta and their outputs get IDs from a fresh :class:`IdFactory`,
in the same order the builder assigns them, so the file stays as compact as a built one.
"""

from __future__ import annotations

import dataclasses
import uuid

from butler import DatasetRef, check_collection_name

from ._ids import IdFactory
from ._model import Quantum, QuantumGraph


def update_graph_run(graph: QuantumGraph, run: str) -> QuantumGraph:
    """A copy of ``graph`` whose predicted outputs go to RUN ``run``, all with new IDs."""
    check_collection_name(run)
    old_run = graph.header.output_run
    ids = IdFactory()
    renamed: dict[uuid.UUID, uuid.UUID] = {}

    def output(ref: DatasetRef) -> DatasetRef:
        new_id = renamed[ref.id] = ids.next_id()
        return DatasetRef(new_id, ref.dataset_type, ref.data_id, run)

    def input_(ref: DatasetRef) -> DatasetRef:
        new_id = renamed.get(ref.id)
        return ref if new_id is None else DatasetRef(new_id, ref.dataset_type, ref.data_id, run)

    quanta = []
    for q in graph.quanta:  # producers first: an input's new ID is known before it is read
        quantum_id = ids.next_id()
        outputs = {name: [output(r) for r in refs] for name, refs in q.outputs.items()}
        inputs = {name: [input_(r) for r in refs] for name, refs in q.inputs.items()}
        quanta.append(Quantum(quantum_id, q.task_label, q.data_id, inputs, outputs))

    def fresh(ref: DatasetRef) -> DatasetRef:
        return DatasetRef(uuid.uuid4(), ref.dataset_type, ref.data_id, run)

    header = dataclasses.replace(
        graph.header,
        output_run=run,
        id_prefix=ids.prefix,
        init_outputs={label: [fresh(r) for r in refs] for label, refs in graph.header.init_outputs.items()},
        global_init_outputs=[fresh(r) for r in graph.header.global_init_outputs],
        metadata={**graph.header.metadata, "updated_from_run": old_run},
    )
    return QuantumGraph(header, quanta, dict(graph.datastore_records))

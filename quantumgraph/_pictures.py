"""Pictures of pipelines and small QuantumGraphs: Graphviz dot and Mermaid flowchart text.

``pipetask build --pipeline-dot/--pipeline-mermaid`` and ``pipetask qgraph --qgraph-dot`` write
these.  Tasks are boxes, dataset types (or datasets) are ellipses (Mermaid: stadiums); an edge
runs from a dataset to the task reading it and from a task to the dataset it writes.  Node IDs
are generated (``t0``, ``d3`` ...), never the user's names, so no label or dataset type can break
the syntax; names appear only inside quoted, escaped labels.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._model import QuantumGraph
from ._pipeline_graph import PipelineGraph

_DOT_HEADER = [
    "digraph pipeline {",
    "  rankdir=TB;",
    '  node [fontname="Helvetica", fontsize=10];',
]

_TASK_STYLE = "shape=box, style=filled, fillcolor=lightblue"


def _dot_quote(text: str) -> str:
    """A dot double-quoted string holding ``text`` (newlines become line breaks)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _mermaid_quote(text: str) -> str:
    """A Mermaid quoted label: double quotes become the #quot; entity, newlines ``<br>``."""
    return '"' + text.replace('"', "#quot;").replace("\n", "<br>") + '"'


def _task_label(pgraph: PipelineGraph, label: str) -> str:
    task = pgraph.pipeline.tasks[label]
    dims = ", ".join(pgraph.task_dimensions.get(label, ())) or "()"
    return f"{label}\n{task.task_class.__name__}\n({dims})"


def _dataset_label(pgraph: PipelineGraph, name: str) -> str:
    dt = pgraph.dataset_types[name]
    return f"{name}\n({', '.join(dt.dimensions) or ''}) {dt.storage_class}"


def _pipeline_edges(pgraph: PipelineGraph) -> Iterable[tuple[str, str, bool]]:
    """(dataset type, task label, True if the task reads it / False if it writes it)."""
    for label in pgraph.task_order:
        task = pgraph.pipeline.tasks[label]
        for name in task.task_class.inputs:
            yield task.dataset_type_of(name), label, True
        for name in task.task_class.outputs:
            yield task.dataset_type_of(name), label, False


def pipeline_dot(pgraph: PipelineGraph) -> str:
    """The pipeline as a Graphviz digraph: tasks (boxes) and dataset types (ellipses)."""
    lines = list(_DOT_HEADER)
    ids: dict[str, str] = {}
    for i, label in enumerate(pgraph.task_order):
        ids[f"task:{label}"] = f"t{i}"
        lines.append(f"  t{i} [{_TASK_STYLE}, label={_dot_quote(_task_label(pgraph, label))}];")
    for dataset_type, label, reads in _pipeline_edges(pgraph):
        key = f"dataset:{dataset_type}"
        if key not in ids:
            ids[key] = f"d{len(ids)}"
            lines.append(
                f"  {ids[key]} [shape=ellipse, label={_dot_quote(_dataset_label(pgraph, dataset_type))}];"
            )
        src, dst = (ids[key], ids[f"task:{label}"]) if reads else (ids[f"task:{label}"], ids[key])
        lines.append(f"  {src} -> {dst};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def pipeline_mermaid(pgraph: PipelineGraph) -> str:
    """The pipeline as a Mermaid flowchart (renders on GitHub and in most Markdown viewers)."""
    lines = ["flowchart TD"]
    ids: dict[str, str] = {}
    for i, label in enumerate(pgraph.task_order):
        ids[f"task:{label}"] = f"t{i}"
        lines.append(f"    t{i}[{_mermaid_quote(_task_label(pgraph, label))}]")
    for dataset_type, label, reads in _pipeline_edges(pgraph):
        key = f"dataset:{dataset_type}"
        if key not in ids:
            ids[key] = f"d{len(ids)}"
            lines.append(f"    {ids[key]}([{_mermaid_quote(_dataset_label(pgraph, dataset_type))}])")
        src, dst = (ids[key], ids[f"task:{label}"]) if reads else (ids[f"task:{label}"], ids[key])
        lines.append(f"    {src} --> {dst}")
    lines.append("    classDef task fill:#d6eaf8,stroke:#2471a3")
    tasks = ",".join(f"t{i}" for i in range(len(pgraph.task_order)))
    lines.append(f"    class {tasks} task")
    return "\n".join(lines) + "\n"


def quantum_graph_dot(graph: QuantumGraph) -> str:
    """A QuantumGraph as a Graphviz digraph: quanta (boxes) and the datasets they read and write.

    Meant for small graphs (a handful of data IDs); a campaign's graph is unreadable as a picture.
    """
    lines = [line.replace("pipeline", "quantum_graph") for line in _DOT_HEADER]
    ids: dict[object, str] = {}
    for i, q in enumerate(graph.quanta):
        ids[q.id] = f"q{i}"
        text = _dot_quote(f"{q.task_label}\n{q.data_id}")
        lines.append(f"  q{i} [{_TASK_STYLE}, label={text}];")
    edges = []
    for q in graph.quanta:
        for refs, reads in ((list(q.input_refs()), True), (list(q.output_refs()), False)):
            for ref in refs:
                if ref.id not in ids:
                    ids[ref.id] = f"d{len(ids)}"
                    text = f"{ref.dataset_type.name}\n{ref.data_id}"
                    lines.append(f"  {ids[ref.id]} [shape=ellipse, label={_dot_quote(text)}];")
                edges.append((ids[ref.id], ids[q.id]) if reads else (ids[q.id], ids[ref.id]))
    lines.extend(f"  {src} -> {dst};" for src, dst in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"

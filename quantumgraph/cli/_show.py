"""``pipetask build --show WHAT``: text views of a loaded pipeline, one function per view.

The names follow LSST's ``pipetask build --show``: ``pipeline`` (the expanded YAML), ``config``
(every task's config; ``config=PATTERN`` or ``config=LABEL::PATTERN`` filters fields with shell
wildcards, case-insensitively), ``dataset-types``, ``task-graph``, ``pipeline-graph`` and
``subsets``.  Each returns the text; the command prints it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from .._exceptions import PipelineError
from .._pipeline_graph import PipelineGraph

SHOW_CHOICES = (
    "pipeline",
    "config",
    "config=[LABEL::]PATTERN",
    "dataset-types",
    "task-graph",
    "pipeline-graph",
    "subsets",
)


def show_pipeline(pgraph: PipelineGraph) -> str:
    return pgraph.pipeline.to_yaml()


def show_config(pgraph: PipelineGraph, pattern: str | None = None) -> str:
    """``config.field=value`` lines per task, like LSST's, optionally filtered by ``[LABEL::]PATTERN``."""
    pipeline = pgraph.pipeline
    only_label = None
    if pattern is not None and "::" in pattern:
        only_label, _, pattern = pattern.partition("::")
        if only_label not in pipeline.tasks:
            raise PipelineError(
                f"--show config={only_label}::{pattern}: no task labelled {only_label!r} "
                f"(labels: {', '.join(pipeline.tasks)})"
            )
    lines = []
    for label, task in pipeline.tasks.items():
        if only_label is not None and label != only_label:
            continue
        lines.append(f"### Configuration for task `{label}' ({task.class_path})")
        values = task.config.to_dict()
        flat = {k: v for k, v in values.items() if k != "connections"}
        for name, conn in (*task.task_class.inputs.items(), *task.task_class.outputs.items()):
            del conn
            flat[f"connections.{name}"] = task.dataset_type_of(name)
        for key, value in flat.items():
            if pattern is None or fnmatch.fnmatch(key.lower(), pattern.lower()):
                lines.append(f"config.{key}={value!r}")
    return "\n".join(lines) + "\n"


def show_dataset_types(pgraph: PipelineGraph) -> str:
    """One line per dataset type: dimensions, storage class, producer and consumers."""
    rows = []
    for name, dt in pgraph.dataset_types.items():
        producer = pgraph.producers.get(name)
        if producer is None and name.endswith("_config"):
            producer = name.removesuffix("_config") + " (init-output)"
        consumers = ", ".join(pgraph.consumers.get(name, [])) or "-"
        origin = producer or "overall input"
        rows.append((name, f"({', '.join(dt.dimensions)})", dt.storage_class, origin, consumers))
    header = ("dataset type", "dimensions", "storage class", "produced by", "read by")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, [*widths, 0], strict=True)).rstrip() for r in rows]
    return "\n".join(out) + "\n"


def _upstream(pgraph: PipelineGraph) -> dict[str, list[str]]:
    up: dict[str, list[str]] = {label: [] for label in pgraph.task_order}
    for dt_name, consumers in pgraph.consumers.items():
        producer = pgraph.producers.get(dt_name)
        for consumer in consumers:
            if producer is not None and producer not in up[consumer]:
                up[consumer].append(producer)
    return up


def show_task_graph(pgraph: PipelineGraph) -> str:
    """Tasks in execution order, each with the tasks it waits for."""
    up = _upstream(pgraph)
    lines = []
    for label in pgraph.task_order:
        task = pgraph.pipeline.tasks[label]
        after = f"  <- {', '.join(up[label])}" if up[label] else ""
        lines.append(f"{label} ({task.class_path}){after}")
    return "\n".join(lines) + "\n"


def show_pipeline_graph(pgraph: PipelineGraph) -> str:
    """Tasks in execution order with the dataset types each reads and writes."""
    lines = []
    for label in pgraph.task_order:
        task = pgraph.pipeline.tasks[label]
        dims = ", ".join(pgraph.task_dimensions[label])
        lines.append(f"{label} ({task.class_path}) [{dims}]")
        for name, inp in task.task_class.inputs.items():
            many = " (multiple)" if inp.multiple else ""
            lines.append(f"  <- {task.dataset_type_of(name)}{many}")
        for name in task.task_class.outputs:
            lines.append(f"  -> {task.dataset_type_of(name)}")
    return "\n".join(lines) + "\n"


def show_subsets(pgraph: PipelineGraph) -> str:
    subsets = pgraph.pipeline.subsets
    if not subsets:
        return "(no subsets)\n"
    return "".join(
        f"{name}: {', '.join(s.labels)}" + (f"  -- {s.description}" if s.description else "") + "\n"
        for name, s in subsets.items()
    )


_VIEWS: dict[str, Callable[[PipelineGraph], str]] = {
    "pipeline": show_pipeline,
    "config": show_config,
    "dataset-types": show_dataset_types,
    "task-graph": show_task_graph,
    "pipeline-graph": show_pipeline_graph,
    "subsets": show_subsets,
}


def check_show(what: str) -> None:
    """Refuse an unknown ``--show`` value before anything is loaded."""
    name = what.partition("=")[0]
    if name not in _VIEWS or ("=" in what and name != "config"):
        raise PipelineError(f"--show {what}: unknown view; choose from {', '.join(SHOW_CHOICES)}")


def render(pgraph: PipelineGraph, what: str) -> str:
    check_show(what)
    name, eq, arg = what.partition("=")
    if name == "config" and eq:
        return show_config(pgraph, arg)
    return _VIEWS[name](pgraph)

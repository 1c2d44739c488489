"""The pipeline graph: tasks linked through the dataset types they produce and consume.

Worked out from connections, not file order.  It checks what can be checked without data:
every dataset type has one definition and at most one producer, there are no cycles, and each
connection's dimensions fit the task's (outputs within the task's dimensions; single inputs
within them too; a gather input, ``multiple=True``, may have more).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from butler import DatasetType, DimensionUniverse

from ._exceptions import PipelineError
from ._pipeline import Pipeline, TaskDef
from ._provenance import (
    LOG_STORAGE_CLASS,
    METADATA_STORAGE_CLASS,
    PACKAGES_DATASET_TYPE,
    PACKAGES_STORAGE_CLASS,
    log_dataset_type_name,
    metadata_dataset_type_name,
)

CONFIG_STORAGE_CLASS = "TaskConfig"


def _describe(dt: DatasetType) -> str:
    return f"dimensions {', '.join(dt.dimensions) or '()'}, storage class {dt.storage_class}"


@dataclass(slots=True)
class PipelineGraph:
    """Validated structure of a pipeline over a dimension universe."""

    pipeline: Pipeline
    universe: DimensionUniverse
    dataset_types: dict[str, DatasetType] = field(default_factory=dict)
    producers: dict[str, str] = field(default_factory=dict)
    """Dataset type name -> label of the task producing it."""
    consumers: dict[str, list[str]] = field(default_factory=dict)
    task_order: list[str] = field(default_factory=list)
    task_dimensions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Label -> the task's dimensions as a sorted required closure."""

    @classmethod
    def build(cls, pipeline: Pipeline, universe: DimensionUniverse) -> PipelineGraph:
        graph = cls(pipeline, universe)
        definers: dict[str, str] = {}
        for label, task in pipeline.tasks.items():
            graph._add_task(label, task, definers)
        graph._define(DatasetType(PACKAGES_DATASET_TYPE, (), PACKAGES_STORAGE_CLASS), "the run", definers)
        graph.task_order = graph._sort()
        return graph

    def _define(self, dt: DatasetType, who: str, definers: dict[str, str]) -> None:
        existing = self.dataset_types.get(dt.name)
        if existing is None:
            self.dataset_types[dt.name] = dt
            definers[dt.name] = who
        elif existing != dt:
            raise PipelineError(
                f"dataset type {dt.name} is defined differently by {definers[dt.name]} "
                f"({_describe(existing)}) and by {who} ({_describe(dt)})"
            )

    def _add_task(self, label: str, task: TaskDef, definers: dict[str, str]) -> None:
        u = self.universe
        where = f"task {label!r} ({task.class_path})"
        try:
            dims = u.required_closure(task.task_class.dimensions)
        except KeyError as exc:
            raise PipelineError(f"{where}: {exc}") from None
        self.task_dimensions[label] = dims
        dimset = set(dims)
        for name, inp in task.task_class.inputs.items():
            dt = self._dataset_type(task, name, inp.storage_class, inp.dimensions, where)
            self._define(dt, f"{where} input {name!r}", definers)
            self.consumers.setdefault(dt.name, []).append(label)
            if not set(dt.dimensions) <= dimset and not inp.multiple:
                raise PipelineError(
                    f"{where}: input {name!r} ({dt.name}) has dimensions ({', '.join(dt.dimensions)}) beyond "
                    f"the task's ({', '.join(dims)}); declare it Input(..., multiple=True) to gather them"
                )
        for name, out in task.task_class.outputs.items():
            dt = self._dataset_type(task, name, out.storage_class, out.dimensions, where)
            self._define(dt, f"{where} output {name!r}", definers)
            if not set(dt.dimensions) <= dimset:
                raise PipelineError(
                    f"{where}: output {name!r} ({dt.name}) has dimensions ({', '.join(dt.dimensions)}) "
                    f"that are not all task dimensions ({', '.join(dims)})"
                )
            if dt.name in self.producers:
                raise PipelineError(
                    f"dataset type {dt.name} is produced by both {self.producers[dt.name]!r} and {label!r}"
                )
            self.producers[dt.name] = label
        cfg = DatasetType(f"{label}_config", (), CONFIG_STORAGE_CLASS)
        self._define(cfg, f"{where} config", definers)
        # Provenance every quantum writes (see quantumgraph._provenance), on the task's data IDs.
        for name, sc in (
            (log_dataset_type_name(label), LOG_STORAGE_CLASS),
            (metadata_dataset_type_name(label), METADATA_STORAGE_CLASS),
        ):
            self._define(DatasetType(name, dims, sc), f"{where} provenance", definers)
            self.producers[name] = label

    def _dataset_type(
        self, task: TaskDef, name: str, storage_class: str, dims: tuple[str, ...], where: str
    ) -> DatasetType:
        try:
            return DatasetType.build(task.dataset_type_of(name), dims, storage_class, self.universe)
        except (KeyError, ValueError) as exc:
            raise PipelineError(f"{where}: connection {name!r}: {exc}") from None

    def _sort(self) -> list[str]:
        """Labels in dependency order (stable with respect to file order), refusing cycles."""
        deps: dict[str, set[str]] = {label: set() for label in self.pipeline.tasks}
        for dt_name, consumers in self.consumers.items():
            producer = self.producers.get(dt_name)
            if producer is not None:
                for c in consumers:
                    deps[c].add(producer)
        order: list[str] = []
        remaining = dict(deps)
        while remaining:
            ready = [label for label, d in remaining.items() if not (d - set(order))]
            if not ready:
                raise PipelineError(
                    f"pipeline has a dependency cycle among tasks: {', '.join(sorted(remaining))}"
                )
            for label in ready:
                order.append(label)
                del remaining[label]
        return order

    @property
    def overall_inputs(self) -> list[str]:
        """Dataset types consumed but not produced: they must already exist in the repository."""
        return [name for name in self.consumers if name not in self.producers]

    @property
    def outputs(self) -> list[str]:
        return list(self.producers)

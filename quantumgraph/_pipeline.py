"""Pipelines: which tasks to run, under which labels, with which config; loaded from YAML.

The YAML shape is the one LSST pipeline authors know (see docs/pipelines.md for every key)::

    description: Instrument signature removal and calibration
    imports:
      - location: base.yaml
        exclude: [gather]
    parameters:
      offset: 2.0
    tasks:
      isr:
        class: mypackage.tasks.Isr
        config:
          offset: parameters.offset
          connections.raw: rawAlt
    subsets:
      perDetector: [isr, calibrate]
    contracts:
      - contract: calibrate.scale > 0
        msg: a negative scale flips every value

A pipeline is named as ``FILE.yaml`` or ``FILE.yaml#SELECTION`` wherever one is accepted
(``pipetask -p``, bps ``pipelineYaml``): the selection is labels and subset names separated by
commas, or a range ``a..b``, ``..b``, ``a..`` over the task dependency graph (see :meth:`Pipeline.select`).

Task modules are found on ``sys.path`` plus the pipeline's *task search path*: its ``python_path``
entries, the directories of the pipeline file and the files it imports, and the current directory.
The path is kept on the pipeline (and in a graph's metadata) so batch jobs can be given it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ._config import TaskConfig
from ._contracts import ConfigView, Contract
from ._exceptions import PipelineError
from ._model import ConnectionInfo, TaskInfo
from ._pipeline_yaml import (
    PipelineDoc,
    Subset,
    expand_labels,
    read_pipeline_file,
    read_pipeline_text,
    substitute_parameters,
)
from ._provenance import (
    LOG_CONNECTION,
    METADATA_CONNECTION,
    log_dataset_type_name,
    metadata_dataset_type_name,
)
from ._task import PipelineTask


def add_task_search_path(directories: Sequence[str | Path]) -> None:
    """Make ``directories`` importable: appended to ``sys.path`` (never in front of installed code)."""
    added = False
    for d in directories:
        text = str(d)
        if text not in sys.path:
            sys.path.append(text)
            added = True
    if added:
        importlib.invalidate_caches()


def import_task_class(
    path: str, where: str = "", search_path: Sequence[str | Path] = ()
) -> type[PipelineTask]:
    """Import ``module.Class`` (after adding ``search_path`` to sys.path); check it is a PipelineTask."""
    module_name, _, attr = path.rpartition(".")
    prefix = f"{where}: " if where else ""
    if not module_name:
        raise PipelineError(f"{prefix}task class {path!r} must be a dotted path like 'package.module.Class'")
    add_task_search_path(search_path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        searched = f" (searched sys.path and {', '.join(map(str, search_path))})" if search_path else ""
        raise PipelineError(
            f"{prefix}cannot import module {module_name!r} for task class {path!r}: {exc}{searched}; "
            "put the module next to the pipeline file, list its directory under 'python_path:' in the "
            "pipeline, or install it"
        ) from exc
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise PipelineError(f"{prefix}module {module_name!r} has no attribute {attr!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, PipelineTask)):
        raise PipelineError(f"{prefix}{path!r} is not a PipelineTask subclass")
    return cls


@dataclass(slots=True)
class TaskDef:
    """One task of a pipeline: its label, class, resolved config and connection dataset types."""

    label: str
    class_path: str
    task_class: type[PipelineTask]
    config: TaskConfig
    overrides: dict[str, Any] = field(default_factory=dict)
    """The config values given to the Config: ``template`` with parameters substituted."""
    template: dict[str, Any] = field(default_factory=dict)
    """The pipeline's config values for this task as written (``parameters.NAME`` references kept),
    command-line overrides included: what the config is rebuilt from when parameters change."""

    def dataset_type_of(self, connection: str) -> str:
        return self.task_class.connection_dataset_type(connection, self.config)

    def input_types(self) -> list[str]:
        return [self.dataset_type_of(n) for n in self.task_class.inputs]

    def output_types(self) -> list[str]:
        return [self.dataset_type_of(n) for n in self.task_class.outputs]

    def info(self) -> TaskInfo:
        """The serialisable description stored in the graph header."""
        conns: list[ConnectionInfo] = []
        for name, inp in self.task_class.inputs.items():
            conns.append(ConnectionInfo(name, self.dataset_type_of(name), "input", inp.multiple))
        for name in self.task_class.outputs:
            conns.append(ConnectionInfo(name, self.dataset_type_of(name), "output", False))
        conns.append(ConnectionInfo("config", f"{self.label}_config", "init_output", False))
        # Provenance outputs of every quantum (quantumgraph._provenance), after the task's own.
        conns.append(ConnectionInfo(LOG_CONNECTION, log_dataset_type_name(self.label), "output", False))
        conns.append(
            ConnectionInfo(METADATA_CONNECTION, metadata_dataset_type_name(self.label), "output", False)
        )
        return TaskInfo(
            self.label, self.class_path, self.config.to_dict(), self.task_class.dimensions, tuple(conns)
        )

    def config_view(self) -> ConfigView:
        fields = {k: v for k, v in self.config.to_dict().items() if k != "connections"}
        conns = {n: self.dataset_type_of(n) for n in (*self.task_class.inputs, *self.task_class.outputs)}
        return ConfigView(self.label, fields, conns)


def split_pipeline_spec(spec: str | Path) -> tuple[Path, str | None]:
    """``FILE.yaml#SELECTION`` -> (path, selection).  A path that exists as written is never split."""
    text = str(spec)
    if "#" not in text or Path(text).is_file():
        return Path(text), None
    path, _, selection = text.rpartition("#")
    return Path(path), selection


@dataclass(slots=True)
class Pipeline:
    """A parsed, validated pipeline: tasks by label, in the order the files declare them."""

    description: str
    tasks: dict[str, TaskDef]
    yaml_text: str
    source: str = "<string>"
    instrument: str | None = None
    subsets: dict[str, Subset] = field(default_factory=dict)
    contracts: list[Contract] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    python_path: tuple[Path, ...] = ()
    """Directories task modules are imported from besides sys.path (see the module docstring)."""

    @classmethod
    def from_file(cls, spec: str | Path, *, selection: str | None = None) -> Pipeline:
        """Load ``FILE.yaml`` or ``FILE.yaml#SELECTION`` (imports resolved, contracts checked).

        ``selection`` given: ``spec`` is the file's path as is, never split at ``#``.
        """
        if selection is None:
            path, selection = split_pipeline_spec(spec)
        else:
            path = Path(spec)
        doc, text = read_pipeline_file(path)
        pipeline = cls._from_doc(doc, text)
        if selection is not None:
            pipeline = pipeline.select(selection)  # before contracts: those about dropped tasks go
        pipeline.check_contracts()
        return pipeline

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>", base_dir: str | Path | None = None) -> Pipeline:
        """Load a pipeline from a string; relative imports and python_path resolve from ``base_dir``."""
        doc = read_pipeline_text(text, source, Path(base_dir) if base_dir is not None else Path.cwd())
        pipeline = cls._from_doc(doc, text)
        pipeline.check_contracts()
        return pipeline

    @classmethod
    def _from_doc(cls, doc: PipelineDoc, text: str) -> Pipeline:
        """Import the task classes and build their configs (contracts are the caller's to check)."""
        search = tuple(dict.fromkeys([*doc.python_path, Path.cwd()]))
        tasks = {
            label: _make_task(
                f"{decl.source}: task {label!r}",
                label,
                decl.class_path,
                decl.merged_config(),
                doc.parameters,
                search,
            )
            for label, decl in doc.tasks.items()
        }
        return cls(
            doc.description,
            tasks,
            text,
            doc.source,
            doc.instrument,
            dict(doc.subsets),
            list(doc.contracts),
            dict(doc.parameters),
            search,
        )

    def check_contracts(self) -> None:
        """Evaluate every contract over the current configs; the first false one raises PipelineError."""
        views = {label: task.config_view() for label, task in self.tasks.items()}
        for contract in self.contracts:
            contract.check(views)

    def with_config(self, label: str, overrides: Mapping[str, Any]) -> Pipeline:
        """A copy with ``overrides`` applied to ``label``'s config (after the YAML's); contracts re-checked.

        The hook for command-line overrides (``-c label:field=value``); values are YAML-typed, and
        ``parameters.NAME`` references are substituted as in the file.
        """
        task = self.tasks.get(label)
        if task is None:
            raise PipelineError(
                f"{self.source}: no task labelled {label!r} (labels: {', '.join(self.tasks)})"
            )
        template = {**task.template, **overrides}
        tasks = dict(self.tasks)
        where = f"config override for task {label!r}"
        tasks[label] = _make_task(where, label, task.class_path, template, self.parameters, self.python_path)
        pipeline = replace(self, tasks=tasks)
        pipeline.check_contracts()
        return pipeline

    def with_parameters(self, values: Mapping[str, Any]) -> Pipeline:
        """A copy with new values for existing ``parameters`` (``-c parameters:NAME=VALUE`` in LSST).

        Every task whose config refers to a changed parameter is rebuilt with the new value, in the
        YAML's values and in command-line overrides alike; contracts are re-checked.  A name the
        pipeline does not define is refused (a typo would otherwise change nothing).
        """
        unknown = [name for name in values if name not in self.parameters]
        if unknown:
            raise PipelineError(
                f"{self.source}: parameter(s) {', '.join(unknown)} not defined "
                f"(parameters: {', '.join(self.parameters) or 'none'})"
            )
        parameters = {**self.parameters, **values}
        tasks = {
            label: _make_task(
                f"task {label!r}", label, t.class_path, t.template, parameters, self.python_path
            )
            for label, t in self.tasks.items()
        }
        pipeline = replace(self, tasks=tasks, parameters=parameters)
        pipeline.check_contracts()
        return pipeline

    def dependency_order(self) -> list[str]:
        """Labels with every producer before its consumers (file order among independent tasks)."""
        producers = {dt: label for label, t in self.tasks.items() for dt in t.output_types()}
        upstream = {
            label: {producers[dt] for dt in t.input_types() if dt in producers} - {label}
            for label, t in self.tasks.items()
        }
        order: list[str] = []
        while len(order) < len(upstream):
            ready = [label for label, up in upstream.items() if label not in order and up <= set(order)]
            if not ready:
                rest = sorted(set(upstream) - set(order))
                raise PipelineError(f"pipeline has a dependency cycle among tasks: {', '.join(rest)}")
            order.extend(ready)
        return order

    def select(self, selection: str) -> Pipeline:
        """The part of this pipeline a ``#SELECTION`` names (LSST's label specifiers).

        ``a,b,subsetName``: those labels (a subset stands for its labels).  ``a..b``: ``a``, ``b``
        and every task downstream of ``a`` and upstream of ``b``; ``..b``: ``b`` and everything
        upstream of it; ``a..``: ``a`` and everything downstream.  Subsets and contracts that
        name a dropped label are dropped; the instrument and parameters stay.
        """
        where = f"{self.source}#{selection}"
        selection = selection.strip()
        if not selection:
            raise PipelineError(f"{where}: empty selection after '#'; give labels, subsets or a range a..b")
        if ".." in selection:
            begin, _, end = (part.strip() for part in selection.partition(".."))
            for name, role in ((begin, "start"), (end, "end")):
                if name and name not in self.tasks:
                    raise PipelineError(
                        f"{where}: range {role} {name!r} is not a task label "
                        f"(labels: {', '.join(self.tasks)})"
                    )
            keep = self._between(begin or None, end or None)
        else:
            names = [s.strip() for s in selection.split(",") if s.strip()]
            keep = expand_labels(self.tasks, self.subsets, names, where, self.source)
        tasks = {label: t for label, t in self.tasks.items() if label in keep}
        subsets = {n: s for n, s in self.subsets.items() if set(s.labels) <= keep}
        contracts = [c for c in self.contracts if c.labels() <= keep]
        return replace(self, tasks=tasks, subsets=subsets, contracts=contracts)

    def _between(self, begin: str | None, end: str | None) -> set[str]:
        producers = {dt: label for label, t in self.tasks.items() for dt in t.output_types()}
        up = {
            label: {producers[dt] for dt in t.input_types() if dt in producers}
            for label, t in self.tasks.items()
        }
        down: dict[str, set[str]] = {label: set() for label in self.tasks}
        for label, parents in up.items():
            for p in parents:
                down[p].add(label)

        def closure(start: str, edges: Mapping[str, set[str]]) -> set[str]:
            seen, todo = {start}, [start]
            while todo:
                for nxt in edges[todo.pop()]:
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            return seen

        keep = set(self.tasks)
        if begin is not None:
            keep &= closure(begin, down)
        if end is not None:
            keep &= closure(end, up)
        return keep

    def task_infos(self) -> dict[str, TaskInfo]:
        return {label: t.info() for label, t in self.tasks.items()}

    def to_yaml(self) -> str:
        """The expanded pipeline as one YAML document: imports resolved, parameters substituted."""
        doc: dict[str, Any] = {"description": self.description}
        if self.instrument:
            doc["instrument"] = self.instrument
        if self.parameters:
            doc["parameters"] = dict(self.parameters)
        doc["tasks"] = {
            label: {"class": t.class_path, **({"config": dict(t.overrides)} if t.overrides else {})}
            for label, t in self.tasks.items()
        }
        if self.subsets:
            doc["subsets"] = {
                n: {"subset": list(s.labels), **({"description": s.description} if s.description else {})}
                for n, s in self.subsets.items()
            }
        if self.contracts:
            doc["contracts"] = [
                {"contract": c.expression, **({"msg": c.msg} if c.msg else {})} for c in self.contracts
            ]
        return yaml.safe_dump(_plain(doc), sort_keys=False, default_flow_style=False)


def _plain(value: Any) -> Any:
    """Tuples (from command-line overrides, say) as lists, so ``yaml.safe_dump`` can write them."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _make_task(
    where: str,
    label: str,
    class_path: str,
    template: Mapping[str, Any],
    parameters: Mapping[str, Any],
    search: Sequence[Path],
) -> TaskDef:
    overrides = substitute_parameters(dict(template), parameters, f"{where}: config")
    task_class = import_task_class(class_path, where, search)
    try:
        config = task_class.Config.from_overrides(overrides)
    except PipelineError as exc:
        raise PipelineError(f"{where}: {exc}") from exc
    known = set(task_class.inputs) | set(task_class.outputs)
    bad = set(config.connections) - known
    if bad:
        raise PipelineError(
            f"{where}: config renames unknown connection(s) {', '.join(sorted(bad))}; "
            f"the task's connections are {', '.join(sorted(known))}"
        )
    return TaskDef(label, class_path, task_class, config, dict(overrides), dict(template))

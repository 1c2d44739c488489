"""Pipeline YAML: which tasks to run, under which labels, with which config overrides.

The shape follows the LSST pipeline files users already know::

    description: Instrument signature removal and calibration
    tasks:
      isr:
        class: mypackage.tasks.Isr
        config:
          offset: 2.0
          connections.raw: rawAlt
      calibrate: mypackage.tasks.Calibrate     # short form: class only

Task order in the file does not matter; the pipeline graph is worked out from connections.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._config import TaskConfig
from ._exceptions import PipelineError
from ._model import ConnectionInfo, TaskInfo
from ._task import PipelineTask

_TOP_LEVEL_KEYS = {"description", "tasks"}
_TASK_KEYS = {"class", "config"}


def import_task_class(path: str, where: str = "") -> type[PipelineTask]:
    """Import ``module.Class`` and check it is a PipelineTask subclass."""
    module_name, _, attr = path.rpartition(".")
    prefix = f"{where}: " if where else ""
    if not module_name:
        raise PipelineError(f"{prefix}task class {path!r} must be a dotted path like 'package.module.Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError(
            f"{prefix}cannot import module {module_name!r} for task class {path!r}: {exc}"
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

    def dataset_type_of(self, connection: str) -> str:
        return self.task_class.connection_dataset_type(connection, self.config)

    def info(self) -> TaskInfo:
        """The serialisable description stored in the graph header."""
        conns: list[ConnectionInfo] = []
        for name, inp in self.task_class.inputs.items():
            conns.append(ConnectionInfo(name, self.dataset_type_of(name), "input", inp.multiple))
        for name in self.task_class.outputs:
            conns.append(ConnectionInfo(name, self.dataset_type_of(name), "output", False))
        conns.append(ConnectionInfo("config", f"{self.label}_config", "init_output", False))
        return TaskInfo(
            self.label, self.class_path, self.config.to_dict(), self.task_class.dimensions, tuple(conns)
        )


@dataclass(slots=True)
class Pipeline:
    """A parsed, validated pipeline: tasks by label, in the order the file lists them."""

    description: str
    tasks: dict[str, TaskDef]
    yaml_text: str
    source: str = "<string>"

    @classmethod
    def from_file(cls, path: str | Path) -> Pipeline:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise PipelineError(f"cannot read pipeline file {p}: {exc.strerror or exc}") from exc
        return cls.from_yaml(text, source=str(p))

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> Pipeline:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise PipelineError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
        if not isinstance(data, Mapping):
            raise PipelineError(f"{source}: a pipeline must be a mapping with 'description' and 'tasks'")
        unknown = set(data) - _TOP_LEVEL_KEYS
        if unknown:
            raise PipelineError(
                f"{source}: unsupported top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"supported: {', '.join(sorted(_TOP_LEVEL_KEYS))}"
            )
        tasks_data = data.get("tasks")
        if not isinstance(tasks_data, Mapping) or not tasks_data:
            raise PipelineError(f"{source}: 'tasks' must be a non-empty mapping of label -> task")
        tasks: dict[str, TaskDef] = {}
        for label, spec in tasks_data.items():
            tasks[str(label)] = _parse_task(source, str(label), spec)
        return cls(str(data.get("description") or ""), tasks, text, source)

    def task_infos(self) -> dict[str, TaskInfo]:
        return {label: t.info() for label, t in self.tasks.items()}


def _parse_task(source: str, label: str, spec: Any) -> TaskDef:
    where = f"{source}: task {label!r}"
    if isinstance(spec, str):
        spec = {"class": spec}
    if not isinstance(spec, Mapping):
        raise PipelineError(f"{where}: must be a class path or a mapping with 'class' and 'config'")
    unknown = set(spec) - _TASK_KEYS
    if unknown:
        raise PipelineError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; use 'class' and 'config'"
        )
    class_path = spec.get("class")
    if not isinstance(class_path, str):
        raise PipelineError(f"{where}: 'class' (a dotted path to a PipelineTask) is required")
    task_class = import_task_class(class_path, where)
    overrides = spec.get("config") or {}
    if not isinstance(overrides, Mapping):
        raise PipelineError(f"{where}: 'config' must be a mapping of field -> value")
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
    return TaskDef(label, class_path, task_class, config)

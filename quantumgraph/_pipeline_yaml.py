"""Reading pipeline YAML files, with their imports, into one declarative document.

This module knows the file format and nothing about task classes: it resolves ``imports``
(``include``/``exclude``/``importContracts``), merges ``tasks``, ``subsets``, ``parameters``,
``contracts``, ``instrument`` and ``python_path`` the way LSST pipeline files merge them, and
substitutes ``parameters.NAME`` values into task configs.  :mod:`quantumgraph._pipeline` turns the
result into tasks with checked configs.  Every error names the file and the key that is wrong.

Merge rules (LSST's): labels must be unique among the imported files; a label declared again in
the importing file with the same class extends the imported declaration (its config entries are
applied after the imported ones), with another class replaces it; subsets naming a label that an
``include``/``exclude`` dropped are dropped too; the importing file's ``parameters`` override
imported ones and are substituted after all imports are merged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._contracts import Contract
from ._exceptions import PipelineError

TOP_LEVEL_KEYS = (
    "description",
    "instrument",
    "imports",
    "parameters",
    "tasks",
    "subsets",
    "contracts",
    "python_path",
)
_TASK_KEYS = ("class", "config")
_IMPORT_KEYS = ("location", "include", "exclude", "importContracts")
_PARAMETER_PREFIX = "parameters."
_INSTRUMENT_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(slots=True)
class ConfigBlock:
    """One ``config:`` mapping of a task, with the file that wrote it (blocks apply in order)."""

    values: dict[str, Any]
    source: str


@dataclass(slots=True)
class TaskDecl:
    """A task as the YAML declares it: class path and its config blocks, not yet imported."""

    label: str
    class_path: str
    configs: list[ConfigBlock]
    source: str

    def merged_config(self) -> dict[str, Any]:
        """The config overrides in application order (later blocks win), connections folded in."""
        out: dict[str, Any] = {}
        for block in self.configs:
            for key, value in block.values.items():
                if key == "connections" and isinstance(value, Mapping):
                    for name, dt in value.items():
                        out[f"connections.{name}"] = dt
                else:
                    out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class Subset:
    """A named group of task labels (``subsets:``), usable wherever labels are."""

    name: str
    labels: tuple[str, ...]
    description: str
    source: str


@dataclass(slots=True)
class PipelineDoc:
    """The merged declarative content of a pipeline file and everything it imports."""

    source: str
    description: str = ""
    instrument: str | None = None
    tasks: dict[str, TaskDecl] = field(default_factory=dict)
    subsets: dict[str, Subset] = field(default_factory=dict)
    contracts: list[Contract] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    python_path: list[Path] = field(default_factory=list)
    """Absolute directories task modules are imported from (see :func:`read_pipeline_file`)."""


def _names(value: Any) -> str:
    return ", ".join(sorted(map(str, value)))


def _load_yaml(text: str, source: str) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise PipelineError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, Mapping):
        raise PipelineError(f"{source}: a pipeline must be a mapping with 'description' and 'tasks'")
    unknown = set(map(str, data)) - set(TOP_LEVEL_KEYS)
    if unknown:
        raise PipelineError(
            f"{source}: unsupported top-level key(s) {_names(unknown)}; "
            f"supported: {', '.join(TOP_LEVEL_KEYS)}"
        )
    return data


def read_pipeline_file(path: Path) -> tuple[PipelineDoc, str]:
    """Load ``path`` and its imports; return the merged document and the file's own text."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PipelineError(f"cannot read pipeline file {path}: {exc.strerror or exc}") from exc
    doc = _read_doc(text, str(path), path.resolve().parent, (path.resolve(),))
    _check_parameters(doc)
    return doc, text


def read_pipeline_text(text: str, source: str, base_dir: Path) -> PipelineDoc:
    """Load a pipeline from a string; imports and ``python_path`` are relative to ``base_dir``."""
    doc = _read_doc(text, source, base_dir.resolve(), ())
    _check_parameters(doc)
    return doc


def _read_doc(text: str, source: str, base_dir: Path, stack: tuple[Path, ...]) -> PipelineDoc:
    data = _load_yaml(text, source)
    doc = PipelineDoc(source)
    own_parameters = _parameters(data.get("parameters"), source)
    for i, spec in enumerate(_list(data.get("imports"), source, "imports")):
        imported = _import(spec, source, f"imports[{i}]", base_dir, stack)
        _merge_import(doc, imported, source, f"imports[{i}]", set(own_parameters))
    doc.description = _string(data.get("description"), source, "description") or doc.description
    instrument = _string(data.get("instrument"), source, "instrument")
    if instrument and not _INSTRUMENT_NAME.fullmatch(instrument):
        raise PipelineError(
            f"{source}: instrument: {instrument!r} is not an instrument name (letters, digits, '_', '-', '.')"
        )
    if instrument:
        doc.instrument = instrument
    doc.parameters.update(own_parameters)
    doc.python_path = _dedup(
        [*_python_path(data.get("python_path"), source, base_dir), base_dir, *doc.python_path]
    )
    _merge_tasks(doc, data.get("tasks"), source, must_have_tasks=not doc.tasks)
    for name, subset in _subsets(data.get("subsets"), source).items():
        if name in doc.subsets:
            raise PipelineError(f"{source}: subsets.{name}: already defined in {doc.subsets[name].source}")
        doc.subsets[name] = subset
    for i, item in enumerate(_list(data.get("contracts"), source, "contracts")):
        doc.contracts.append(_contract(item, f"{source}: contracts[{i}]"))
    _check_subsets(doc)
    return doc


def _dedup(paths: Sequence[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def _list(value: Any, source: str, key: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        return [value]
    if not isinstance(value, list):
        raise PipelineError(f"{source}: {key}: expected a list, got {type(value).__name__}")
    return value


def _string(value: Any, source: str, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PipelineError(f"{source}: {key}: expected a string, got {type(value).__name__} {value!r}")
    return value.strip()


def _parameters(value: Any, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineError(f"{source}: parameters: expected a mapping of name -> value")
    return {str(k): v for k, v in value.items()}


def _python_path(value: Any, source: str, base_dir: Path) -> list[Path]:
    out = []
    for i, item in enumerate(_list(value, source, "python_path")):
        if not isinstance(item, str) or not item.strip():
            raise PipelineError(f"{source}: python_path[{i}]: expected a directory path, got {item!r}")
        p = Path(os.path.expandvars(os.path.expanduser(item.strip())))
        p = (base_dir / p).resolve()
        if not p.is_dir():
            raise PipelineError(f"{source}: python_path[{i}]: {p} is not a directory")
        out.append(p)
    return out


def _import(spec: Any, source: str, key: str, base_dir: Path, stack: tuple[Path, ...]) -> PipelineDoc:
    """Read one ``imports`` entry: the imported document with include/exclude/importContracts applied."""
    if isinstance(spec, str):
        spec = {"location": spec}
    if not isinstance(spec, Mapping):
        raise PipelineError(f"{source}: {key}: expected a path or a mapping with 'location'")
    unknown = set(map(str, spec)) - set(_IMPORT_KEYS)
    if unknown:
        raise PipelineError(
            f"{source}: {key}: unknown key(s) {_names(unknown)}; use {', '.join(_IMPORT_KEYS)}"
        )
    location = _string(spec.get("location"), source, f"{key}.location")
    if not location:
        raise PipelineError(f"{source}: {key}.location: the path of the pipeline to import is required")
    path = Path(os.path.expandvars(os.path.expanduser(location)))
    path = (base_dir / path).resolve()
    if path in stack:
        cycle = " -> ".join(str(p) for p in (*stack[stack.index(path) :], path))
        raise PipelineError(f"{source}: {key}.location: import cycle: {cycle}")
    if not path.is_file():
        raise PipelineError(f"{source}: {key}.location: no pipeline file at {path}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise PipelineError(f"{source}: {key}.location: cannot read {path}: {exc.strerror or exc}") from exc
    doc = _read_doc(text, str(path), path.parent, (*stack, path))
    if "include" in spec and "exclude" in spec:
        raise PipelineError(f"{source}: {key}: give 'include' or 'exclude', not both")
    import_contracts = spec.get("importContracts", True)
    if not isinstance(import_contracts, bool):
        raise PipelineError(f"{source}: {key}.importContracts: expected true or false")
    keep = set(doc.tasks)
    for which in ("include", "exclude"):
        if which in spec:
            names = _label_list(spec[which], source, f"{key}.{which}")
            labels = expand_labels(doc.tasks, doc.subsets, names, f"{source}: {key}.{which}", doc.source)
            keep = labels if which == "include" else keep - labels
    restrict(doc, keep)
    if not import_contracts:
        doc.contracts = []
    return doc


def _label_list(value: Any, source: str, key: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise PipelineError(f"{source}: {key}: expected a list of task labels or subset names")
    return items


def expand_labels(
    labels: Collection[str], subsets: Mapping[str, Subset], names: Sequence[str], where: str, source: str
) -> set[str]:
    """Labels named directly or through a subset name; unknown names are an error saying ``where``."""
    out: set[str] = set()
    for name in names:
        if name in labels:
            out.add(name)
        elif name in subsets:
            out.update(subsets[name].labels)
        else:
            raise PipelineError(
                f"{where}: {name!r} is neither a task label ({_names(labels) or 'none'}) "
                f"nor a subset ({_names(subsets) or 'none'}) of {source}"
            )
    return out


def restrict(doc: PipelineDoc, keep: set[str]) -> None:
    """Keep only the ``keep`` labels, the subsets wholly inside them and the contracts about them."""
    doc.tasks = {label: t for label, t in doc.tasks.items() if label in keep}
    doc.subsets = {n: s for n, s in doc.subsets.items() if set(s.labels) <= keep}
    doc.contracts = [c for c in doc.contracts if c.labels() <= keep]


def _merge_import(doc: PipelineDoc, imported: PipelineDoc, source: str, key: str, own: set[str]) -> None:
    """Add an imported document; ``own`` are the importing file's parameter names (those may differ)."""
    where = f"{source}: {key}"
    for label, task in imported.tasks.items():
        if label in doc.tasks:
            raise PipelineError(
                f"{where}: task label {label!r} is declared by both {doc.tasks[label].source} and "
                f"{task.source}; labels must be unique among imported pipelines"
            )
        doc.tasks[label] = task
    for name, subset in imported.subsets.items():
        if name in doc.subsets:
            raise PipelineError(
                f"{where}: subset {name!r} is defined by both {doc.subsets[name].source} and {subset.source}"
            )
        doc.subsets[name] = subset
    for name, value in imported.parameters.items():
        if name in doc.parameters and doc.parameters[name] != value and name not in own:
            raise PipelineError(
                f"{where}: parameter {name!r} has different values in two imported pipelines "
                f"({doc.parameters[name]!r}, {value!r}); set it in {source}'s own 'parameters'"
            )
        doc.parameters[name] = value
    if imported.instrument:
        if doc.instrument and doc.instrument != imported.instrument:
            raise PipelineError(
                f"{where}: imported pipelines name different instruments ({doc.instrument}, "
                f"{imported.instrument}); set 'instrument' in {source}"
            )
        doc.instrument = imported.instrument
    doc.contracts.extend(imported.contracts)
    doc.python_path = _dedup([*doc.python_path, *imported.python_path])
    if not doc.description:
        doc.description = imported.description


def _merge_tasks(doc: PipelineDoc, value: Any, source: str, *, must_have_tasks: bool) -> None:
    if value is None and not must_have_tasks:
        return
    if not isinstance(value, Mapping) or (must_have_tasks and not value):
        raise PipelineError(f"{source}: 'tasks' must be a non-empty mapping of label -> task")
    for raw_label, spec in value.items():
        label = str(raw_label)
        where = f"{source}: tasks.{label}"
        if isinstance(spec, str):
            spec = {"class": spec}
        if not isinstance(spec, Mapping):
            raise PipelineError(f"{where}: must be a class path or a mapping with 'class' and 'config'")
        unknown = set(map(str, spec)) - set(_TASK_KEYS)
        if unknown:
            raise PipelineError(f"{where}: unknown key(s) {_names(unknown)}; use 'class' and 'config'")
        blocks = [ConfigBlock(b, source) for b in _config_blocks(spec.get("config"), where)]
        existing = doc.tasks.get(label)
        class_path = spec.get("class")
        if class_path is None and existing is not None:
            class_path = existing.class_path  # extends the imported declaration
        if not isinstance(class_path, str) or not class_path.strip():
            raise PipelineError(f"{where}: 'class' (a dotted path to a PipelineTask) is required")
        class_path = class_path.strip()
        if existing is not None and existing.class_path == class_path:
            existing.configs.extend(blocks)
        else:
            doc.tasks[label] = TaskDecl(label, class_path, blocks, source)


def _config_blocks(value: Any, where: str) -> list[dict[str, Any]]:
    """A task's ``config``: one mapping, or a list of mappings applied in order (as LSST allows)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    blocks = []
    for i, item in enumerate(items):
        key = f"{where}.config" + (f"[{i}]" if isinstance(value, list) else "")
        if not isinstance(item, Mapping):
            raise PipelineError(f"{key}: must be a mapping of field -> value")
        block = {str(k): v for k, v in item.items()}
        if "python" in block:
            example = _declarative_example(block["python"])
            raise PipelineError(
                f"{key}.python: executable configuration is not supported; set the fields as YAML "
                f"values instead: config: {{{example}}}"
            )
        if "file" in block:
            raise PipelineError(
                f"{key}.file: config override files are Python and are not supported; put the field "
                "values in this 'config' mapping"
            )
        if "dataId" in block:
            raise PipelineError(f"{key}.dataId: per-data-ID config blocks are not supported")
        blocks.append(block)
    return blocks


def _declarative_example(python: Any) -> str:
    """Simple ``config.a.b = value`` lines of a refused ``python:`` block as a YAML flow mapping body."""
    lines = []
    for line in str(python).splitlines():
        target, sep, rhs = line.partition("=")
        target = target.strip()
        if (
            sep
            and target.startswith("config.")
            and "=" not in rhs[:1]
            and target[7:].replace(".", "").isidentifier()
        ):
            lines.append(f"{target[7:]}: {rhs.strip()}")
    return ", ".join(lines) or "fieldName: value"


def _subsets(value: Any, source: str) -> dict[str, Subset]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineError(f"{source}: subsets: expected a mapping of subset name -> labels")
    out = {}
    for raw_name, spec in value.items():
        name = str(raw_name)
        key = f"subsets.{name}"
        description = ""
        if isinstance(spec, Mapping):
            unknown = set(map(str, spec)) - {"subset", "description"}
            if unknown:
                raise PipelineError(
                    f"{source}: {key}: unknown key(s) {_names(unknown)}; use subset, description"
                )
            description = _string(spec.get("description"), source, f"{key}.description") or ""
            spec = spec.get("subset")
            key += ".subset"
        labels = _label_list(spec, source, key) if spec is not None else []
        if not labels:
            raise PipelineError(f"{source}: {key}: a subset needs at least one task label")
        out[name] = Subset(name, tuple(labels), description, source)
    return out


def _check_subsets(doc: PipelineDoc) -> None:
    for name, subset in doc.subsets.items():
        if name in doc.tasks:
            raise PipelineError(f"{subset.source}: subsets.{name}: the name is also a task label")
        unknown = [label for label in subset.labels if label not in doc.tasks]
        if unknown:
            raise PipelineError(
                f"{subset.source}: subsets.{name}: unknown task label(s) {', '.join(unknown)} "
                f"(labels: {_names(doc.tasks)})"
            )


def _contract(item: Any, where: str) -> Contract:
    msg = None
    if isinstance(item, Mapping):
        unknown = set(map(str, item)) - {"contract", "msg"}
        if unknown:
            raise PipelineError(f"{where}: unknown key(s) {_names(unknown)}; use contract, msg")
        msg = item.get("msg")
        if msg is not None and not isinstance(msg, str):
            raise PipelineError(f"{where}.msg: expected a string")
        item = item.get("contract")
    if not isinstance(item, str) or not item.strip():
        raise PipelineError(
            f"{where}: a contract is an expression string (or a mapping with 'contract' and 'msg')"
        )
    return Contract.parse(item, msg, where)


def substitute_parameters(value: Any, parameters: Mapping[str, Any], where: str) -> Any:
    """``value`` with every ``parameters.NAME`` (a whole value, list item or mapping value) replaced.

    An undefined name is a PipelineError saying ``where`` (file and key) it was written.
    """
    if isinstance(value, str) and value.startswith(_PARAMETER_PREFIX):
        name = value[len(_PARAMETER_PREFIX) :]
        if name not in parameters:
            raise PipelineError(
                f"{where}: parameter {name!r} is not defined (parameters: {_names(parameters) or 'none'})"
            )
        return parameters[name]
    if isinstance(value, list | tuple):
        return [substitute_parameters(v, parameters, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: substitute_parameters(v, parameters, f"{where}.{k}") for k, v in value.items()}
    return value


def _check_parameters(doc: PipelineDoc) -> None:
    """Every ``parameters.NAME`` in every config block names a parameter, checked once all imports
    are merged (the outermost file's parameters win); the blocks keep the references, which
    :class:`~quantumgraph.Pipeline` substitutes (and re-substitutes when parameters change)."""
    for task in doc.tasks.values():
        for block in task.configs:
            for key, value in block.values.items():
                substitute_parameters(
                    value, doc.parameters, f"{block.source}: tasks.{task.label}.config.{key}"
                )

"""Task configuration: typed fields declared as class annotations, overridden from pipeline YAML.

A task author writes::

    class Config(PipelineTask.Config):
        offset: float = 1.0

and the pipeline YAML's ``config:`` block overrides ``offset``.  Unknown names and values of the
wrong type are refused when the pipeline is loaded, long before any batch job starts.  Every
config also carries ``connections``: renames of connection dataset types
(``connections.raw: otherName``).
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

from ._exceptions import PipelineError

_SIMPLE_TYPES: tuple[type, ...] = (bool, int, float, str)


def _check_value(owner: str, name: str, annotation: Any, value: Any) -> Any:
    """Return ``value`` coerced to ``annotation`` where that is lossless, else raise PipelineError."""
    if annotation is Any or annotation is None:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in _SIMPLE_TYPES:
        if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
            return value
        raise PipelineError(
            f"{owner}: config field {name!r} must be {annotation.__name__}, got {value!r} "
            f"({type(value).__name__})"
        )
    origin = typing.get_origin(annotation)
    if origin in (list, tuple) and isinstance(value, list | tuple):
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        items = [_check_value(owner, f"{name}[{i}]", item_type, v) for i, v in enumerate(value)]
        return list(items) if origin is list else tuple(items)
    if origin is dict and isinstance(value, Mapping):
        return dict(value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for option in typing.get_args(annotation):
            if option is type(None) and value is None:
                return None
            try:
                return _check_value(owner, name, option, value)
            except PipelineError:
                continue
        raise PipelineError(f"{owner}: config field {name!r} cannot take {value!r}")
    return value


def _resolve_annotation(annotation: Any, namespace: dict[str, Any]) -> Any:
    """Evaluate a string annotation (``from __future__ import annotations``) in its module.

    An annotation that cannot be evaluated accepts any value rather than refusing the class.
    """
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, {"typing": typing, **namespace})  # noqa: S307 - a class annotation, not input
    except Exception:
        return Any


class TaskConfig:
    """Base of every task's ``Config``; fields are the annotated class attributes."""

    _fields: ClassVar[dict[str, Any]] = {}
    connections: dict[str, str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass is object or klass is TaskConfig or "__annotations__" not in klass.__dict__:
                continue
            module = sys.modules.get(klass.__module__)
            namespace = dict(vars(module)) if module else {}
            for fname, annotation in klass.__dict__["__annotations__"].items():
                if fname.startswith("_") or fname == "connections":
                    continue
                resolved = _resolve_annotation(annotation, namespace)
                if resolved is ClassVar or typing.get_origin(resolved) is ClassVar:
                    continue
                fields[fname] = resolved
        cls._fields = fields

    def __init__(self, **values: Any) -> None:
        owner = type(self).__qualname__
        connections = values.pop("connections", None) or {}
        if not isinstance(connections, Mapping):
            raise PipelineError(f"{owner}: 'connections' must map connection names to dataset type names")
        self.connections = {str(k): str(v) for k, v in connections.items()}
        for name, annotation in self._fields.items():
            if name in values:
                setattr(self, name, _check_value(owner, name, annotation, values.pop(name)))
            elif hasattr(type(self), name):
                default = getattr(type(self), name)
                setattr(self, name, list(default) if isinstance(default, list) else default)
            else:
                raise PipelineError(f"{owner}: config field {name!r} has no default and was not given")
        if values:
            raise PipelineError(
                f"{owner}: unknown config field(s) {', '.join(sorted(values))}; "
                f"known fields: {', '.join(sorted(self._fields)) or '(none)'}, connections"
            )

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any]) -> TaskConfig:
        """Build a config from pipeline-YAML overrides; ``connections.x: y`` keys are folded in."""
        values: dict[str, Any] = {}
        connections: dict[str, Any] = {}
        for key, value in overrides.items():
            if key.startswith("connections."):
                connections[key.split(".", 1)[1]] = value
            elif key == "connections":
                if not isinstance(value, Mapping):
                    raise PipelineError(f"{cls.__qualname__}: 'connections' must be a mapping")
                connections.update(value)
            else:
                values[key] = value
        return cls(**values, connections=connections)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, suitable for the graph header and for re-creating this config."""
        out = {name: getattr(self, name) for name in self._fields}
        out["connections"] = dict(self.connections)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({self.to_dict()!r})"

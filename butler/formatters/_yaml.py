"""YAML files for dict-like datasets (StructuredDataDict, TaskConfig).

Only the *safe* loader and dumper are ever used: a dataset file is data written by one job and
read by another, and an unsafe load would let a file run code in every job that reads it.  The
LibYAML (C) versions are used when PyYAML was built with them; they are several times faster,
which matters at thousands of small puts per second.
"""

from __future__ import annotations

from typing import Any

import yaml

from .._exceptions import DatastoreError, StorageClassError
from ._base import Formatter, StrPath

__all__ = ["YamlFormatter"]

_BaseDumper: type[yaml.SafeDumper]
_Loader: type[yaml.SafeLoader]
try:
    _BaseDumper = yaml.CSafeDumper  # type: ignore[assignment]
    _Loader = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # PyYAML without LibYAML
    _BaseDumper = yaml.SafeDumper
    _Loader = yaml.SafeLoader


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    """Safe dumper that also writes tuples, as plain sequences.

    Task configs commonly hold tuples; the safe dumper refuses them, and the unsafe one would tag
    them ``!!python/tuple``, which a safe loader cannot read back.  They come back as lists.
    """


def _represent_tuple(dumper: yaml.SafeDumper, data: tuple[Any, ...]) -> yaml.Node:
    return dumper.represent_list(list(data))


_Dumper.add_representer(tuple, _represent_tuple)


class YamlFormatter(Formatter):
    """Plain YAML, block style, keys in insertion order."""

    name = "yaml"
    extension = ".yaml"
    accepted_suffixes = (".yml",)
    pytypes = frozenset({"dict", "object"})

    def write(self, obj: object, path: StrPath) -> None:
        try:
            text = yaml.dump(
                obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
            )
        except yaml.YAMLError as exc:
            raise StorageClassError(f"cannot write {type(obj).__name__} as YAML: {exc}") from exc
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)

    def read(self, path: StrPath) -> object:
        with open(path, "rb") as stream:
            data = stream.read()
        try:
            return yaml.load(data, Loader=_Loader)  # noqa: S506 - a safe loader, see module docstring
        except yaml.YAMLError as exc:
            raise DatastoreError(f"{path} is not valid YAML: {exc}") from exc

"""Storage classes: the Python type a dataset is handed to and from task code as.

A dataset type names a storage class; the storage class says which Python type its objects must
have and which formatter turns them into bytes by default.  Keeping this separate from the
formatter lets the same kind of object (a ``dict``) be stored in different ways, and lets a put
be refused *before* anything is written when task code hands over the wrong kind of object.

This module is on the batch-job import path, so it must not import numpy: an object can only be
a ``numpy.ndarray`` if numpy has already been imported by whoever built it, which is checked
through ``sys.modules`` instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from ._exceptions import StorageClassError

__all__ = [
    "StorageClass",
    "check_object",
    "get_storage_class",
    "known_storage_classes",
    "register_storage_class",
]


def _is_dict(obj: object) -> bool:
    return isinstance(obj, dict)


def _is_list(obj: object) -> bool:
    return isinstance(obj, list)


def _is_ndarray(obj: object) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def _is_anything(obj: object) -> bool:
    # Whether a value is JSON-able is only known by serialising it; the formatter reports that.
    return True


#: Python type name -> test of an object; the names are what ``StorageClass.pytype_name`` may be.
_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "dict": _is_dict,
    "list": _is_list,
    "numpy.ndarray": _is_ndarray,
    "object": _is_anything,
}


@dataclass(frozen=True, slots=True)
class StorageClass:
    """A named in-memory type for datasets and the formatter used for it by default.

    ``pytype_name`` is a type name rather than a type object so that declaring ``NumpyArray``
    never imports numpy.  It must be one of the names :func:`check_object` knows how to test
    (``dict``, ``list``, ``numpy.ndarray``, ``object``).
    """

    name: str
    pytype_name: str
    default_formatter: str

    def __post_init__(self) -> None:
        if self.pytype_name not in _TYPE_CHECKS:
            raise StorageClassError(
                f"storage class {self.name}: unsupported Python type {self.pytype_name!r}; "
                f"supported: {', '.join(_TYPE_CHECKS)}"
            )

    def is_instance(self, obj: object) -> bool:
        """Whether ``obj`` has the Python type this storage class holds."""
        return _TYPE_CHECKS[self.pytype_name](obj)


_KNOWN: dict[str, StorageClass] = {}


def register_storage_class(storage_class: StorageClass) -> None:
    """Add a storage class; re-registering an identical definition is harmless, a different one is not."""
    existing = _KNOWN.get(storage_class.name)
    if existing is not None and existing != storage_class:
        raise StorageClassError(
            f"storage class {storage_class.name} is already defined as {existing}, not {storage_class}"
        )
    _KNOWN[storage_class.name] = storage_class


for _sc in (
    StorageClass("StructuredDataDict", "dict", "yaml"),
    StorageClass("Json", "object", "json"),
    StorageClass("NumpyArray", "numpy.ndarray", "npy"),
    StorageClass("TaskConfig", "dict", "yaml"),
    # Provenance written by every quantum and run (quantumgraph's {label}_log, {label}_metadata
    # and packages datasets); the names are LSST's, so its users recognise them.
    StorageClass("ButlerLogRecords", "list", "jsonl"),
    StorageClass("TaskMetadata", "dict", "json"),
    StorageClass("Packages", "dict", "json"),
):
    register_storage_class(_sc)


def known_storage_classes() -> tuple[str, ...]:
    """Names of all registered storage classes, sorted."""
    return tuple(sorted(_KNOWN))


def get_storage_class(name: str) -> StorageClass:
    """Return the storage class called ``name``; an unknown name is an error listing the known ones."""
    try:
        return _KNOWN[name]
    except KeyError:
        raise StorageClassError(
            f"unknown storage class {name!r}; known storage classes: {', '.join(known_storage_classes())}"
        ) from None


def check_object(storage_class: StorageClass | str, obj: object, dataset_type: str | None = None) -> None:
    """Raise StorageClassError unless ``obj`` is of the Python type ``storage_class`` holds.

    ``dataset_type`` (a name or any description of the dataset) is put in the message, because
    the person reading it usually knows their dataset types better than storage classes.
    """
    sc = get_storage_class(storage_class) if isinstance(storage_class, str) else storage_class
    if sc.is_instance(obj):
        return
    what = f"storage class {sc.name}"
    if dataset_type:
        what = f"dataset type {dataset_type} ({what})"
    got = type(obj)
    got_name = got.__qualname__ if got.__module__ == "builtins" else f"{got.__module__}.{got.__qualname__}"
    raise StorageClassError(f"{what} holds {sc.pytype_name} objects, but got a {got_name}")

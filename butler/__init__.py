"""skybatch's data butler: find datasets by meaning, read and write them as Python objects.

The light names (errors, dimensions, dataset types and references) are imported eagerly; the
ones that pull in sqlalchemy or the datastore (``Butler``, ``Registry``, ``QuantumBackedButler``
...) are imported on first use through a module ``__getattr__``, so ``import butler`` stays cheap
for batch jobs that never open a database.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._collection_names import check_collection_name
from ._dataset_type import DatasetRef, DatasetType
from ._dimensions import DataCoordinate, DataIdValue, Dimension, DimensionUniverse
from ._exceptions import (
    ButlerError,
    CollectionTypeError,
    ConflictingDefinitionError,
    DatasetFileCorruptError,
    DatasetFileExistsError,
    DatasetFileMissingError,
    DatasetNotFoundError,
    DatastoreError,
    DatastoreFullError,
    DatastorePathError,
    DimensionError,
    DimensionRecordError,
    DimensionValueError,
    InvalidDataIdError,
    InvalidNameError,
    MissingCollectionError,
    MissingDatasetTypeError,
    QueryError,
    QuerySyntaxError,
    RepositoryError,
    StorageClassError,
    UnknownDimensionError,
)
from ._logging import TRACE, VERBOSE
from ._stored_file_info import StoredFileInfo

if TYPE_CHECKING:
    from ._butler import Butler
    from ._gcpause import gc_paused
    from ._limited_butler import LimitedButler, QuantumBackedButler
    from ._storage_class import StorageClass, get_storage_class
    from .datastore import FileDatastore
    from .registry import CollectionType, Registry

#: Public name -> module it is imported from on first access.
_LAZY: dict[str, str] = {
    "Butler": "butler._butler",
    "Registry": "butler.registry",
    "CollectionType": "butler.registry",
    "QuantumBackedButler": "butler._limited_butler",
    "LimitedButler": "butler._limited_butler",
    "FileDatastore": "butler.datastore",
    "StorageClass": "butler._storage_class",
    "get_storage_class": "butler._storage_class",
    "gc_paused": "butler._gcpause",
}

__all__ = [
    "Butler",
    "ButlerError",
    "CollectionType",
    "CollectionTypeError",
    "ConflictingDefinitionError",
    "DataCoordinate",
    "DataIdValue",
    "DatasetFileCorruptError",
    "DatasetFileExistsError",
    "DatasetFileMissingError",
    "DatasetNotFoundError",
    "DatasetRef",
    "DatasetType",
    "DatastoreError",
    "DatastoreFullError",
    "DatastorePathError",
    "Dimension",
    "DimensionError",
    "DimensionRecordError",
    "DimensionUniverse",
    "DimensionValueError",
    "FileDatastore",
    "InvalidDataIdError",
    "InvalidNameError",
    "LimitedButler",
    "MissingCollectionError",
    "MissingDatasetTypeError",
    "QuantumBackedButler",
    "QueryError",
    "QuerySyntaxError",
    "Registry",
    "RepositoryError",
    "StorageClass",
    "StorageClassError",
    "StoredFileInfo",
    "TRACE",
    "UnknownDimensionError",
    "VERBOSE",
    "check_collection_name",
    "gc_paused",
    "get_storage_class",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

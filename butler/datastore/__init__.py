"""Datastores: where dataset bytes live (see :class:`FileDatastore`).

:class:`DatastoreRecordStore` needs sqlalchemy, which batch jobs must never import, so it is
lifted lazily: ``from butler.datastore import FileDatastore`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._file_datastore import DEFAULT_TEMPLATE, STALE_TEMP_SECONDS, TEMP_PREFIX, FileDatastore, TransferMode
from ._file_template import FileTemplate

if TYPE_CHECKING:
    from ._record_store import RECORDS_TABLE, DatastoreRecordStore, make_records_table

__all__ = [
    "DEFAULT_TEMPLATE",
    "RECORDS_TABLE",
    "STALE_TEMP_SECONDS",
    "TEMP_PREFIX",
    "DatastoreRecordStore",
    "FileDatastore",
    "FileTemplate",
    "TransferMode",
    "make_records_table",
]

_LAZY = frozenset({"DatastoreRecordStore", "RECORDS_TABLE", "make_records_table"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _record_store

        return getattr(_record_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The formatter interface: how one kind of object becomes one file and back.

A formatter only ever sees a path it is told to write or read.  Where that path is, and making
the write atomic (temporary name, then rename), is the datastore's job, so a formatter can be
written without knowing anything about repositories.

Formatters translate their library's errors at this boundary: an object the library cannot
serialise becomes :class:`~butler._exceptions.StorageClassError`, a file it cannot parse becomes
:class:`~butler._exceptions.DatastoreError`; a missing file stays ``FileNotFoundError`` so the
datastore can say which dataset's file is gone.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import ClassVar

__all__ = ["Formatter", "StrPath"]

#: Formatters accept plain strings as well as ``Path`` objects; the datastore passes strings
#: because building a ``Path`` per write is measurable at thousands of writes per second.
StrPath = str | os.PathLike[str]


class Formatter(ABC):
    """Write and read one kind of object as one file.

    Instances hold no state, so one instance per name is shared (see ``get_formatter``).
    """

    name: ClassVar[str]
    """Short name stored in datastore records (``yaml``, ``json``, ``npy``)."""

    extension: ClassVar[str]
    """File name extension, with its dot, that the datastore appends to predicted paths."""

    accepted_suffixes: ClassVar[tuple[str, ...]] = ()
    """Suffixes of files this formatter can read when they are ingested (``extension`` always is)."""

    pytypes: ClassVar[frozenset[str]] = frozenset()
    """Storage-class Python types (``StorageClass.pytype_name``) whose objects this formatter can
    read back faithfully, so it may replace a storage class's default one (``butler ingest-files
    --formatter``).  Empty: only where it is the default."""

    @abstractmethod
    def write(self, obj: object, path: StrPath) -> None:
        """Write ``obj`` to ``path``, replacing whatever is there."""

    @abstractmethod
    def read(self, path: StrPath) -> object:
        """Read the object stored at ``path``."""

    @classmethod
    def can_read_suffix(cls, suffix: str) -> bool:
        """Whether a file whose name ends in ``suffix`` (e.g. ``.yml``) is in this formatter's format."""
        suffix = suffix.lower()
        return suffix == cls.extension or suffix in cls.accepted_suffixes

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

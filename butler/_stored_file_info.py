"""Datastore records: where a dataset's bytes are and how to read them.

Only the datastore writes or interprets these.  They travel inside QuantumGraph files so a batch
job can read its inputs without asking the registry.  Size and checksum let a reader tell a
damaged file (truncated, emptied, rewritten) from the one that was registered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredFileInfo:
    """Location and format of one dataset's file.

    ``path`` is relative to the datastore root unless it is absolute (files ingested with
    ``--transfer direct`` stay where they were).
    """

    dataset_id: uuid.UUID
    path: str
    formatter: str
    storage_class: str
    file_size: int = -1
    """Size in bytes when the file was written; -1 if unknown.  Every read compares it."""
    checksum: int | None = None
    """CRC-32 (``zlib.crc32``) of the file's bytes when it was written; None if unknown
    (records made before checksums existed).  Compared on read where the repository asks."""

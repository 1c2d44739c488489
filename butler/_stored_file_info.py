"""Datastore records: where a dataset's bytes are and how to read them.

Only the datastore writes or interprets these.  They travel inside QuantumGraph files so a batch
job can read its inputs without asking the registry.
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

"""Job-local datasets: intermediates handed from one quantum to the next in memory.

A batch job that runs several quanta (a cluster: ``isr`` then ``calibrate`` of one exposure and
detector) need not write an intermediate (``postISR``) to the datastore when nothing outside the
job will ever read it.  ``pipetask run-qbb --job-local postISR`` keeps those outputs in memory
for the job's later quanta instead; bps passes the option only when every reader is in the job.

Outputs of a job-local type that no later quantum of the same run reads are written as usual,
so the option never loses a dataset nobody in the job consumed.  Job-local datasets are never
registered: the merge job counts them as predicted but missing, like outputs of a failed quantum.

This module is on the batch job's start-up path: standard library only.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._model import Quantum

if TYPE_CHECKING:
    from butler import DatasetRef, LimitedButler


def plan_job_local(quanta: Iterable[Quantum], dataset_types: Iterable[str]) -> dict[uuid.UUID, int]:
    """Outputs to keep in memory: dataset ID -> how many later quanta of ``quanta`` read it.

    Only outputs of ``dataset_types`` read by at least one later quantum of the same sequence
    are kept; the rest are written.
    """
    wanted = set(dataset_types)
    produced: set[uuid.UUID] = set()
    reads: dict[uuid.UUID, int] = {}
    for quantum in quanta:
        for ref in quantum.input_refs():
            if ref.id in produced:
                reads[ref.id] = reads.get(ref.id, 0) + 1
        for ref in quantum.output_refs():
            if ref.dataset_type.name in wanted:
                produced.add(ref.id)
    return reads


class JobLocalStore:
    """The in-memory datasets of one job, freed as soon as their last reader has read them."""

    def __init__(self, plan: Mapping[uuid.UUID, int]) -> None:
        self._remaining = dict(plan)
        self._objects: dict[uuid.UUID, Any] = {}
        self.kept = 0
        """How many datasets were put here instead of the datastore."""

    def wants(self, ref: DatasetRef) -> bool:
        return ref.id in self._remaining

    def put(self, obj: Any, ref: DatasetRef) -> None:
        self._objects[ref.id] = obj
        self.kept += 1

    def has(self, ref: DatasetRef) -> bool:
        return ref.id in self._objects

    def get(self, ref: DatasetRef) -> Any:
        """A private copy for every reader but the last, which gets the object itself."""
        obj = self._objects[ref.id]
        left = self._remaining[ref.id] - 1
        self._remaining[ref.id] = left
        if left <= 0:
            del self._objects[ref.id]
            return obj
        return copy.deepcopy(obj)


class JobLocalButler:
    """A limited butler that sends the store's datasets to memory and the rest to ``base``."""

    def __init__(self, base: LimitedButler, store: JobLocalStore) -> None:
        self._base = base
        self._store = store

    def get(self, ref: DatasetRef) -> Any:
        if self._store.has(ref):
            return self._store.get(ref)
        return self._base.get(ref)

    def put(self, obj: Any, ref: DatasetRef, *, overwrite: bool | None = None) -> Any:
        if self._store.wants(ref):
            self._store.put(obj, ref)
            return None
        return self._base.put(obj, ref, overwrite=overwrite)

    def exists(self, ref: DatasetRef) -> bool:
        return self._store.has(ref) or self._base.exists(ref)

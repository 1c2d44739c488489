"""``--skip-existing-in``: which quanta already succeeded, judged by the metadata they wrote.

A quantum counts as done only if its ``{label}_metadata`` in the given collections says
``succeeded: true`` and every output it predicts (log and metadata included) is there too.  A
failed quantum wrote metadata saying so, and a quantum that never ran wrote none: both are planned
again, as is one whose output has since been removed.  What a workflow engine thought happened
does not matter here; only what the quanta recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from butler import DataCoordinate, DatasetRef, DatasetType, MissingCollectionError

from ._exceptions import GraphBuildError
from ._provenance import metadata_dataset_type_name

if TYPE_CHECKING:
    from butler import Butler

    from ._pipeline_graph import PipelineGraph

_log = logging.getLogger(__name__)


class SucceededQuanta:
    """The quanta that succeeded in some collections, and their outputs there."""

    def __init__(self, butler: Butler, collections: Sequence[str], succeeded: dict[str, set[DataCoordinate]]):
        self._butler = butler
        self._collections = list(collections)
        self._succeeded = succeeded
        self._registered = {dt.name for dt in butler.registry.query_dataset_types()}
        self._existing: dict[str, dict[DataCoordinate, DatasetRef]] = {}
        self.skipped = 0
        """How many quanta :meth:`outputs_if_succeeded` has left out so far."""

    @classmethod
    def find(cls, butler: Butler, pgraph: PipelineGraph, collections: Sequence[str]) -> SucceededQuanta:
        """Read every task's metadata datasets in ``collections`` (find-first) for their success flag."""
        try:
            butler.registry.resolve_collections(list(collections))
        except MissingCollectionError as exc:
            raise GraphBuildError(f"--skip-existing-in: {exc}") from exc
        registered = {dt.name for dt in butler.registry.query_dataset_types()}
        succeeded: dict[str, set[DataCoordinate]] = {}
        for label in pgraph.task_order:
            name = metadata_dataset_type_name(label)
            done: set[DataCoordinate] = set()
            if name in registered:
                for ref in butler.registry.query_datasets(name, list(collections), find_first=True):
                    meta = butler.get(ref)
                    if isinstance(meta, dict) and meta.get("succeeded") is True:
                        done.add(ref.data_id)
            succeeded[label] = done
        return cls(butler, collections, succeeded)

    def _outputs_of_type(self, dt: DatasetType) -> dict[DataCoordinate, DatasetRef]:
        found = self._existing.get(dt.name)
        if found is None:
            found = {}
            if dt.name in self._registered:
                refs = self._butler.registry.query_datasets(dt.name, self._collections, find_first=True)
                found = {ref.data_id: ref for ref in refs}
            self._existing[dt.name] = found
        return found

    def outputs_if_succeeded(
        self, label: str, data_id: DataCoordinate, outputs: Sequence[tuple[str, DatasetType]]
    ) -> list[DatasetRef] | None:
        """The existing outputs of quantum (``label``, ``data_id``) if it succeeded, else None."""
        if data_id not in self._succeeded.get(label, ()):
            return None
        refs = []
        for _, dt in outputs:
            ref = self._outputs_of_type(dt).get(data_id.subset(dt.dimensions))
            if ref is None:
                _log.info(
                    "task %s {%s} succeeded but its %s is gone: running it again", label, data_id, dt.name
                )
                return None
            refs.append(ref)
        self.skipped += 1
        return refs

"""Dataset types and dataset references: what a dataset *is*, never where its bytes live."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from ._dimensions import DataCoordinate, DimensionUniverse
from ._exceptions import ConflictingDefinitionError, InvalidNameError

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class DatasetType:
    """A named kind of dataset: its dimensions (the keys of its data IDs) and storage class.

    ``dimensions`` is always the sorted required closure, so ``("exposure", "detector")`` and
    ``("instrument", "detector", "exposure")`` define the same dataset type.
    """

    name: str
    dimensions: tuple[str, ...]
    storage_class: str

    @classmethod
    def build(
        cls,
        name: str,
        dimensions: tuple[str, ...] | list[str],
        storage_class: str,
        universe: DimensionUniverse,
    ) -> DatasetType:
        """Validate the name and dimensions, normalising the dimensions to the required closure."""
        if not _NAME_RE.match(name):
            raise InvalidNameError(
                f"dataset type name {name!r} is invalid: use letters, digits and underscores, "
                "not starting with a digit"
            )
        return cls(name, universe.required_closure(dimensions), storage_class)

    def check_compatible(self, other: DatasetType) -> None:
        """Raise ConflictingDefinitionError if ``other`` has the same name but a different definition."""
        if self != other:
            raise ConflictingDefinitionError(
                f"dataset type {self.name} is defined as (dimensions: {', '.join(self.dimensions)}; "
                f"storage class: {self.storage_class}) but was given as (dimensions: "
                f"{', '.join(other.dimensions)}; storage class: {other.storage_class})"
            )


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """One dataset: (dataset type, data ID, RUN collection) plus the UUID assigned to it once.

    Registry and datastore meet only through this reference.
    """

    id: uuid.UUID
    dataset_type: DatasetType
    data_id: DataCoordinate
    run: str

    def __str__(self) -> str:
        return f"{self.dataset_type.name}@{{{self.data_id}}} [{self.run}] ({self.id})"

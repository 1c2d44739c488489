"""Dataset type registration and lookup, with an in-memory cache of name -> (id, definition).

Dataset types are never removed or redefined, so once one has been seen committed its id can be
cached for the life of the registry object; a cache miss simply asks the database again (another
process may have registered the type since).
"""

from __future__ import annotations

import fnmatch

import sqlalchemy as sa

from .._dataset_type import DatasetType
from .._dimensions import DimensionUniverse
from .._exceptions import ConflictingDefinitionError, MissingDatasetTypeError
from ._database import Database


class DatasetTypeManager:
    """Registers dataset types and maps names and ids to definitions."""

    def __init__(self, db: Database, universe: DimensionUniverse, table: sa.Table) -> None:
        self._db = db
        self._universe = universe
        self._table = table
        self._by_name: dict[str, tuple[int, DatasetType]] = {}
        self._by_id: dict[int, DatasetType] = {}
        self._select_by_name = sa.select(table).where(table.c.name == sa.bindparam("name"))

    def _row_to_type(self, row: sa.RowMapping) -> DatasetType:
        dims = tuple(row["dimensions"].split()) if row["dimensions"] else ()
        return DatasetType(row["name"], dims, row["storage_class"])

    def _remember(self, dataset_type_id: int, dataset_type: DatasetType) -> None:
        def update() -> None:
            self._by_name[dataset_type.name] = (dataset_type_id, dataset_type)
            self._by_id[dataset_type_id] = dataset_type

        self._db.on_commit(update)

    def normalize(self, dataset_type: DatasetType) -> DatasetType:
        """Validate the name and bring the dimensions to their sorted required closure."""
        return DatasetType.build(
            dataset_type.name, dataset_type.dimensions, dataset_type.storage_class, self._universe
        )

    def register(self, dataset_type: DatasetType) -> bool:
        """Register ``dataset_type``; False if an identical one exists, error if it differs."""
        dataset_type = self.normalize(dataset_type)
        with self._db.transaction() as conn:
            existing = self._lookup(conn, dataset_type.name)
            if existing is not None:
                existing[1].check_compatible(dataset_type)
                return False
            # Another process may register the same type at the same moment: skip a conflicting
            # row (waiting, on PostgreSQL, for the other transaction) and compare what is there.
            t = self._table
            inserted = conn.execute(
                self._db.insert_ignore(t, ["name"])
                .values(
                    name=dataset_type.name,
                    dimensions=" ".join(dataset_type.dimensions),
                    storage_class=dataset_type.storage_class,
                )
                .returning(t.c.id)
            ).first()
            row = conn.execute(self._select_by_name, {"name": dataset_type.name}).mappings().first()
            if row is None:  # pragma: no cover - the row was just inserted or found conflicting
                raise ConflictingDefinitionError(
                    f"dataset type {dataset_type.name} vanished while registered"
                )
            stored = self._row_to_type(row)
            stored.check_compatible(dataset_type)
            self._remember(int(row["id"]), stored)
            if inserted is None:
                return False
        return True

    def _lookup(self, conn: sa.Connection, name: str) -> tuple[int, DatasetType] | None:
        cached = self._by_name.get(name)
        if cached is not None:
            return cached
        row = conn.execute(self._select_by_name, {"name": name}).mappings().first()
        if row is None:
            return None
        found = (int(row["id"]), self._row_to_type(row))
        self._remember(*found)
        return found

    def cached(self, name: str) -> DatasetType | None:
        """The definition if already known to this process (no query)."""
        found = self._by_name.get(name)
        return None if found is None else found[1]

    def find(self, conn: sa.Connection, name: str) -> tuple[int, DatasetType]:
        """(id, definition) of a registered dataset type, or MissingDatasetTypeError."""
        found = self._lookup(conn, name)
        if found is None:
            raise MissingDatasetTypeError(f"dataset type {name!r} is not registered")
        return found

    def resolve(self, conn: sa.Connection, dataset_type: str | DatasetType) -> tuple[int, DatasetType]:
        """Look up by name, checking a given definition against the registered one."""
        if isinstance(dataset_type, str):
            return self.find(conn, dataset_type)
        found = self.find(conn, dataset_type.name)
        if found[1] != dataset_type:
            found[1].check_compatible(self.normalize(dataset_type))
        return found

    def by_id(self, conn: sa.Connection, dataset_type_id: int) -> DatasetType:
        cached = self._by_id.get(dataset_type_id)
        if cached is not None:
            return cached
        row = (
            conn.execute(sa.select(self._table).where(self._table.c.id == dataset_type_id)).mappings().first()
        )
        if row is None:
            raise MissingDatasetTypeError(f"no dataset type with id {dataset_type_id}")
        dataset_type = self._row_to_type(row)
        self._remember(dataset_type_id, dataset_type)
        return dataset_type

    def query(self, pattern: str | None = None) -> list[DatasetType]:
        """All registered dataset types whose names match the glob ``pattern``, sorted by name."""
        with self._db.connection() as conn:
            rows = conn.execute(sa.select(self._table).order_by(self._table.c.name)).mappings().all()
        types = [self._row_to_type(row) for row in rows]
        if pattern is not None:
            types = [t for t in types if fnmatch.fnmatchcase(t.name, pattern)]
        return types

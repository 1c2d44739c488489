"""The Registry: what datasets exist, under which data IDs, in which collections.

A thin facade over the managers (dimension records, dataset types, collections, datasets) that
share one :class:`Database`.  The registry never learns where bytes are; that is the datastore's
business.  All writes go through named methods inside ``transaction()``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
import yaml

from .._dataset_type import DatasetRef, DatasetType
from .._dimensions import DataCoordinate, DataIdValue, DimensionUniverse
from .._exceptions import InvalidDataIdError, RepositoryError
from ._collections import CollectionManager
from ._database import Database, make_engine
from ._dataset_types import DatasetTypeManager
from ._datasets import DatasetManager
from ._dimension_records import DimensionRecordManager
from ._tables import RegistryTables, build_registry_tables

#: Major.minor of the registry schema; a registry refuses to open another major version.
SCHEMA_VERSION = "1.1"
"""1.1 added ``file_datastore_records.checksum`` (the Butler adds it to 1.0 repositories on open)."""


class Registry:
    """Registry over a SQLite or PostgreSQL database (SQLAlchemy Core)."""

    def __init__(
        self,
        db: Database,
        universe: DimensionUniverse,
        tables: RegistryTables,
        schema_version: str = SCHEMA_VERSION,
    ) -> None:
        self._db = db
        self.schema_version = schema_version
        """The schema version stored in the database (``major.minor``)."""
        self._universe = universe
        self._tables = tables
        self._records = DimensionRecordManager(db, universe, tables.dimensions)
        self._types = DatasetTypeManager(db, universe, tables.dataset_type)
        self._collections = CollectionManager(db, tables.collection, tables.collection_chain)
        self._datasets = DatasetManager(
            db, universe, tables.dataset, self._types, self._collections, self._records
        )

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def create(cls, db_url: str, universe: DimensionUniverse) -> Registry:
        """Create the schema in an empty database and store ``universe`` in it."""
        engine = make_engine(db_url)
        try:
            if sa.inspect(engine).has_table("butler_attributes"):
                raise RepositoryError(f"a registry already exists at {db_url}")
            tables = build_registry_tables(universe)
            db = Database(engine)
            with db.transaction() as conn:
                tables.metadata.create_all(conn)
                conn.execute(
                    sa.insert(tables.attributes),
                    [
                        {"name": "schema_version", "value": SCHEMA_VERSION},
                        {
                            "name": "dimension_universe",
                            "value": yaml.safe_dump(universe.config, sort_keys=False),
                        },
                    ],
                )
        except sa.exc.DBAPIError as err:
            engine.dispose()
            raise RepositoryError(f"could not create a registry at {db_url}: {err.orig}") from err
        except BaseException:
            engine.dispose()
            raise
        return cls(db, universe, tables)

    @classmethod
    def open(cls, db_url: str) -> Registry:
        """Open an existing registry, reading the dimension universe it was created with."""
        _check_sqlite_file_exists(db_url)
        engine = make_engine(db_url)
        try:
            attributes = _read_attributes(engine, db_url)
            version = attributes.get("schema_version", "")
            if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
                raise RepositoryError(
                    f"registry at {db_url} has schema version {version or 'unknown'}; "
                    f"this software reads version {SCHEMA_VERSION.split('.')[0]}.x"
                )
            text = attributes.get("dimension_universe")
            if not text:
                raise RepositoryError(f"registry at {db_url} has no stored dimension universe")
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~10x faster
            universe = DimensionUniverse(yaml.load(text, Loader=loader))
        except BaseException:
            engine.dispose()
            raise
        return cls(Database(engine), universe, build_registry_tables(universe), version)

    def close(self) -> None:
        """Release database connections."""
        self._db.dispose()

    # -- plumbing shared with the Butler and datastore -------------------------------------------

    @property
    def universe(self) -> DimensionUniverse:
        return self._universe

    @property
    def engine(self) -> sa.Engine:
        return self._db.engine

    @property
    def metadata(self) -> sa.MetaData:
        return self._tables.metadata

    @property
    def tables(self) -> RegistryTables:
        return self._tables

    @property
    def database(self) -> Database:
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction; nested use joins the outer one, so everything commits together."""
        with self._db.transaction() as conn:
            yield conn

    def lock_schema_version(self, conn: sa.Connection) -> str:
        """Re-read the stored schema version inside a write transaction, locking its row."""
        t = self._tables.attributes
        row = conn.execute(sa.select(t.c.value).where(t.c.name == "schema_version").with_for_update()).first()
        return "" if row is None else str(row[0])

    def set_schema_version(self, conn: sa.Connection, version: str) -> None:
        """Record an upgraded schema version (inside the transaction that did the upgrade)."""
        t = self._tables.attributes
        conn.execute(sa.update(t).where(t.c.name == "schema_version").values(value=version))
        self._db.on_commit(lambda: setattr(self, "schema_version", version))

    # -- dimension records ------------------------------------------------------------------------

    def insert_dimension_records(
        self, element: str, records: Iterable[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> int:
        """Validate and insert records of ``element``; returns the number inserted."""
        return self._records.insert(element, records, skip_existing=skip_existing)

    def insert_dimension_data(
        self, data: Mapping[str, Iterable[Mapping[str, Any]]], *, skip_existing: bool = False
    ) -> dict[str, int]:
        """Insert records of several elements in dependency order, all or nothing.

        ``data`` maps element names to lists of records (the layout of the YAML file read by
        ``butler insert-dimension-records``); returns the number inserted per element.
        """
        order = self._universe.sort(data)
        with self._db.transaction():
            return {el: self._records.insert(el, data[el], skip_existing=skip_existing) for el in order}

    def fetch_dimension_records(self, element: str) -> list[dict[str, Any]]:
        return self._records.fetch(element)

    def expand_data_id(
        self, data_id: Mapping[str, Any] | None, dimensions: Iterable[str], **kwargs: Any
    ) -> DataCoordinate:
        """Validate ``data_id`` for ``dimensions`` and check every value has a record.

        Values given for dimensions the data ID implies (``band`` for an exposure) must agree
        with the records; other extra keys are ignored.
        """
        merged: dict[str, Any] = dict(data_id or {})
        merged.update(kwargs)
        coord = self._universe.data_id(tuple(dimensions), merged)
        extra = [k for k in merged if k not in coord.dimensions]
        if not extra and self._records.all_known(coord):
            return coord
        with self._db.connection() as conn:
            self._records.check_data_id(conn, coord)
            if extra:
                implied = self._records.implied_values(conn, coord)
                for name in extra:
                    if name in implied and self._universe[name].coerce_key(merged[name]) != implied[name]:
                        raise InvalidDataIdError(
                            f"data ID {{{coord}}} has {name}={implied[name]} in its records, "
                            f"but {name}={merged[name]} was given"
                        )
        return coord

    def implied_values(self, data_id: Mapping[str, DataIdValue]) -> dict[str, DataIdValue]:
        """Values of all dimensions implied (transitively) by ``data_id``, from records."""
        with self._db.connection() as conn:
            return self._records.implied_values(conn, data_id)

    # -- dataset types --------------------------------------------------------------------------

    def register_dataset_type(self, dataset_type: DatasetType) -> bool:
        """Register; True if new, False if identical exists, ConflictingDefinitionError if different."""
        return self._types.register(dataset_type)

    def get_dataset_type(self, name: str) -> DatasetType:
        cached = self._types.cached(name)
        if cached is not None:
            return cached
        with self._db.connection() as conn:
            return self._types.find(conn, name)[1]

    def query_dataset_types(self, pattern: str | None = None) -> list[DatasetType]:
        return self._types.query(pattern)

    # -- collections ----------------------------------------------------------------------------

    def register_run(self, name: str, doc: str = "") -> bool:
        return self._collections.register_run(name, doc)

    def register_chain(self, name: str, children: list[str], *, prepend: bool = False) -> None:
        self._collections.register_chain(name, children, prepend=prepend)

    def update_chain(self, name: str, update: Callable[[list[str]], list[str]]) -> list[str]:
        """Set CHAINED ``name`` (created if new) to ``update(current children)`` under a lock.

        Safe against concurrent updates of the same chain from other processes: each sees the
        result of the previous one (see :meth:`CollectionManager.update_chain`).
        """
        return self._collections.update_chain(name, update)

    def get_collection_type(self, name: str) -> str:
        return self._collections.get_type(name).value

    def get_chain(self, name: str) -> list[str]:
        return self._collections.get_chain(name)

    def query_collections(self, pattern: str | None = None) -> list[tuple[str, str]]:
        return self._collections.query(pattern)

    def resolve_collections(self, names: str | Iterable[str]) -> list[str]:
        """Flatten collections (chains included) into RUN names in search order, without duplicates."""
        with self._db.connection() as conn:
            return [name for name, _ in self._collections.resolve(conn, names)]

    # -- datasets -------------------------------------------------------------------------------

    def insert_datasets(
        self,
        dataset_type: str | DatasetType,
        data_ids: Iterable[Mapping[str, Any]],
        run: str,
        ids: Iterable[uuid.UUID] | None = None,
    ) -> list[DatasetRef]:
        return self._datasets.insert(dataset_type, data_ids, run, ids)

    def import_datasets(self, refs: Iterable[DatasetRef]) -> list[DatasetRef]:
        return self._datasets.import_refs(refs)

    def find_dataset(
        self, dataset_type: str | DatasetType, data_id: Mapping[str, Any], collections: str | Iterable[str]
    ) -> DatasetRef | None:
        return self._datasets.find(dataset_type, data_id, collections)

    def query_datasets(
        self,
        dataset_type: str | DatasetType,
        collections: str | Iterable[str],
        where: str | None = None,
        data_id: Mapping[str, Any] | None = None,
        find_first: bool = True,
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[DatasetRef]:
        """Datasets of one type in ``collections``; ``order_by`` (``[-]dimension[.field]``) and
        ``limit`` are applied by the database (see ``butler query-datasets --order-by``)."""
        return self._datasets.query(dataset_type, collections, where, data_id, find_first, order_by, limit)

    def get_dataset(self, id: uuid.UUID) -> DatasetRef | None:
        return self._datasets.get(id)

    def remove_datasets(self, refs: Iterable[DatasetRef]) -> None:
        self._datasets.remove(refs)


def _read_attributes(engine: sa.Engine, db_url: str) -> dict[str, str]:
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("butler_attributes"):
                raise RepositoryError(f"no registry found at {db_url}")
            rows = conn.execute(sa.text("SELECT name, value FROM butler_attributes")).all()
    except sa.exc.DBAPIError as err:
        raise RepositoryError(f"cannot open registry at {db_url}: {err.orig}") from err
    return {str(name): str(value) for name, value in rows}


def _check_sqlite_file_exists(db_url: str) -> None:
    """Opening must never create an empty SQLite file where a repository was expected."""
    try:
        url = sa.engine.make_url(db_url)
    except sa.exc.ArgumentError as err:
        raise RepositoryError(f"invalid database URL {db_url!r}: {err}") from err
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not os.path.exists(url.database):
            raise RepositoryError(f"no registry found at {db_url} (file does not exist)")

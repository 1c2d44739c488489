"""Datastore records in the repository database (table ``file_datastore_records``).

This is the only datastore module that imports sqlalchemy, and nothing on the batch-job path
imports it: a job gets its records from the QuantumGraph file instead.  The Butler owns the
engine and the transaction; this class only knows the table.  It can be bound to

* an ``Engine`` -- each call runs in its own short transaction;
* a ``Connection`` -- calls run on it and the caller commits;
* a zero-argument callable returning a context manager that yields a ``Connection``, such as
  ``registry.transaction`` -- each call enters it, so a call made inside an outer
  ``registry.transaction()`` joins that transaction (the dataset row, the file and its record
  then commit or roll back together);

and every method also takes ``connection=`` to run on a specific connection.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import sqlalchemy

from .._exceptions import ConflictingDefinitionError
from .._stored_file_info import StoredFileInfo

__all__ = ["RECORDS_TABLE", "DatastoreRecordStore", "RecordStoreBind", "make_records_table"]

RECORDS_TABLE = "file_datastore_records"

RecordStoreBind = (
    sqlalchemy.Engine | sqlalchemy.Connection | Callable[[], AbstractContextManager[sqlalchemy.Connection]]
)

#: IDs per ``IN (...)`` clause: well under SQLite's bound-parameter limit on old builds (999).
_CHUNK = 500


def make_records_table(metadata: sqlalchemy.MetaData, *, dataset_fk: str | None = None) -> sqlalchemy.Table:
    """Define (or return the already defined) ``file_datastore_records`` table in ``metadata``.

    ``dataset_fk`` (e.g. ``"dataset.id"``) adds a foreign key to the registry's dataset table
    with ``ON DELETE CASCADE``, so removing a dataset row also removes its record; it is optional
    because the datastore must not assume the registry's table names.
    """
    existing = metadata.tables.get(RECORDS_TABLE)
    if existing is not None:
        return existing
    id_args: list[Any] = [sqlalchemy.ForeignKey(dataset_fk, ondelete="CASCADE")] if dataset_fk else []
    return sqlalchemy.Table(
        RECORDS_TABLE,
        metadata,
        sqlalchemy.Column("dataset_id", sqlalchemy.Uuid(as_uuid=True), *id_args, primary_key=True),
        sqlalchemy.Column("path", sqlalchemy.Text, nullable=False),
        sqlalchemy.Column("formatter", sqlalchemy.String(64), nullable=False),
        sqlalchemy.Column("storage_class", sqlalchemy.String(64), nullable=False),
        sqlalchemy.Column("file_size", sqlalchemy.BigInteger, nullable=False),
        # CRC-32 of the file as written; NULL for records from before schema 1.1.
        sqlalchemy.Column("checksum", sqlalchemy.BigInteger, nullable=True),
    )


def _row(info: StoredFileInfo) -> dict[str, Any]:
    return {
        "dataset_id": info.dataset_id,
        "path": info.path,
        "formatter": info.formatter,
        "storage_class": info.storage_class,
        "file_size": info.file_size,
        "checksum": info.checksum,
    }


def _chunks(ids: Iterable[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    chunk: list[uuid.UUID] = []
    for i in ids:
        chunk.append(i)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class DatastoreRecordStore:
    """Insert, fetch and delete :class:`StoredFileInfo` rows (see the module docstring for ``bind``)."""

    def __init__(
        self, metadata: sqlalchemy.MetaData, bind: RecordStoreBind, *, dataset_fk: str | None = None
    ) -> None:
        self.metadata = metadata
        self.table = make_records_table(metadata, dataset_fk=dataset_fk)
        self._bind = bind

    @contextmanager
    def _connect(self, connection: sqlalchemy.Connection | None) -> Iterator[sqlalchemy.Connection]:
        if connection is not None:
            yield connection
        elif isinstance(self._bind, sqlalchemy.Connection):
            yield self._bind
        elif isinstance(self._bind, sqlalchemy.Engine):
            with self._bind.begin() as conn:
                yield conn
        else:
            with self._bind() as conn:
                yield conn

    def create(self, *, connection: sqlalchemy.Connection | None = None) -> None:
        """Create the table if it does not exist yet."""
        with self._connect(connection) as conn:
            self.metadata.create_all(conn, tables=[self.table], checkfirst=True)

    def add_checksum_column(self, connection: sqlalchemy.Connection) -> None:
        """Upgrade a records table made before checksums (schema 1.0) by adding the column."""
        connection.exec_driver_sql(f"ALTER TABLE {RECORDS_TABLE} ADD COLUMN checksum BIGINT")

    def insert(
        self, infos: Iterable[StoredFileInfo], *, connection: sqlalchemy.Connection | None = None
    ) -> int:
        """Insert records; a dataset that already has one is ConflictingDefinitionError.

        Returns the number of records inserted.  On PostgreSQL a conflict aborts the enclosing
        transaction, as any failed statement does.
        """
        rows = [_row(i) for i in infos]
        if not rows:
            return 0
        with self._connect(connection) as conn:
            try:
                conn.execute(self.table.insert(), rows)
            except sqlalchemy.exc.IntegrityError as exc:
                raise ConflictingDefinitionError(
                    f"a datastore record already exists for one of datasets "
                    f"{', '.join(str(r['dataset_id']) for r in rows[:5])}{' ...' if len(rows) > 5 else ''}"
                ) from exc
        return len(rows)

    def insert_ignore_existing(
        self, infos: Iterable[StoredFileInfo], *, connection: sqlalchemy.Connection | None = None
    ) -> None:
        """Insert records, silently keeping the existing record of any dataset that has one.

        This is what makes the merge job safe to run twice.  SQLite and PostgreSQL do it in one
        statement (``ON CONFLICT DO NOTHING``); other databases look the IDs up first.
        """
        rows = [_row(i) for i in infos]
        if not rows:
            return
        with self._connect(connection) as conn:
            dialect = conn.dialect.name
            if dialect in ("sqlite", "postgresql"):
                # Imported on use so a SQLite repository never loads the PostgreSQL dialect.
                module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
                stmt = module.insert(self.table).on_conflict_do_nothing(index_elements=["dataset_id"])
                conn.execute(stmt, rows)
                return
            present = set(self._fetch_rows(conn, [r["dataset_id"] for r in rows]))
            new: dict[uuid.UUID, dict[str, Any]] = {}
            for r in rows:
                if r["dataset_id"] not in present:
                    new.setdefault(r["dataset_id"], r)
            if new:
                conn.execute(self.table.insert(), list(new.values()))

    def _fetch_rows(
        self, conn: sqlalchemy.Connection, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, StoredFileInfo]:
        t = self.table
        out: dict[uuid.UUID, StoredFileInfo] = {}
        for chunk in _chunks(ids):
            result = conn.execute(
                sqlalchemy.select(
                    t.c.dataset_id, t.c.path, t.c.formatter, t.c.storage_class, t.c.file_size, t.c.checksum
                ).where(t.c.dataset_id.in_(chunk))
            )
            for dataset_id, path, formatter, storage_class, file_size, checksum in result:
                out[dataset_id] = StoredFileInfo(
                    dataset_id, path, formatter, storage_class, file_size, checksum
                )
        return out

    def fetch(
        self, ids: Iterable[uuid.UUID], *, connection: sqlalchemy.Connection | None = None
    ) -> dict[uuid.UUID, StoredFileInfo]:
        """Records of those of ``ids`` that have one; IDs without a record are simply absent."""
        with self._connect(connection) as conn:
            return self._fetch_rows(conn, ids)

    def delete(self, ids: Iterable[uuid.UUID], *, connection: sqlalchemy.Connection | None = None) -> int:
        """Delete the records of ``ids`` (missing ones are ignored); returns how many were deleted."""
        count = 0
        with self._connect(connection) as conn:
            for chunk in _chunks(ids):
                count += conn.execute(self.table.delete().where(self.table.c.dataset_id.in_(chunk))).rowcount
        return count

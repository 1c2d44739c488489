"""DatastoreRecordStore on a real SQLite database and, where the server is installed, PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from butler_pgserver import PostgresServer

from butler._exceptions import ConflictingDefinitionError
from butler._stored_file_info import StoredFileInfo
from butler.datastore import DatastoreRecordStore


def infos(n: int) -> list[StoredFileInfo]:
    return [
        StoredFileInfo(uuid.uuid4(), f"run/t/t_{i}.yaml", "yaml", "StructuredDataDict", i) for i in range(n)
    ]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sqlalchemy.Engine]:
    eng = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield eng
    eng.dispose()


def test_record_store_round_trip(engine: sqlalchemy.Engine) -> None:
    records = DatastoreRecordStore(sqlalchemy.MetaData(), engine)
    records.create()
    records.create()  # idempotent
    assert sqlalchemy.inspect(engine).get_pk_constraint("file_datastore_records")["constrained_columns"] == [
        "dataset_id"
    ]
    batch = infos(3)
    assert records.insert(batch) == 3
    assert records.fetch([i.dataset_id for i in batch] + [uuid.uuid4()]) == {i.dataset_id: i for i in batch}
    with pytest.raises(ConflictingDefinitionError, match=str(batch[0].dataset_id)):
        records.insert(batch[:1])
    assert records.delete([batch[0].dataset_id, uuid.uuid4()]) == 1
    assert set(records.fetch(i.dataset_id for i in batch)) == {batch[1].dataset_id, batch[2].dataset_id}
    assert records.insert([]) == 0 and records.fetch([]) == {}


def test_record_store_insert_ignore_existing(engine: sqlalchemy.Engine) -> None:
    records = DatastoreRecordStore(sqlalchemy.MetaData(), engine)
    records.create()
    batch = infos(4)
    records.insert(batch[:2])
    changed = StoredFileInfo(batch[0].dataset_id, "elsewhere.yaml", "yaml", "StructuredDataDict", 99)
    records.insert_ignore_existing([changed, *batch[1:]])
    records.insert_ignore_existing([changed, *batch[1:]])  # running the merge twice changes nothing
    assert records.fetch(i.dataset_id for i in batch) == {i.dataset_id: i for i in batch}


def test_record_store_many_ids(engine: sqlalchemy.Engine) -> None:
    records = DatastoreRecordStore(sqlalchemy.MetaData(), engine)
    records.create()
    batch = infos(1234)
    records.insert(batch)
    assert len(records.fetch(i.dataset_id for i in batch)) == 1234
    assert records.delete(i.dataset_id for i in batch[:1100]) == 1100
    assert len(records.fetch(i.dataset_id for i in batch)) == 134


def test_record_store_joins_the_callers_transaction(engine: sqlalchemy.Engine) -> None:
    metadata = sqlalchemy.MetaData()
    records = DatastoreRecordStore(metadata, engine)
    records.create()
    batch = infos(2)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        records.insert(batch, connection=conn)
        assert len(records.fetch([i.dataset_id for i in batch], connection=conn)) == 2
        raise RuntimeError("roll back")
    assert records.fetch(i.dataset_id for i in batch) == {}
    # Bound to a transaction factory, as the Butler binds it to registry.transaction.
    with engine.connect() as conn:
        txn = conn.begin()

        class Transaction:
            def __enter__(self) -> sqlalchemy.Connection:
                return conn

            def __exit__(self, *exc: object) -> None:
                return None

        joined = DatastoreRecordStore(metadata, Transaction)
        joined.insert(batch)
        txn.rollback()
    assert records.fetch(i.dataset_id for i in batch) == {}
    with engine.connect() as conn:
        on_conn = DatastoreRecordStore(metadata, conn)
        on_conn.insert(batch)
        conn.commit()
    assert len(records.fetch(i.dataset_id for i in batch)) == 2


def test_record_store_foreign_key_cascades(engine: sqlalchemy.Engine) -> None:
    metadata = sqlalchemy.MetaData()
    id_column = sqlalchemy.Column("id", sqlalchemy.Uuid, primary_key=True)
    dataset = sqlalchemy.Table("dataset", metadata, id_column)

    def _fk_on(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    sqlalchemy.event.listen(engine, "connect", _fk_on)

    records = DatastoreRecordStore(metadata, engine, dataset_fk="dataset.id")
    metadata.create_all(engine)
    batch = infos(2)
    with engine.begin() as conn:
        conn.execute(dataset.insert(), [{"id": i.dataset_id} for i in batch])
    records.insert(batch)
    with pytest.raises(ConflictingDefinitionError):
        records.insert(infos(1))  # no dataset row
    with engine.begin() as conn:
        conn.execute(dataset.delete().where(dataset.c.id == batch[0].dataset_id))
    assert set(records.fetch(i.dataset_id for i in batch)) == {batch[1].dataset_id}
    assert DatastoreRecordStore(metadata, engine).table is records.table


def test_insert_ignore_existing_is_one_statement_on_postgresql() -> None:
    """Without a server: record what the store sends to a PostgreSQL mock connection."""
    sent: list[str] = []

    def executor(sql: Any, *args: Any, **kwargs: Any) -> None:
        sent.append(str(sql.compile(dialect=mock.dialect)))

    mock = sqlalchemy.create_mock_engine("postgresql+psycopg://", executor)
    records = DatastoreRecordStore(sqlalchemy.MetaData(), mock)  # type: ignore[arg-type]
    records.insert_ignore_existing(infos(2), connection=mock)  # type: ignore[arg-type]
    assert len(sent) == 1 and "ON CONFLICT (dataset_id) DO NOTHING" in sent[0]
    ddl = str(sqlalchemy.schema.CreateTable(records.table).compile(dialect=mock.dialect))
    assert "dataset_id UUID NOT NULL" in ddl


@pytest.fixture
def pg_engine(postgresql_server: PostgresServer) -> Iterator[sqlalchemy.Engine]:
    """An empty database on the session's real PostgreSQL server (see conftest.py)."""
    name = postgresql_server.create_database()
    eng = sqlalchemy.create_engine(postgresql_server.url(name))
    try:
        yield eng
    finally:
        eng.dispose()
        postgresql_server.drop_database(name)


def test_record_store_on_postgresql(pg_engine: sqlalchemy.Engine) -> None:
    records = DatastoreRecordStore(sqlalchemy.MetaData(), pg_engine)
    records.create()
    batch = infos(3)
    records.insert(batch[:1])
    records.insert_ignore_existing(batch)
    records.insert_ignore_existing(batch)
    assert records.fetch(i.dataset_id for i in batch) == {i.dataset_id: i for i in batch}
    with pytest.raises(ConflictingDefinitionError):
        records.insert(batch[:1])
    assert records.delete(i.dataset_id for i in batch) == 3

"""Database connection handling: engines, transactions and the dialect-specific bits.

Everything that differs between SQLite and PostgreSQL lives here, so the managers above can be
written once.  Two SQLite details matter for correctness and speed:

* pragmas (WAL, ``synchronous=NORMAL``, ``foreign_keys=ON``) are set on every new connection,
  because SQLite forgets them per connection;
* pysqlite's own implicit-BEGIN handling is switched off and write transactions begin with
  ``BEGIN IMMEDIATE``.  A deferred transaction that reads and then writes can fail at once with
  "database is locked" when another process wrote in between (the busy timeout does not help
  there); taking the write lock up front makes concurrent writers simply queue.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from .._exceptions import ButlerError, RepositoryError

#: Seconds a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT = 60.0

_WRITE_OPTION = "skybatch_write"


def _install_sqlite_hooks(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # None = autocommit at the driver level; SQLAlchemy's "begin" hook below issues BEGIN.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


#: What to tell a user whose PostgreSQL URL has no driver to go with it.
POSTGRES_EXTRA_HINT = "install it with: pip install 'skybatch[postgres]'"


def _has_module(name: str) -> bool:
    """Whether ``name`` can be imported (a module blocked as ``sys.modules[name] = None`` cannot)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _postgres_url(url: str, parsed: sa.engine.URL) -> sa.engine.URL:
    """The URL with a driver that is installed, or a RepositoryError naming the extra to install.

    ``postgresql://`` means psycopg2 to SQLAlchemy; skybatch's driver is psycopg 3 (the
    ``postgres`` extra), so a plain URL uses psycopg 3 unless psycopg2 is what is installed.
    """
    if parsed.drivername == "postgresql" and not _has_module("psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    driver = parsed.get_driver_name()
    if driver == "psycopg" and not _has_module("psycopg"):
        raise RepositoryError(
            f"database URL {url!r} needs the PostgreSQL driver psycopg, which is not installed; "
            + POSTGRES_EXTRA_HINT
        )
    if driver == "psycopg2" and not _has_module("psycopg2"):
        raise RepositoryError(
            f"database URL {url!r} names the driver psycopg2, which is not installed; use "
            f"postgresql+psycopg:// (or postgresql://) and {POSTGRES_EXTRA_HINT}"
        )
    return parsed


def make_engine(url: str) -> sa.Engine:
    """Create an engine for a SQLite or PostgreSQL URL with the settings the registry relies on."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as err:
        raise RepositoryError(f"invalid database URL {url!r}: {err}") from err
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        _install_sqlite_hooks(engine)
        return engine
    if backend == "postgresql":
        parsed = _postgres_url(url, parsed)
        try:
            return sa.create_engine(parsed, pool_pre_ping=True)
        except ImportError as err:
            raise RepositoryError(
                f"the PostgreSQL driver for {url!r} cannot be loaded ({err}); {POSTGRES_EXTRA_HINT}"
            ) from err
    raise RepositoryError(f"unsupported database {backend!r} in {url!r}; use sqlite or postgresql")


class _TxState(threading.local):
    """Per-thread state of the outermost open transaction."""

    conn: sa.Connection | None = None
    on_commit: list[Callable[[], None]] | None = None


class Database:
    """An engine plus transaction bookkeeping shared by the registry managers.

    ``transaction()`` nests: an inner use joins the outer transaction, so a Butler.put can wrap
    the registry insert and the datastore record insert in one commit.  ``on_commit`` defers
    in-memory cache updates until the data they describe is really committed.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._state = _TxState()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Yield a connection inside a write transaction, joining the current one if any."""
        state = self._state
        if state.conn is not None:
            yield state.conn
            return
        callbacks: list[Callable[[], None]] = []
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_WRITE_OPTION: True})
                state.conn, state.on_commit = conn, callbacks
                try:
                    with conn.begin():
                        yield conn
                finally:
                    state.conn, state.on_commit = None, None
        except sa.exc.DBAPIError as err:
            raise translate_generic(err) from err
        for callback in callbacks:
            callback()

    @contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """Yield the current transaction's connection, or a fresh read-only one.

        Reads inside a transaction must use its connection to see its own uncommitted writes.
        """
        state = self._state
        if state.conn is not None:
            yield state.conn
            return
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as err:
            raise translate_generic(err) from err

    @property
    def in_transaction(self) -> bool:
        return self._state.conn is not None

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the current transaction commits (at once if there is none)."""
        callbacks = self._state.on_commit
        if callbacks is None:
            callback()
        else:
            callbacks.append(callback)

    def insert_ignore(self, table: sa.Table, index_elements: Sequence[str] | None = None) -> Any:
        """An INSERT that silently skips rows conflicting on ``index_elements`` (or any unique key)."""
        # Dialect modules are imported on use: the PostgreSQL one costs tens of milliseconds of
        # start-up that a SQLite repository should not pay.
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)
        raise RepositoryError(f"insert-or-ignore is not implemented for {self.dialect}")

    def dispose(self) -> None:
        self.engine.dispose()


def translate_generic(err: sa.exc.DBAPIError) -> ButlerError:
    """Turn a database error that no caller translated more precisely into a RepositoryError."""
    orig = getattr(err, "orig", None) or err
    return RepositoryError(f"registry database error: {orig}")


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Split ``items`` so IN lists stay below SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]

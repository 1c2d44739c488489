"""Shared fixtures for the butler tests: database URLs and a populated registry.

``db_url`` is parametrised over backends, so every test that takes it (or ``registry``) runs once
per database: SQLite (a file in the test's temporary directory) and PostgreSQL (a server started
once per session, see :mod:`butler_pgserver`, with a fresh database per test; skipped where the
server or driver is not installed).  Another backend is one more entry in ``_BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from butler_pgserver import PostgresServer, PostgresUnavailable, acquire_server, release_server
from butler_testdata import dimension_data

from butler import DimensionUniverse


def _sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'registry.sqlite3'}"


def _postgresql_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    server: PostgresServer = request.getfixturevalue("postgresql_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


#: Backend name -> generator yielding a URL of an empty database for one test.
_BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Iterator[str]]] = {
    "sqlite": _sqlite_url,
    "postgresql": _postgresql_url,
}


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (shared with tests/faults), started on first use."""
    try:
        server = acquire_server()
    except PostgresUnavailable as err:
        pytest.skip(str(err))
    try:
        yield server
    finally:
        release_server()


@pytest.fixture(params=sorted(_BACKENDS))
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database, once per backend."""
    yield from _BACKENDS[request.param](tmp_path, request)


@pytest.fixture(scope="session")
def universe() -> DimensionUniverse:
    return DimensionUniverse.default()


@pytest.fixture
def registry(db_url: str, universe: DimensionUniverse) -> Iterator[Any]:
    """A registry with :func:`dimension_data` inserted, on every backend."""
    from butler.registry import Registry

    reg = Registry.create(db_url, universe)
    reg.insert_dimension_data(dimension_data())
    yield reg
    reg.close()

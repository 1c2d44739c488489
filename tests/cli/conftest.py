"""Fixtures for the command-line tests: a registry on both databases where a command touches one.

``db_url`` runs a test once on SQLite and once on PostgreSQL, with the server the butler tests
start (``tests/butler/butler_pgserver.py``, loaded by path as tests/faults does: ``tests/`` itself
cannot hold a conftest, or its ``butler`` directory would shadow the ``butler`` package).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _load_pgserver() -> Any:
    module = sys.modules.get("butler_pgserver")
    if module is None:
        path = Path(__file__).resolve().parent.parent / "butler" / "butler_pgserver.py"
        spec = importlib.util.spec_from_file_location("butler_pgserver", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["butler_pgserver"] = module
        spec.loader.exec_module(module)
    return module


_pg = _load_pgserver()


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[Any]:
    """The session's one PostgreSQL server (shared with tests/butler and tests/faults)."""
    try:
        server = _pg.acquire_server()
    except _pg.PostgresUnavailable as err:
        pytest.skip(str(err))
    try:
        yield server
    finally:
        _pg.release_server()


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite3'}"
        return
    server = request.getfixturevalue("postgresql_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)

"""A PostgreSQL URL needs the ``postgres`` extra (psycopg 3); without it the user is told which.

The missing driver is real: the subprocess blocks the import with ``sys.modules[name] = None``,
which is exactly what Python does for a module that cannot be imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from butler_pgserver import PostgresServer

from butler import Butler

#: Run ``butler ARGS`` in a fresh interpreter where neither PostgreSQL driver can be imported.
_WITHOUT_DRIVERS = (
    "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None; "
    "from butler.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://someone@127.0.0.1:5999/registry",
        "postgresql://someone@127.0.0.1:5999/registry",
        "postgresql+psycopg2://someone@127.0.0.1:5999/registry",
    ],
)
def test_a_postgresql_url_without_the_driver_names_the_extra(url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_DRIVERS, "create", str(tmp_path / "repo"), "--db-url", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert "pip install 'skybatch[postgres]'" in result.stderr and url in result.stderr
    assert not (tmp_path / "repo" / "butler.yaml").exists()


def test_a_plain_postgresql_url_uses_psycopg(postgresql_server: PostgresServer, tmp_path: Path) -> None:
    """``postgresql://`` (SQLAlchemy's psycopg2 spelling) reaches the server through psycopg 3."""
    name = postgresql_server.create_database()
    try:
        plain = postgresql_server.url(name).replace("postgresql+psycopg://", "postgresql://", 1)
        assert plain.startswith("postgresql://")
        butler = Butler.create(str(tmp_path / "repo"), db_url=plain)
        try:
            butler.registry.register_run("u/me/run")
            assert [c for c, _ in butler.registry.query_collections()] == ["u/me/run"]
        finally:
            butler.close()
    finally:
        postgresql_server.drop_database(name)

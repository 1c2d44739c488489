"""A throw-away PostgreSQL server for the registry tests, started once per test session.

It listens only on a Unix socket in a private temporary directory (no TCP port to collide with
other test runs) and is run as the ``postgres`` user when the tests run as root, because initdb
refuses root.  Each test gets its own freshly created database, dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresUnavailable(RuntimeError):
    """The server binaries or the psycopg driver are missing (the tests skip)."""


class PostgresServer:
    """Start with :meth:`start`, hand out databases with :meth:`create_database`, :meth:`stop` at the end."""

    PORT = 5432  # only names the socket file; the socket directory is private

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise PostgresUnavailable(f"PostgreSQL server binaries not found in {PG_BIN}")
        try:
            import psycopg  # noqa: F401
        except ImportError as err:
            raise PostgresUnavailable("the psycopg driver is not installed") from err
        self.base = Path(tempfile.mkdtemp(prefix="skybatch-registry-pg-"))
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.sock.mkdir()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # runuser lives in /usr/sbin, which a non-login root PATH may lack.
            runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
            if runuser is None:
                raise PostgresUnavailable("running as root but runuser (util-linux) is not installed")
            self._as_user = [runuser, "-u", "postgres", "--"]
            for path in (self.base, self.sock):
                shutil.chown(path, "postgres")
        self._counter = itertools.count()

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = f"-k {self.sock} -c listen_addresses='' -p {self.PORT} -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.base / "pg.log"),
            "-o",
            options,
            "start",
        )

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.sock}&port={self.PORT}"

    def _admin(self, sql: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()

    def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(self._counter)}"
        self._admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        subprocess.run(
            [*self._as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(self.base, ignore_errors=True)


_shared: PostgresServer | None = None
_users = 0


def acquire_server() -> PostgresServer:
    """The session's one server, started by its first user (several conftests share it).

    Raises PostgresUnavailable where it cannot run; pair every call with :func:`release_server`.
    """
    global _shared, _users
    if _shared is None:
        server = PostgresServer()
        server.start()
        _shared = server
    _users += 1
    return _shared


def release_server() -> None:
    """Stop the shared server when its last user is done with it."""
    global _shared, _users
    _users -= 1
    if _users == 0 and _shared is not None:
        _shared.stop()
        _shared = None

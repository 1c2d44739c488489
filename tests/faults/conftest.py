"""Fixtures for the fault-injection suite: real repositories on both databases, real processes.

Every test here breaks something for real -- concurrent processes racing on one registry, a
SIGKILL in the middle of a write, a truncated file, a full disk -- and then checks what a user
would check afterwards: nothing lost, nothing duplicated, nothing mixed, and the exact error.
``db_url`` runs a test on both backends, with the PostgreSQL server the butler tests use
(``tests/butler/butler_pgserver.py``, loaded here by path: ``tests/`` itself cannot hold a
conftest, or its ``butler`` directory would shadow the ``butler`` package).
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import pytest
from faults_util import DEMO_PIPELINE

from butler import Butler
from quantumgraph.demo.repo import insert_demo_dimension_records, put_demo_raws, register_demo_collections

RunScript = Callable[..., "subprocess.CompletedProcess[str]"]


def _load_pgserver() -> Any:
    """The butler tests' server module, as the one module object both conftests share."""
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
    """The session's one PostgreSQL server (shared with tests/butler), started on first use."""
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


@pytest.fixture
def fork() -> BaseContext:
    """A multiprocessing context that forks, so workers need nothing importable by name."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform cannot fork processes")
    return multiprocessing.get_context("fork")


@pytest.fixture
def demo_repo_on(tmp_path: Path) -> Callable[[str, int, int], Path]:
    """Make a DemoCam repository (E exposures x D detectors of raws) whose registry is at a URL."""

    def make(db_url: str, exposures: int = 2, detectors: int = 2) -> Path:
        path = tmp_path / "repo"
        with Butler.create(path, db_url=db_url) as butler:
            insert_demo_dimension_records(butler, exposures, detectors)
            register_demo_collections(butler)
            put_demo_raws(butler, exposures, detectors)
        return path

    return make


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(DEMO_PIPELINE)
    return path


@pytest.fixture
def run_script() -> RunScript:
    """Run an installed console script (``pipetask``, ``butler``) as a real subprocess."""

    def run(
        name: str, *args: str | Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        exe = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
        if exe is None:
            pytest.skip(f"console script {name} is not installed")
        return subprocess.run(
            [exe, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
            env=None if env is None else {**os.environ, **env},
        )

    return run

"""Fixtures for the bps tests: an isolated runs index, a fixed clock and a submit-YAML folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from bps_testutil import write_yaml


@pytest.fixture(autouse=True)
def runs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own runs index, so nothing touches ~/.skybatch."""
    index = tmp_path / "runs-index"
    monkeypatch.setenv("SKYBATCH_RUNS_DIR", str(index))
    return index


@pytest.fixture
def env() -> dict[str, str]:
    """An environment for config loading that does not depend on the machine's."""
    return {"USER": "alice", "HOME": "/home/alice"}


@pytest.fixture
def cfg_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a pipeline file and a repository folder next to where submit YAMLs go.

    The working directory is moved elsewhere, so tests notice paths resolved against the cwd
    instead of the YAML's folder.
    """
    folder = tmp_path / "configs"
    write_yaml(folder / "pipeline.yaml", "tasks: {}\n")
    (tmp_path / "repo").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return folder

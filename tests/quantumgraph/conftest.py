"""Fixtures for the quantumgraph end-to-end tests: a small DemoCam repository, the demo pipeline
written as a YAML file, and the two command lines (``pipetask`` and ``butler``), run in-process
through click's CliRunner or for real as console scripts.

The repository holds ``len(exposures) x len(detectors)`` raws (3 x 2 unless a test module
overrides the ``exposures`` or ``detectors`` fixture); raw (e, d) has the value ``100 * e + d``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from butler.cli import main as butler_main
from quantumgraph.cli import main as pipetask_main
from quantumgraph.demo.repo import DEFAULTS, make_demo_repo

Invoke = Callable[..., Result]
RunScript = Callable[..., "subprocess.CompletedProcess[str]"]

#: The demo pipeline as a user writes it: isr adds 1, calibrate doubles, gather summarises.
DEMO_PIPELINE = """\
description: DemoCam ISR, calibration and a per-exposure summary
tasks:
  isr:
    class: quantumgraph.demo.tasks.Isr
    config:
      offset: 1.0
  calibrate:
    class: quantumgraph.demo.tasks.Calibrate
    config:
      scale: 2.0
  gather: quantumgraph.demo.tasks.Gather
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo the root-logger set-up each CLI invocation does (``--log-level`` is eager and always
    reconfigures logging onto the stderr CliRunner captured), so later tests log normally."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def exposures() -> tuple[int, ...]:
    """Exposure IDs of the demo repository (make_demo_repo numbers them 1..E)."""
    return (1, 2, 3)


@pytest.fixture(scope="session")
def detectors() -> tuple[int, ...]:
    """Detector IDs of the demo repository (make_demo_repo numbers them 0..D-1)."""
    return (0, 1)


@pytest.fixture
def demo_repo(tmp_path: Path, exposures: tuple[int, ...], detectors: tuple[int, ...]) -> Path:
    """A fresh DemoCam repository with raws in ``DemoCam/raw/all``, chained as ``DemoCam/defaults``."""
    path = tmp_path / "repo"
    make_demo_repo(path, len(exposures), len(detectors)).close()
    return path


@pytest.fixture(scope="session")
def pipeline_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo pipeline written to a ``pipeline.yaml`` (once per session; tests only read it)."""
    path = tmp_path_factory.mktemp("pipeline") / "pipeline.yaml"
    path.write_text(DEMO_PIPELINE)
    return path


@pytest.fixture
def pipetask() -> Invoke:
    """Run ``pipetask ARGS...`` in-process; returns click's Result (stdout and stderr separate)."""

    def invoke(*args: str | Path) -> Result:
        return CliRunner().invoke(pipetask_main, [str(a) for a in args])

    return invoke


@pytest.fixture
def butler_cli() -> Invoke:
    """Run ``butler ARGS...`` in-process, with the plugin commands quantumgraph adds."""

    def invoke(*args: str | Path) -> Result:
        return CliRunner().invoke(butler_main, [str(a) for a in args])

    return invoke


@pytest.fixture
def run_script() -> RunScript:
    """Run an installed console script (``pipetask`` or ``butler``) as a real subprocess."""

    def run(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
        exe = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
        if exe is None:
            pytest.skip(f"console script {name} is not installed")
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture
def saved_graph(tmp_path: Path, demo_repo: Path, pipeline_file: Path, pipetask: Invoke) -> Path:
    """The demo pipeline's graph over the whole repository, saved with ``pipetask qgraph --save-qgraph``.

    Output run ``u/tester/demo/run1``, output chain ``u/tester/demo``.
    """
    path = tmp_path / "demo.qgraph"
    result = pipetask(
        "qgraph",
        "-b",
        demo_repo,
        "-i",
        DEFAULTS,
        "-o",
        "u/tester/demo",
        "--output-run",
        "u/tester/demo/run1",
        "-p",
        pipeline_file,
        "--save-qgraph",
        path,
    )
    assert result.exit_code == 0, result.output
    return path

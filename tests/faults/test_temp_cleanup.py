"""Temporary files left by killed writers are removed once stale, never while someone may write them.

A real child process is SIGKILLed in the middle of writing a large dataset, leaving its
``.tmp-*`` file behind; ``butler cleanup-temp`` and the merge then remove such leftovers when they
are older than the threshold, and leave fresh ones (a running job's) and dataset files alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from butler import Butler
from butler.cli import main as butler_main
from quantumgraph.cli import main as pipetask_main

WRITER = Path(__file__).with_name("killed_writer.py")


def _kill_while_writing(root: Path) -> Path:
    """Run a writer that is SIGKILLed in the middle of its write; return the file it left."""
    proc = subprocess.run(
        [sys.executable, str(WRITER), str(root)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    directory = root / "u" / "killed" / "big"
    (temp,) = directory.glob(".tmp-*")
    assert temp.read_text() == "partial: [1, 2"
    assert not list(directory.glob("big_*")), "a killed write must leave no final file"
    return temp


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_cleanup_temp_removes_only_stale_leftovers(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with Butler.create(repo) as butler:
        butler.registry.insert_dimension_data({"instrument": [{"name": "Cam"}]})
    stale = _kill_while_writing(repo)
    _age(stale, 2 * 3600)
    fresh = stale.with_name(".tmp-" + "0" * 32 + "-999999-0")  # as a running job's would be
    fresh.write_bytes(b"partial")
    keep = repo / "u" / "killed" / "big" / "notes.tmp-data"  # not ours: different prefix
    keep.write_text("x")

    result = CliRunner().invoke(butler_main, ["cleanup-temp", str(repo)])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert fresh.exists() and keep.exists()
    assert "removed 1 stale temporary file(s)" in result.stdout

    # A shorter threshold makes the fresh one stale too; --dry-run only lists.
    _age(fresh, 120)
    listed = CliRunner().invoke(butler_main, ["cleanup-temp", str(repo), "--older-than", "60", "--dry-run"])
    assert listed.exit_code == 0 and str(fresh) in listed.stdout and fresh.exists()
    done = CliRunner().invoke(butler_main, ["cleanup-temp", str(repo), "--older-than", "60"])
    assert done.exit_code == 0 and not fresh.exists()


def test_merge_removes_stale_temporaries_of_its_run(
    tmp_path: Path, pipeline_file: Path, demo_repo_on: Any
) -> None:
    repo = demo_repo_on(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    graph = tmp_path / "g.qgraph"
    args = ["qgraph", "-b", str(repo), "-i", "DemoCam/defaults", "-o", "u/x", "--output-run", "u/x/run"]
    result = CliRunner().invoke(pipetask_main, [*args, "-p", str(pipeline_file), "--save-qgraph", str(graph)])
    assert result.exit_code == 0, result.output
    directory = repo / "u" / "x" / "run" / "calexp"
    directory.mkdir(parents=True)
    stale = directory / (".tmp-" + "1" * 32 + "-4242-0")
    stale.write_bytes(b"half a calexp")
    _age(stale, 2 * 3600)
    fresh = directory / (".tmp-" + "2" * 32 + "-4243-0")
    fresh.write_bytes(b"being written")
    merged = CliRunner().invoke(butler_main, ["transfer-from-graph", str(graph), str(repo)])
    assert merged.exit_code == 0, merged.output
    assert not stale.exists() and fresh.exists()

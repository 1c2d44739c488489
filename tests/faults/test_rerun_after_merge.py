"""A rerun after a merge never rewrites a registered file, unless the user asks to clobber it.

Batch jobs cannot see the registry, so they never replace an existing output file: an identical
one (a deterministic rerun) is kept as it is, a different one is refused with an error that says
how to clobber.  A clobber (``pipetask run-qbb --clobber-outputs``) is completed by merging with
``--clobber-outputs``, which records the files as they are now.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from faults_tasks import SCALE_ENV
from faults_util import script

from butler import Butler, DatasetFileCorruptError
from butler.cli import main as butler_main
from quantumgraph import GraphReader
from quantumgraph.demo.repo import raw_value

PIPELINE = """\
tasks:
  isr: quantumgraph.demo.tasks.Isr
  calibrate:
    class: faults_tasks.CalibrateOrDie
    config:
      scale: 3.0
"""


def _run(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    here = str(Path(__file__).parent)
    path = os.environ.get("PYTHONPATH")
    full = {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{path}" if path else here, **env}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, env=full)


def test_rerun_after_merge_keeps_registered_files(tmp_path: Path, demo_repo_on: Any) -> None:
    repo = demo_repo_on(f"sqlite:///{tmp_path / 'registry.sqlite3'}", 1, 2)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE)
    graph = tmp_path / "g.qgraph"
    pipetask, butler = script("pipetask"), script("butler")
    args = ["qgraph", "-b", repo, "-i", "DemoCam/defaults", "-o", "u/r", "--output-run", "u/r/run"]
    assert _run(pipetask, *args, "-p", pipeline, "--save-qgraph", graph).returncode == 0
    with GraphReader(graph) as reader:
        calibrate = [q for q in reader.iter_quanta() if q.task_label == "calibrate"]
    ids = [a for q in calibrate for a in ("--qgraph-node-id", str(q.id))]
    assert _run(pipetask, "pre-exec-init-qbb", repo, graph).returncode == 0
    assert _run(pipetask, "run-qbb", repo, graph).returncode == 0
    assert _run(butler, "transfer-from-graph", graph, repo).returncode == 0
    with Butler(repo, collections="u/r/run") as b:
        refs = b.query_datasets("calexp")
        files = {r.id: b.datastore.abspath(b.get_records([r.id])[r.id]) for r in refs}
    before = {i: (p.read_bytes(), p.stat().st_ino) for i, p in files.items()}

    # A rerun that would produce different bytes is refused; the registered files stay.
    different = _run(pipetask, "run-qbb", repo, graph, *ids, **{SCALE_ENV: "5.0"})
    assert different.returncode != 0
    assert "already exists with different contents" in different.stderr
    assert "--clobber-outputs" in different.stderr
    assert {i: (p.read_bytes(), p.stat().st_ino) for i, p in files.items()} == before

    # A deterministic rerun (a retried job) succeeds and leaves the very same files in place.
    same = _run(pipetask, "run-qbb", repo, graph, *ids)
    assert same.returncode == 0, same.stderr
    assert {i: (p.read_bytes(), p.stat().st_ino) for i, p in files.items()} == before
    with Butler(repo, collections="u/r/run") as b:
        for ref in refs:
            e, d = ref.data_id["exposure"], ref.data_id["detector"]
            assert b.get(ref)["value"] == (raw_value(e, d) + 1.0) * 3.0

    # An explicit clobber replaces the file; merging with --clobber-outputs records it as it is now.
    clobbered = _run(pipetask, "run-qbb", repo, graph, *ids, "--clobber-outputs", **{SCALE_ENV: "50.0"})
    assert clobbered.returncode == 0, clobbered.stderr
    target = calibrate[0].outputs["calexp"][0]
    e, d = target.data_id["exposure"], target.data_id["detector"]
    new_value = {"exposure": e, "detector": d, "value": (raw_value(e, d) + 1.0) * 50.0}
    with Butler(repo) as b:
        try:
            b.get(target)
            raise AssertionError("a clobbered file with its old record must not read silently")
        except DatasetFileCorruptError as err:
            assert "was truncated or rewritten" in str(err)
    merged = CliRunner().invoke(
        butler_main, ["transfer-from-graph", str(graph), str(repo), "--clobber-outputs"]
    )
    assert merged.exit_code == 0, merged.output
    with Butler(repo) as b:
        assert b.get(target) == new_value
        assert len(b.query_datasets("calexp", collections="u/r/run")) == len(refs)

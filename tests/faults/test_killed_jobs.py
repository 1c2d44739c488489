"""Batch jobs and merges killed with SIGKILL, then rerun and re-merged: nothing lost, duplicated or mixed.

Real ``pipetask run-qbb`` and ``butler transfer-from-graph`` processes.  A job is killed at a
chosen point by its own task (``faults_tasks.CalibrateOrDie``); merges are killed from outside
at several moments while they run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from faults_tasks import KILL_DETECTOR_ENV
from faults_util import script

from butler import Butler
from quantumgraph import GraphReader
from quantumgraph.demo.repo import raw_value

PIPELINE = """\
tasks:
  isr:
    class: quantumgraph.demo.tasks.Isr
    config:
      offset: 1.0
  calibrate:
    class: faults_tasks.CalibrateOrDie
    config:
      scale: 3.0
  gather: quantumgraph.demo.tasks.Gather
"""

EXPOSURES, DETECTORS = 2, 3


def _env(**extra: str) -> dict[str, str]:
    """The environment of a job: this directory importable (for faults_tasks), plus ``extra``."""
    here = str(Path(__file__).parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{path}" if path else here, **extra}


def _run(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, env=_env(**env)
    )


def _check_outputs(repo: Path, run: str) -> None:
    """Exactly one of each output, each with the value its inputs imply, nothing else in the run."""
    with Butler(repo, collections=run) as butler:
        calexps = butler.query_datasets("calexp")
        post = butler.query_datasets("postISR")
        summaries = butler.query_datasets("summary")
        assert len(post) == len(calexps) == EXPOSURES * DETECTORS
        assert len(summaries) == EXPOSURES
        keys = {(r.data_id["exposure"], r.data_id["detector"]) for r in calexps}
        assert len(keys) == EXPOSURES * DETECTORS
        for ref in calexps:
            e, d = ref.data_id["exposure"], ref.data_id["detector"]
            assert butler.get(ref)["value"] == (raw_value(e, d) + 1.0) * 3.0
        for ref in summaries:
            e = ref.data_id["exposure"]
            assert butler.get(ref)["sum"] == sum((raw_value(e, d) + 1.0) * 3.0 for d in range(DETECTORS))
        chain = butler.registry.get_chain("u/k")
    assert chain.count(run) == 1


def _repo_and_graph(tmp_path: Path, demo_repo_on: Any) -> tuple[Path, Path]:
    """A demo repository and the graph of PIPELINE over it, built by a real ``pipetask qgraph``."""
    repo = demo_repo_on(f"sqlite:///{tmp_path / 'registry.sqlite3'}", EXPOSURES, DETECTORS)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE)
    graph = tmp_path / "g.qgraph"
    args = ["qgraph", "-b", repo, "-i", "DemoCam/defaults", "-o", "u/k", "--output-run", "u/k/run"]
    built = _run(script("pipetask"), *args, "-p", pipeline, "--save-qgraph", graph)
    assert built.returncode == 0, built.stderr
    return repo, graph


def test_killed_job_rerun_and_remerge(tmp_path: Path, demo_repo_on: Any) -> None:
    repo, graph = _repo_and_graph(tmp_path, demo_repo_on)
    pipetask, butler = script("pipetask"), script("butler")
    with GraphReader(graph) as reader:
        quanta = list(reader.iter_quanta())
    by_label: dict[str, list[str]] = {}
    for q in quanta:
        by_label.setdefault(q.task_label, []).append(str(q.id))
    assert _run(pipetask, "pre-exec-init-qbb", repo, graph).returncode == 0
    isr = _run(
        pipetask, "run-qbb", repo, graph, *[a for i in by_label["isr"] for a in ("--qgraph-node-id", i)]
    )
    assert isr.returncode == 0, isr.stderr
    calibrate_ids = [a for i in by_label["calibrate"] for a in ("--qgraph-node-id", i)]
    killed = _run(pipetask, "run-qbb", repo, graph, *calibrate_ids, **{KILL_DETECTOR_ENV: "1"})
    assert killed.returncode == -signal.SIGKILL

    # The merge after the failed workflow registers exactly what exists, and is a no-op repeated.
    first = _run(butler, "transfer-from-graph", graph, repo)
    assert first.returncode == 0, first.stderr
    with Butler(repo, collections="u/k/run") as b:
        partial = {(r.data_id["exposure"], r.data_id["detector"]) for r in b.query_datasets("calexp")}
    assert 0 < len(partial) < EXPOSURES * DETECTORS  # killed part-way through the job's quanta
    assert _run(butler, "transfer-from-graph", graph, repo).returncode == 0

    # Restart: the job again (quanta with outputs are rewritten identically) and gather, then merge.
    again = _run(pipetask, "run-qbb", repo, graph, *calibrate_ids)
    assert again.returncode == 0, again.stderr
    gather = _run(
        pipetask, "run-qbb", repo, graph, *[a for i in by_label["gather"] for a in ("--qgraph-node-id", i)]
    )
    assert gather.returncode == 0, gather.stderr
    final = _run(butler, "transfer-from-graph", graph, repo)
    assert final.returncode == 0, final.stderr
    _check_outputs(repo, "u/k/run")


def test_merges_killed_at_several_moments_then_remerged(tmp_path: Path, demo_repo_on: Any) -> None:
    repo, graph = _repo_and_graph(tmp_path, demo_repo_on)
    pipetask, butler = script("pipetask"), script("butler")
    assert _run(pipetask, "pre-exec-init-qbb", repo, graph).returncode == 0
    assert _run(pipetask, "run-qbb", repo, graph).returncode == 0
    outcomes = []
    for delay in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5):
        proc = subprocess.Popen(
            [butler, "transfer-from-graph", str(graph), str(repo)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        outcomes.append(proc.wait())
        # All or nothing: either no output is registered yet, or every one is.
        with Butler(repo) as b:
            runs = dict(b.registry.query_collections())
            if "u/k/run" in runs:
                n = len(b.query_datasets("calexp", collections="u/k/run"))
                assert n in (0, EXPOSURES * DETECTORS)
    assert -signal.SIGKILL in outcomes
    final = _run(butler, "transfer-from-graph", graph, repo)
    assert final.returncode == 0, final.stderr
    _check_outputs(repo, "u/k/run")

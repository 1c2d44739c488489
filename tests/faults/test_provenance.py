"""Provenance datasets: every quantum's log and metadata and every run's packages, merged like outputs.

A user checks these after a run: the failed quantum's ``{label}_log`` holds its exception and
traceback, each ``{label}_metadata`` says whether its quantum succeeded and what it wrote, and the
run's ``packages`` names the versions it ran with; an extended run with other versions is refused
unless ``--no-versions``.  Each test runs on SQLite and PostgreSQL, with the real console script.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from faults_util import DEMO_PIPELINE

from butler import Butler

RUN = "u/prov/run"


def _run(run_script: Any, repo: Path, pipeline: Path, *extra: str) -> Any:
    return run_script(
        "pipetask",
        "run",
        "-b",
        repo,
        "-i",
        "DemoCam/defaults",
        "--output-run",
        RUN,
        "-p",
        pipeline,
        *extra,
    )


def test_quanta_write_log_and_metadata_and_a_failure_keeps_its_traceback(
    tmp_path: Path, db_url: str, demo_repo_on: Any, run_script: Any
) -> None:
    repo = demo_repo_on(db_url, 2, 2)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(DEMO_PIPELINE.replace("scale: 2.0", "scale: 2.0\n      fail_detectors: [1]", 1))
    assert "fail_detectors" in pipeline.read_text(), "the pipeline must make calibrate fail on detector 1"
    result = _run(run_script, repo, pipeline, "-j", "2")
    assert result.returncode == 1, result.stderr
    with Butler(repo, collections=[RUN]) as butler:
        # 8 quanta ran (4 isr, 4 calibrate), 2 calibrate failed; gather never ran (blocked).
        assert len(butler.query_datasets("isr_log", [RUN])) == 4
        assert len(butler.query_datasets("calibrate_metadata", [RUN])) == 4
        assert butler.query_datasets("gather_metadata", [RUN]) == []

        failed_log = butler.get("calibrate_log", instrument="DemoCam", exposure=1, detector=1)
        last = failed_log[-1]
        assert last["level"] == "ERROR"
        assert last["exception"]["type"] == "builtins.RuntimeError"
        assert last["exception"]["message"] == "calibration failed on detector 1 (fail_detectors)"
        assert "Traceback (most recent call last)" in last["exception"]["traceback"]
        assert "quantumgraph/demo/tasks.py" in last["exception"]["traceback"]

        failed_meta = butler.get("calibrate_metadata", instrument="DemoCam", exposure=1, detector=1)
        assert failed_meta["succeeded"] is False
        assert "calibration failed on detector 1" in failed_meta["error"]
        assert failed_meta["outputs"] == []

        ok_meta = butler.get("calibrate_metadata", instrument="DemoCam", exposure=1, detector=0)
        calexp = butler.find_dataset("calexp", instrument="DemoCam", exposure=1, detector=0)
        assert calexp is not None
        assert ok_meta["succeeded"] is True and ok_meta["error"] is None
        assert ok_meta["outputs"] == [str(calexp.id)]
        assert ok_meta["data_id"] == {"instrument": "DemoCam", "detector": 0, "exposure": 1}
        assert ok_meta["start"] <= ok_meta["end"]
        assert ok_meta["cpu_seconds"] >= 0 and ok_meta["peak_memory_bytes"] > 1_000_000
        assert ok_meta["host"] == platform.node()

        packages = butler.get("packages")
        assert packages["python"] == platform.python_version()
        assert "skybatch" in packages and "pyyaml" in packages
    # The merge read the jobs' journals and removed them once it had committed.
    assert not list((repo / ".skybatch-written").rglob("*.jsonl"))


def test_extending_a_run_made_with_other_package_versions_is_refused_unless_no_versions(
    tmp_path: Path, db_url: str, demo_repo_on: Any, run_script: Any
) -> None:
    repo = demo_repo_on(db_url, 2, 2)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(DEMO_PIPELINE)
    first = _run(run_script, repo, pipeline, "-d", "exposure = 1")
    assert first.returncode == 0, first.stderr
    # Pretend the run was made with another PyYAML, as an older software stack would have.
    with Butler(repo) as butler:
        ref = butler.find_dataset("packages", collections=[RUN])
        assert ref is not None
        path = butler.datastore.root / butler.get_records([ref.id])[ref.id].path
    packages = json.loads(path.read_text())
    current = packages["pyyaml"]
    packages["pyyaml"] = "0.1"
    path.write_text(json.dumps(packages))

    refused = _run(run_script, repo, pipeline, "-d", "exposure = 2", "--extend-run")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: output run '{RUN}' was made with other package versions (pyyaml: 0.1 -> {current}); "
        "use a new output run, or pass --no-versions to mix them"
    )
    with Butler(repo) as butler:
        assert len(butler.query_datasets("calexp", [RUN])) == 2  # nothing of exposure 2 was added

    mixed = _run(run_script, repo, pipeline, "-d", "exposure = 2", "--extend-run", "--no-versions")
    assert mixed.returncode == 0, mixed.stderr
    with Butler(repo) as butler:
        assert len(butler.query_datasets("calexp", [RUN])) == 4
        assert len(butler.query_datasets("packages", [RUN])) == 1

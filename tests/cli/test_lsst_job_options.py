"""LSST's options on ``pipetask``: what an operator's scripts and job commands pass.

``pipetask qgraph|run --instrument -q --qgraph-datastore-records`` (on SQLite and PostgreSQL: the
build reads the registry), ``pipetask run-qbb -j --summary`` and comma-separated
``--qgraph-node-id`` (a batch job reads no registry).  bps's are in tests/bps/test_bps_lsst_options.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from butler import Butler
from quantumgraph import GraphReader
from quantumgraph.cli import main as pipetask_main
from quantumgraph.demo import repo as demo

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = REPO_ROOT / "submit_configs" / "quickstart_pipeline.yaml"


def pipetask(*args: str | Path) -> Result:
    return CliRunner().invoke(pipetask_main, [str(a) for a in args])


def script(name: str) -> str:
    exe = shutil.which(name, path=os.path.dirname(sys.executable))
    assert exe is not None, f"console script {name} is not installed"
    return exe


def _demo_on(db_url: str, path: Path) -> Path:
    """DemoCam (1 exposure x 2 detectors) plus a second instrument with no raws, registry at db_url."""
    with Butler.create(path, db_url=db_url) as butler:
        demo.insert_demo_dimension_records(butler, 1, 2)
        demo.register_demo_collections(butler)
        demo.put_demo_raws(butler, 1, 2)
        butler.registry.insert_dimension_records(
            "instrument",
            [{"name": "OtherCam", "detector_max": 2, "visit_max": 10, "class_name": "lsst.obs.Other"}],
        )
    return path


def test_qgraph_and_run_instrument_save_short_option_and_datastore_records(
    tmp_path: Path, db_url: str
) -> None:
    repo = _demo_on(db_url, tmp_path / "repo")
    build = ["-b", repo, "-i", demo.DEFAULTS, "-o", "u/me/i", "-p", PIPELINE]
    # The instrument by LSST's class path; -q is --save-qgraph; the records option is accepted.
    saved = pipetask("qgraph", *build, "--instrument", "quantumgraph.demo.DemoCam",
                     "-q", tmp_path / "g.qgraph",
                     "--qgraph-datastore-records")  # fmt: skip
    assert saved.exit_code == 0, saved.output
    with GraphReader(tmp_path / "g.qgraph") as reader:
        graph = reader.read_all()
    assert len(graph) == 2 * 2 + 1
    assert {q.data_id["instrument"] for q in graph.quanta} == {"DemoCam"}
    raws = {
        ref.id
        for q in graph.quanta
        for refs in q.inputs.values()
        for ref in refs
        if ref.dataset_type.name == "raw"
    }
    assert raws and raws <= set(graph.datastore_records)  # inputs' records travel in the graph
    # Another instrument of the repository: its name goes into the query, so nothing is planned.
    other = pipetask("qgraph", *build, "--instrument", "OtherCam")
    assert other.exit_code == 1
    assert "the graph is empty" in other.stderr and "instrument = 'OtherCam'" in other.stderr
    unknown = pipetask("qgraph", *build, "--instrument", "lsst.obs.Nope")
    assert unknown.stderr.strip().splitlines() == [
        "error: --instrument lsst.obs.Nope: no such instrument in the repository (its instruments: "
        "DemoCam (quantumgraph.demo.DemoCam), OtherCam (lsst.obs.Other))"
    ]
    refused = pipetask("qgraph", "--qgraph", tmp_path / "g.qgraph", "--instrument", "DemoCam")
    assert refused.exit_code == 2 and "--instrument applies to a graph being built" in refused.stderr
    ran = pipetask(
        "run", *build, "--output-run", "u/me/i/r", "--instrument", "DemoCam", "-q", tmp_path / "r.qgraph"
    )
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "r.qgraph").is_file()
    with Butler(repo, writeable=False) as butler:
        assert len(butler.query_datasets("summary", ["u/me/i"])) == 1


@pytest.fixture(scope="module")
def job_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A demo repository (2 x 2), a graph over it whose calibrate fails on detector 1, and the
    graph's init outputs written: what a batch job finds."""
    top = tmp_path_factory.mktemp("jobs")
    demo.make_demo_repo(top / "repo", 2, 2).close()
    doc = yaml.safe_load(PIPELINE.read_text())
    doc["tasks"]["calibrate"]["config"]["fail_detectors"] = [1]
    failing = top / "failing.yaml"
    failing.write_text(yaml.safe_dump(doc))
    for name, pipeline in (("ok", PIPELINE), ("failing", failing)):
        graph = top / f"{name}.qgraph"
        made = pipetask("qgraph", "-b", top / "repo", "-i", demo.DEFAULTS, "-o", f"u/me/{name}",
                        "-p", pipeline,
                        "-q", graph)  # fmt: skip
        assert made.exit_code == 0, made.output
        assert pipetask("pre-exec-init-qbb", top / "repo", graph).exit_code == 0
    return top / "repo", top / "ok.qgraph", top / "failing.qgraph"


def test_run_qbb_processes_and_summary(job_graph: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, ok, failing = job_graph
    summary = tmp_path / "ok.json"
    done = subprocess.run(
        [script("pipetask"), "run-qbb", repo, ok, "-j", "2", "--summary", summary, "--log-level", "VERBOSE",
         "--log-file", tmp_path / "job.json", "--no-log-tty"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(summary.read_text())
    assert report["status"] == "success" and report["exitCode"] == 0 and report["exceptionInfo"] is None
    assert len(report["quantaReports"]) == 10
    assert {r["status"] for r in report["quantaReports"]} == {"success"}
    assert {r["taskLabel"] for r in report["quantaReports"]} == {"isr", "calibrate", "gather"}
    # Two worker processes ran the quanta (their log records say which process).
    records = [json.loads(line) for line in (tmp_path / "job.json").read_text().splitlines()]
    ran = [r for r in records if r["levelname"] == "VERBOSE" and "done in" in r["message"]]
    assert len(ran) == 10 and len({r["process"] for r in ran}) == 2

    summary = tmp_path / "failing.json"
    failed = pipetask("run-qbb", repo, failing, "--summary", summary)
    assert failed.exit_code == 1
    report = json.loads(summary.read_text())
    assert report["status"] == "failure" and report["exitCode"] == 1
    by_status: dict[str, list[dict[str, Any]]] = {}
    for r in report["quantaReports"]:
        by_status.setdefault(r["status"], []).append(r)
    failures = by_status["failure"]  # calibrate on detector 1, both exposures
    assert [(r["taskLabel"], r["dataId"]["detector"], r["dataId"]["exposure"]) for r in failures] == [
        ("calibrate", 1, 1),
        ("calibrate", 1, 2),
    ]
    for r in failures:
        assert r["exceptionInfo"]["className"] == "QuantumExecutionError"
        assert r["exceptionInfo"]["message"].endswith(
            "task raised RuntimeError: calibration failed on detector 1 (fail_detectors)"
        )
    skipped = by_status["skipped"]
    assert [r["taskLabel"] for r in skipped] == ["gather", "gather"]
    assert all(
        r["exceptionInfo"] is None and "comes from a quantum that failed" in r["reason"] for r in skipped
    )
    assert len(by_status["success"]) == 6
    # A job that cannot start still leaves its summary, saying why.
    broken = pipetask("run-qbb", repo, tmp_path / "missing.qgraph", "--summary", tmp_path / "broken.json")
    assert broken.exit_code == 1
    report = json.loads((tmp_path / "broken.json").read_text())
    assert report["status"] == "failure" and report["quantaReports"] == []
    assert "missing.qgraph" in report["exceptionInfo"]["message"]


def test_run_qbb_takes_comma_separated_node_ids(job_graph: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, ok, _ = job_graph
    with GraphReader(ok) as reader:
        first, second = reader.quantum_ids()[:2]
    summary = tmp_path / "two.json"
    done = pipetask("run-qbb", repo, ok, "--qgraph-node-id", f"{first},{second}", "--summary", summary)
    assert done.exit_code == 0, done.output
    assert [r["quantumId"] for r in json.loads(summary.read_text())["quantaReports"]] == [
        str(first),
        str(second),
    ]

"""Reports built from DAGMan files recorded on the real pool (tests/data/htcondor/runs/), against golden JSON.

Each ``runs/<scenario>`` directory holds what a real run left in its submit directory (the DAG,
``.node_status``, ``.dag.nodes.log``, ``.dag.dagman.out``, rescue DAGs, the plugin's two JSON
files), captured from the one-machine pool:

* ``success``: the demo campaign, every job succeeded;
* ``fail``: calibrate fails on detector 1 (exit code 1): its gathers pruned, the final job ran;
* ``memory``: one calibrate job went over its 100 MB, was held and removed by the policy, and
  succeeded on the retry with 400 MB;
* ``held``: the same, caught while the job was held (DAGMan running);
* ``cancel``: ``bps cancel`` while a job ran (DAGMan removed, the FINAL node's PRE script refused);
* ``restart_pending``: just after ``bps restart``, before the new DAGMan rewrote the status file;
* ``restart``: the restarted run finished (the first nodes log archived as ``nodes.log.<cluster>``).

The schedd's answer about the DAGMan job is faked per scenario (as it was when captured).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from htcondor_golden import DATA, check_json

from bps import WmsError
from bps.wms import JobState, RunReport
from wms_plugins.htcondor import HTCondorService
from wms_plugins.htcondor import _service as service_module
from wms_plugins.htcondor._bindings import DagmanJob
from wms_plugins.htcondor._status import (
    NodeStatus,
    parse_classads,
    parse_dagman_out,
    parse_node_status,
    parse_nodes_log,
)

RUNS = DATA / "runs"
#: (JobStatus, still in the queue) of the DAGMan job when each scenario was captured.
SCHEDD = {
    "success": (4, False),
    "fail": (4, False),
    "memory": (4, False),
    "held": (2, True),
    "cancel": (3, False),
    "restart_pending": (1, True),
    "restart": (4, False),
}


def _fake_schedd(monkeypatch: pytest.MonkeyPatch, status: int | None, in_queue: bool) -> None:
    def query(cluster: int, schedd_name: str) -> DagmanJob:
        return DagmanJob(cluster, status, in_queue)

    monkeypatch.setattr(service_module, "query_dagman", query)


def _report(submit_dir: Path) -> RunReport:
    (report,) = HTCondorService().report(str(submit_dir))
    return report


def _as_json(report: RunReport, submit_dir: Path) -> dict[str, Any]:
    def rel(path: Path | None) -> str | None:
        return None if path is None else str(path.relative_to(submit_dir))

    return {
        "state": report.state.value,
        "message": report.message,
        "extra": {k: v if k != "dag" else Path(v).name for k, v in report.extra.items()},
        "jobs": {
            job.name: {
                "label": job.label,
                "state": job.state.value,
                "attempts": job.attempts,
                "exit_code": job.exit_code,
                "stdout": rel(job.stdout),
                "stderr": rel(job.stderr),
                "message": job.message,
            }
            for job in report.jobs
        },
    }


@pytest.mark.parametrize("scenario", sorted(SCHEDD))
def test_recorded_runs_match_golden_reports(scenario: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_schedd(monkeypatch, *SCHEDD[scenario])
    submit_dir = RUNS / scenario
    check_json(DATA / "reports" / f"{scenario}.json", _as_json(_report(submit_dir), submit_dir))


def _states(report: RunReport) -> dict[str, JobState]:
    return {job.name: job.state for job in report.jobs}


def test_what_the_golden_reports_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """The facts an operator relies on, spelled out (the golden files pin everything else)."""
    _fake_schedd(monkeypatch, 4, False)
    report = _report(RUNS / "success")
    assert report.state is JobState.SUCCEEDED and len(report.jobs) == 38
    assert set(_states(report).values()) == {JobState.SUCCEEDED}

    report = _report(RUNS / "fail")
    assert report.state is JobState.FAILED
    failed = {job.name: job for job in report.jobs if job.state is JobState.FAILED}
    assert sorted(failed) == [f"calibrate_DemoCam_{e}_1" for e in range(1, 5)]
    job = failed["calibrate_DemoCam_1_1"]
    assert (job.exit_code, job.attempts) == (1, 1)
    assert (
        job.stderr is not None
        and job.stderr.name.startswith("calibrate_DemoCam_1_1.")
        and job.stderr.suffix == ".err"
    )
    assert {s for n, s in _states(report).items() if n.startswith("gather")} == {JobState.PRUNED}
    assert _states(report)["finalJob"] is JobState.SUCCEEDED

    report = _report(RUNS / "memory")
    hungry = next(job for job in report.jobs if job.name == "calibrate_DemoCam_1_1")
    assert (report.state, hungry.state, hungry.attempts, hungry.exit_code) == (
        JobState.SUCCEEDED,
        JobState.SUCCEEDED,
        2,
        0,
    )

    _fake_schedd(monkeypatch, 2, True)
    report = _report(RUNS / "held")
    held = next(job for job in report.jobs if job.state is JobState.HELD)
    assert held.name == "calibrate_DemoCam_1_1"
    assert "memory usage 322 MB exceeded request_memory 100 MB" in held.message
    assert report.state is JobState.HELD  # nothing else runs while it is held

    _fake_schedd(monkeypatch, 3, False)
    report = _report(RUNS / "cancel")
    assert report.state is JobState.DELETED and "cancelled" in report.message
    states = _states(report)
    assert (states["calibrate_DemoCam_1_1"], states["gather_DemoCam_1"], states["finalJob"]) == (
        JobState.DELETED,
    ) * 3

    _fake_schedd(monkeypatch, 1, True)
    report = _report(RUNS / "restart_pending")
    states = _states(report)
    assert report.state is JobState.PENDING  # DAGMan queued, nothing submitted yet
    # Only what the rescue DAG marks DONE keeps its state; the final job will run again.
    assert states["finalJob"] is JobState.UNREADY and states["calibrate_DemoCam_1_1"] is JobState.UNREADY
    assert states["calibrate_DemoCam_1_0"] is JobState.SUCCEEDED

    _fake_schedd(monkeypatch, 4, False)
    report = _report(RUNS / "restart")
    assert report.state is JobState.SUCCEEDED and report.extra["submissions"] == "2"
    again = next(job for job in report.jobs if job.name == "calibrate_DemoCam_1_1")
    assert again.attempts == 2  # the first attempt comes from the archived nodes log
    isr = next(job for job in report.jobs if job.name == "isr_DemoCam_1_1")
    assert isr.attempts == 1 and isr.stdout is not None  # ran only in the first submission


def test_without_the_schedd_the_files_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(cluster: int, schedd_name: str) -> DagmanJob:
        raise WmsError("asking the schedd about DAGMan job 1: HTCondorException: connection refused")

    monkeypatch.setattr(service_module, "query_dagman", unreachable)
    report = _report(RUNS / "fail")
    assert report.state is JobState.FAILED and "schedd not reachable" in report.message
    report = _report(RUNS / "held")
    assert report.state is JobState.HELD  # dagman.out has no EXITING line: DAGMan still runs


def test_dagman_gone_leaves_unfinished_jobs_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    submit_dir = tmp_path / "held"
    shutil.copytree(RUNS / "held", submit_dir)
    _fake_schedd(monkeypatch, 4, False)  # DAGMan left the queue although nodes were unfinished
    report = _report(submit_dir)
    assert report.state is JobState.FAILED
    gather = next(job for job in report.jobs if job.name == "gather_DemoCam_1")
    assert gather.state is JobState.FAILED and "DAGMan exited" in gather.message


def test_prepared_but_not_submitted(tmp_path: Path) -> None:
    submit_dir = tmp_path / "s"
    shutil.copytree(RUNS / "success", submit_dir)
    (submit_dir / "htcondor_run.json").write_text(
        '{"format": "skybatch.htcondor.run", "version": "1.0", "name": "u_skyuser_htc_20261126T044308Z", '
        '"submissions": []}'
    )
    for path in submit_dir.glob("*.node_status"):
        path.unlink()
    report = _report(submit_dir)
    assert report.state is JobState.READY and set(_states(report).values()) == {JobState.READY}


# -- the parsers on their own ------------------------------------------------------------------------
def test_classads_truncated_and_comments() -> None:
    text = (
        '[\n  Type = "NodeStatus"; /* c */\n  Node = "a\\"b";\n  L = { "x", 2 };\n  E = x + 1;\n]\n'
        '[\n  Type = "Node'
    )
    ads = parse_classads(text)
    assert ads == [{"Type": "NodeStatus", "Node": 'a"b', "L": ["x", 2], "E": "x + 1"}]


def test_node_status_without_end_is_incomplete() -> None:
    text = (RUNS / "success" / "u_skyuser_htc_20261126T044308Z.node_status").read_text()
    whole = parse_node_status(text)
    assert whole.complete and whole.dag_status == NodeStatus.DONE and len(whole.nodes) == 38
    assert {n.status for n in whole.nodes.values()} == {NodeStatus.DONE}
    cut = parse_node_status(text[: text.index('Type = "StatusEnd"')])
    assert not cut.complete and len(cut.nodes) == 38


def test_nodes_log_torn_last_event_is_ignored() -> None:
    text = (RUNS / "fail" / "u_skyuser_htcfail_20261126T044408Z.dag.nodes.log").read_text()
    nodes = parse_nodes_log(text)
    failed = nodes["calibrate_DemoCam_1_1"]
    assert (failed.exit_code, failed.starts, failed.running) == (1, 1, False)
    last_terminate = text.rindex("\n005 (")
    torn = parse_nodes_log(text[: last_terminate + 60])
    assert (
        sum(1 for n in torn.values() if n.exit_code is not None)
        == sum(1 for n in nodes.values() if n.exit_code is not None) - 1
    )


def test_dagman_out() -> None:
    run = parse_dagman_out((RUNS / "restart" / "u_skyuser_rs_20261126T045730Z.dag.dagman.out").read_text())
    assert run is not None and run.exited and run.exit_status == 0
    first = (RUNS / "fail" / "u_skyuser_htcfail_20261126T044408Z.dag.dagman.out").read_text()
    parsed = parse_dagman_out(first)
    assert (
        parsed is not None
        and parsed.cluster is not None
        and parsed.first_error.startswith("ERROR: the following job(s) failed")
    )
    assert parse_dagman_out("nothing here") is None


def test_a_run_whose_dagman_is_still_queued_is_not_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files that describe a finished DAG (e.g. the previous submission, just after a restart)
    do not make the run FAILED while DAGMan itself is still in the queue."""
    _fake_schedd(monkeypatch, 4, False)
    assert _report(RUNS / "fail").state is JobState.FAILED
    _fake_schedd(monkeypatch, 2, True)
    assert _report(RUNS / "fail").state is JobState.RUNNING

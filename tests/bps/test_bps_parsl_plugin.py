"""The Parsl plugin on real Parsl executors, running small real commands (``python -c``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from bps_testutil import MINIMAL, NOW, python_job, write_yaml

from bps import BpsConfigError, WmsError
from bps.config import BpsConfig, load_bps_config
from bps.wms import JobState, RunReport, RunState, read_state, write_state
from bps.workflow import WorkflowGraph
from wms_plugins.parsl import ParslService


def make_config(cfg_dir: Path, extra: str = "") -> BpsConfig:
    return load_bps_config(
        write_yaml(cfg_dir / "submit.yaml", MINIMAL + extra), now=NOW, environ={"USER": "alice"}
    )


def logged(name: str, body: str = "") -> str:
    """Python code that appends start/end lines to order.log around ``body`` (run in the submit dir)."""
    return textwrap.dedent(f"""
        import os, sys
        def log(what):
            with open("order.log", "a") as f:
                f.write(what + " {name}\\n")
        log("start")
        {body}
        log("end")
    """)


def run_workflow(
    cfg_dir: Path, submit_dir: Path, wf: WorkflowGraph, extra: str = ""
) -> tuple[str, RunReport]:
    service = ParslService()
    submit_dir.mkdir(parents=True, exist_ok=True)
    wms_workflow = service.prepare(make_config(cfg_dir, extra), wf, submit_dir)
    run_id = service.submit(wms_workflow)
    (report,) = service.report(run_id)
    return run_id, report


def mixed_workflow() -> WorkflowGraph:
    """init -> a_1 -> b_1; init -> a_2 (fails) -> b_2 -> c_1; init -> flaky (2nd try ok); init -> doomed."""
    final_code = "open('final.txt', 'w').write(' '.join(sorted(os.listdir('.'))))"
    flaky_code = "if not os.path.exists('flag'): open('flag', 'w'); sys.exit(5)"
    wf = WorkflowGraph("mixed")
    wf.add_jobs(
        [
            python_job(
                "pipetaskInit", "pipetaskInit", logged("pipetaskInit", "open('init.txt', 'w')"), is_init=True
            ),
            python_job("a_1", "a", logged("a_1", "assert os.path.exists('init.txt'); open('a_1.txt', 'w')")),
            python_job("a_2", "a", logged("a_2", "sys.exit(3)")),
            python_job("b_1", "b", logged("b_1", "assert os.path.exists('a_1.txt'); open('b_1.txt', 'w')")),
            python_job("b_2", "b", logged("b_2", "open('b_2.txt', 'w')")),
            python_job("c_1", "c", logged("c_1", "open('c_1.txt', 'w')")),
            python_job("flaky", "c", logged("flaky", flaky_code), retries=2),
            python_job("doomed", "c", "import sys; print('doomed says hi'); sys.exit(7)", retries=1),
            python_job("finalJob", "finalJob", logged("finalJob", final_code), is_final=True),
        ]
    )
    wf.add_dependencies(
        [
            ("pipetaskInit", "a_1"),
            ("pipetaskInit", "a_2"),
            ("a_1", "b_1"),
            ("a_2", "b_2"),
            ("b_2", "c_1"),
            ("pipetaskInit", "flaky"),
            ("pipetaskInit", "doomed"),
            ("b_1", "finalJob"),
            ("c_1", "finalJob"),
            ("flaky", "finalJob"),
            ("doomed", "finalJob"),
        ]
    )
    return wf


def states(report: RunReport) -> dict[str, JobState]:
    return {job.name: job.state for job in report.jobs}


def check_order(submit_dir: Path, wf: WorkflowGraph) -> None:
    lines = (submit_dir / "order.log").read_text().splitlines()
    first_start: dict[str, int] = {}
    last_end: dict[str, int] = {}
    for i, line in enumerate(lines):
        what, name = line.split()
        if what == "start":
            first_start.setdefault(name, i)
        else:
            last_end[name] = i
    for parent, child in wf.edges():
        if child in first_start and parent in first_start:  # pruned parents never start
            assert parent in last_end and last_end[parent] < first_start[child], (parent, child, lines)
    final = wf.final_job
    assert final is not None
    assert all(end < first_start[final.name] for name, end in last_end.items() if name != final.name)


def test_failures_prune_descendants_and_the_final_job_still_runs(cfg_dir: Path, tmp_path: Path) -> None:
    submit_dir = tmp_path / "submit"
    wf = mixed_workflow()
    run_id, report = run_workflow(cfg_dir, submit_dir, wf)
    assert run_id == str(submit_dir)
    assert states(report) == {
        "pipetaskInit": JobState.SUCCEEDED,
        "a_1": JobState.SUCCEEDED,
        "b_1": JobState.SUCCEEDED,
        "a_2": JobState.FAILED,
        "b_2": JobState.PRUNED,
        "c_1": JobState.PRUNED,
        "flaky": JobState.SUCCEEDED,
        "doomed": JobState.FAILED,
        "finalJob": JobState.SUCCEEDED,
    }
    assert report.state is JobState.FAILED
    jobs = {job.name: job for job in report.jobs}
    assert (jobs["a_2"].exit_code, jobs["a_2"].attempts) == (3, 1)
    assert (jobs["doomed"].exit_code, jobs["doomed"].attempts) == (7, 2)  # one retry
    assert (jobs["flaky"].exit_code, jobs["flaky"].attempts) == (0, 2)
    assert jobs["b_2"].attempts == 0 and "parent" in jobs["b_2"].message
    assert not (submit_dir / "b_2.txt").exists() and not (submit_dir / "c_1.txt").exists()
    assert "b_1.txt" in (submit_dir / "final.txt").read_text()
    check_order(submit_dir, wf)

    # Per-job logs, one banner per attempt, the command's own output after it.
    out = jobs["doomed"].stdout
    assert out == submit_dir / "logs" / "c" / "doomed.out"
    text = out.read_text()
    assert text.count("# skybatch: doomed attempt started") == 2 and "doomed says hi" in text
    assert jobs["doomed"].stderr is not None and jobs["doomed"].stderr.exists()

    # The state file is small versioned JSON, and says nobody is running the workflow any more.
    doc = json.loads((submit_dir / "state.json").read_text())
    assert doc["format"] == "skybatch.bps.state" and doc["version"].startswith("1.")
    assert doc["state"] == "FAILED" and doc["pid"] is None
    assert doc["jobs"]["doomed"] == {"label": "c", "state": "FAILED", "attempts": 2, "exit_code": 7}
    assert (submit_dir / "parsl").is_dir()  # Parsl's run dir lives in the submit dir


def test_all_succeed(cfg_dir: Path, tmp_path: Path) -> None:
    wf = WorkflowGraph("ok")
    wf.add_jobs(
        [
            python_job("pipetaskInit", "pipetaskInit", "pass", is_init=True),
            *(python_job(f"t_{i}", "t", f"open('t{i}', 'w')") for i in range(5)),
            python_job(
                "finalJob",
                "finalJob",
                "import os; assert len([f for f in os.listdir('.') if f.startswith('t')]) == 5",
                is_final=True,
            ),
        ]
    )
    wf.add_dependencies([("pipetaskInit", f"t_{i}") for i in range(5)])
    wf.add_dependencies([(f"t_{i}", "finalJob") for i in range(5)])
    _, report = run_workflow(cfg_dir, tmp_path / "s", wf, "site: {local: {maxThreads: 3}}\n")
    assert report.state is JobState.SUCCEEDED
    assert set(states(report).values()) == {JobState.SUCCEEDED}


def test_final_job_when_success_is_pruned_after_a_failure(cfg_dir: Path, tmp_path: Path) -> None:
    wf = WorkflowGraph("w")
    wf.add_jobs(
        [
            python_job("bad", "t", "raise SystemExit(1)"),
            python_job("finalJob", "finalJob", "open('final.txt', 'w')", is_final=True),
        ]
    )
    wf.add_dependencies([("bad", "finalJob")])
    wf.final_job_when = wf.final_job_when.SUCCESS
    submit_dir = tmp_path / "s"
    _, report = run_workflow(cfg_dir, submit_dir, wf)
    assert states(report) == {"bad": JobState.FAILED, "finalJob": JobState.PRUNED}
    assert not (submit_dir / "final.txt").exists()


def test_retry_unless_exit_stops_retries_on_those_codes(cfg_dir: Path, tmp_path: Path) -> None:
    wf = WorkflowGraph("w")
    wf.add_jobs(
        [
            python_job("fatal", "t", "raise SystemExit(9)", retries=3),
            python_job("transient", "t", "raise SystemExit(5)", retries=2),
        ]
    )
    for name in ("fatal", "transient"):
        wf.job(name).retry_unless_exit = (2, 9)
    _, report = run_workflow(cfg_dir, tmp_path / "s", wf)
    jobs = {job.name: job for job in report.jobs}
    assert (jobs["fatal"].state, jobs["fatal"].exit_code, jobs["fatal"].attempts) == (JobState.FAILED, 9, 1)
    assert (jobs["transient"].exit_code, jobs["transient"].attempts) == (5, 3)


def test_missing_program(cfg_dir: Path, tmp_path: Path) -> None:
    wf = WorkflowGraph("w")
    wf.add_job(python_job("nope", "t", ""))
    wf.job("nope").command = ["no-such-program-for-skybatch"]
    _, report = run_workflow(cfg_dir, tmp_path / "s", wf)
    (job,) = report.jobs
    assert (job.state, job.exit_code) == (JobState.FAILED, 127)
    assert job.stderr is not None and "command not found" in job.stderr.read_text()


def test_restart_reruns_only_what_did_not_succeed(cfg_dir: Path, tmp_path: Path) -> None:
    count = (
        "import pathlib; p = pathlib.Path('{0}.count'); p.write_text(str(int(p.read_text() or 0) + 1) "
        "if p.exists() else '1')"
    )
    wf = WorkflowGraph("w")
    wf.add_jobs(
        [
            python_job("pre", "t", count.format("pre")),
            python_job("gate", "t", "import os, sys; sys.exit(0 if os.path.exists('allow') else 4)"),
            python_job("after", "t", count.format("after")),
            python_job("ok", "t", count.format("ok")),
            python_job("finalJob", "finalJob", count.format("final"), is_final=True),
        ]
    )
    wf.add_dependencies([("pre", "gate"), ("gate", "after"), ("after", "finalJob"), ("ok", "finalJob")])
    submit_dir = tmp_path / "s"
    service = ParslService()
    run_id = service.submit(service.prepare(make_config(cfg_dir), wf, submit_dir))
    from bps.workflow import write_workflow

    write_workflow(submit_dir / "workflow.json", wf)  # what bps core writes at prepare
    first = states(service.report(run_id)[0])
    assert first["gate"] is JobState.FAILED
    assert (first["after"], first["ok"]) == (JobState.PRUNED, JobState.SUCCEEDED)

    (submit_dir / "allow").touch()
    assert service.restart(run_id) == run_id
    (report,) = service.report(run_id)
    assert report.state is JobState.SUCCEEDED
    attempts = {job.name: job.attempts for job in report.jobs}
    assert attempts == {"pre": 1, "gate": 2, "after": 1, "ok": 1, "finalJob": 2}
    assert (submit_dir / "ok.count").read_text() == (submit_dir / "pre.count").read_text() == "1"
    assert (submit_dir / "final.count").read_text() == "2"  # the merge runs after every attempt


def test_high_throughput_executor(cfg_dir: Path, tmp_path: Path) -> None:
    submit_dir = tmp_path / "s"
    wf = mixed_workflow()
    _, report = run_workflow(cfg_dir, submit_dir, wf, "site: {local: {executor: htex, maxWorkers: 2}}\n")
    got = states(report)
    assert got["a_2"] is JobState.FAILED and got["c_1"] is JobState.PRUNED
    assert got["b_1"] is JobState.SUCCEEDED and got["finalJob"] is JobState.SUCCEEDED
    assert {job.name: job.attempts for job in report.jobs}["doomed"] == 2
    check_order(submit_dir, wf)


def test_prepare_validates_the_site_and_records_a_ready_run(cfg_dir: Path, tmp_path: Path) -> None:
    wf = WorkflowGraph("w")
    wf.add_job(python_job("j", "t", "pass"))
    service = ParslService()
    wms_workflow = service.prepare(make_config(cfg_dir), wf, tmp_path)
    assert wms_workflow.run_id == str(tmp_path)
    (report,) = service.report(str(tmp_path))
    assert report.state is JobState.READY and states(report) == {"j": JobState.READY}
    assert json.loads((tmp_path / "parsl_site.json").read_text())["max_threads"] == 2
    with pytest.raises(BpsConfigError, match=r"site\.local\.maxTreads: unknown key .*\(in .*submit\.yaml\)"):
        service.prepare(make_config(cfg_dir, "site: {local: {maxTreads: 4}}\n"), wf, tmp_path)
    with pytest.raises(BpsConfigError, match=r"site\.local\.maxThreads: expected a positive integer"):
        service.prepare(make_config(cfg_dir, "site: {local: {maxThreads: 0}}\n"), wf, tmp_path)


def test_report_notices_a_dead_submit_process(tmp_path: Path) -> None:
    import socket

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    state = RunState(str(tmp_path), "parsl", {}, JobState.RUNNING, pid=proc.pid, host=socket.gethostname())
    write_state(tmp_path / "state.json", state)
    (report,) = ParslService().report(str(tmp_path))
    assert report.state is JobState.FAILED and "is gone" in report.message
    with pytest.raises(WmsError, match="already gone"):
        ParslService().cancel(str(tmp_path))


_CANCEL_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {testdir!r})
from bps_testutil import python_job
from bps.config import SiteConfig
from bps.workflow import WorkflowGraph
from wms_plugins.parsl import ParslService, ParslWorkflow, ParslSiteSettings

wf = WorkflowGraph("w")
wf.add_jobs([python_job("sleeper", "t", "import time; time.sleep(120)"),
             python_job("quick", "t", "pass"),
             python_job("child", "t", "pass"),
             python_job("finalJob", "finalJob", "open('final.txt', 'w')", is_final=True)])
wf.add_dependencies([("sleeper", "child"), ("child", "finalJob"), ("quick", "finalJob")])
service = ParslService()
submit_dir = Path({submit_dir!r})
submit_dir.mkdir(parents=True, exist_ok=True)
service.submit(ParslWorkflow("w", submit_dir, wf, str(submit_dir), ParslSiteSettings()))
"""


def test_cancel_stops_a_running_workflow(tmp_path: Path) -> None:
    submit_dir = tmp_path / "s"
    script = _CANCEL_SCRIPT.format(testdir=str(Path(__file__).parent), submit_dir=str(submit_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state_file = submit_dir / "state.json"
            if state_file.exists() and read_state(state_file).jobs["sleeper"].state is JobState.RUNNING:
                break
            assert proc.poll() is None, "the workflow process ended early"
            time.sleep(0.2)
        else:
            pytest.fail("the sleeper job never showed as RUNNING")
        assert ParslService().report(str(submit_dir))[0].state is JobState.RUNNING
        ParslService().cancel(str(submit_dir))
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    (report,) = ParslService().report(str(submit_dir))
    got = states(report)
    assert report.state is JobState.DELETED
    assert got["quick"] is JobState.SUCCEEDED
    assert got["sleeper"] is got["child"] is got["finalJob"] is JobState.DELETED
    assert not (submit_dir / "final.txt").exists()
    with pytest.raises(WmsError, match="not running"):
        ParslService().cancel(str(submit_dir))

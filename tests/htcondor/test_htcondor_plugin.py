"""The htcondor WMS plugin on the real pool: `bps submit/report/cancel/restart` inside the chroot.

Five scenarios, each a real DAG of real ``pipetask run-qbb`` jobs over a small demo repository,
submitted by the pool user with ``bps`` exactly as an operator would:

1. a clean run: every job SUCCEEDED and the outputs are merged into the output collection;
2. a quantum fails: its descendants are PRUNED, everything else is merged, the report names the
   exit code and the log file;
3. a job uses more memory than it asked for: held, removed, retried with the memory multiplied,
   and succeeds;
4. ``bps cancel``: the DAGMan job is removed and unfinished jobs are DELETED;
5. ``bps restart`` after a failure: the run completes WITHOUT running the jobs that had succeeded
   (each quantum appends a line to its own marker file; the test counts them).

Test tasks live in ``skybatch_htc_tasks.py`` beside this file; the jobs import it through
``PYTHONPATH``, which ``bps`` passes to DAGMan and DAGMan to the jobs.  Every wait is bounded and
says what it was waiting for when it gives up.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import pytest
from pool import PROJECT_MOUNT, Pool, WorkDir

pytestmark = pytest.mark.htcondor

TASKS_PATH = str(PROJECT_MOUNT / "tests" / "htcondor")
POLL_SECONDS = 1.5
RUN_TIMEOUT = 240.0
#: Prints one run's report as JSON (what the assertions read; `bps report` text is checked too).
REPORT_PY = """\
import json, sys
from bps._report import fetch_run_report
record, report = fetch_run_report(sys.argv[1])
print(json.dumps({
    "state": report.state.value,
    "message": report.message,
    "extra": report.extra,
    "wms_run_id": record.wms_run_id,
    "jobs": {
        j.name: {"label": j.label, "state": j.state.value, "exit_code": j.exit_code,
                 "attempts": j.attempts, "stderr": str(j.stderr) if j.stderr else None,
                 "message": j.message}
        for j in report.jobs
    },
}))
"""
#: Prints {dataset type: number of datasets} found in one collection.
DATASETS_PY = """\
import json, sys
from butler import Butler
butler = Butler(sys.argv[1], writeable=False)
print(json.dumps({t: len(butler.query_datasets(t, sys.argv[2])) for t in sys.argv[3:]}))
"""


class Campaign:
    """One scenario's directory in the chroot: a demo repo, a pipeline, a submit YAML, helpers."""

    def __init__(self, pool: Pool, work: WorkDir, exposures: int, detectors: int) -> None:
        self.pool = pool
        self.work = work
        self.exposures, self.detectors = exposures, detectors
        work.write("report.py", REPORT_PY)
        work.write("datasets.py", DATASETS_PY)
        self.markers = work.inside / "markers"
        self.run(["mkdir", "-p", str(self.markers)])
        self.run(
            ["butler", "make-demo-repo", "repo", "--exposures", str(exposures), "--detectors", str(detectors)]
        )

    @property
    def repo(self) -> PurePosixPath:
        return self.work.inside / "repo"

    def run(
        self, argv: list[str], *, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None
    ) -> str:
        done = self.pool.run_as_user(
            argv, cwd=self.work.inside, env={"PYTHONPATH": TASKS_PATH, **(env or {})}, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done.stdout + done.stderr

    def write_configs(self, pipeline: str, submit_extra: str = "") -> None:
        self.work.write("pipeline.yaml", textwrap.dedent(pipeline).lstrip())
        submit = """\
            pipelineYaml: pipeline.yaml
            payload:
              payloadName: htc-test
              butlerConfig: repo
              inCollection: DemoCam/defaults
              output: "u/{operator}/htc"
            wmsServiceClass: htcondor
            computeSite: testpool
            site:
              testpool:
                nodeStatusInterval: 1
                maxIdle: 50
            requestMemory: 256
            """
        self.work.write("submit.yaml", textwrap.dedent(submit) + textwrap.dedent(submit_extra))

    def submit(self, env: dict[str, str] | None = None) -> str:
        out = self.run(["bps", "submit", "submit.yaml"], env=env)
        for line in out.splitlines():
            if line.startswith("Run id:"):
                return line.split()[2]
        raise AssertionError(f"bps submit printed no run id:\n{out}")

    def report(self, run_id: str) -> dict[str, Any]:
        return json.loads(self.run(["python", "report.py", run_id]))

    def wait(
        self, run_id: str, what: str, done: Callable[[dict[str, Any]], bool], timeout: float = RUN_TIMEOUT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        report = self.report(run_id)
        while not done(report):
            if time.monotonic() > deadline:
                states = {name: job["state"] for name, job in report["jobs"].items()}
                queue = self.run(["condor_q", "-nobatch"], check=False)
                raise AssertionError(
                    f"run {run_id}: still waiting for {what} after {timeout:.0f} s; run state "
                    f"{report['state']} ({report['message']}); jobs {states}\n{queue}"
                )
            time.sleep(POLL_SECONDS)
            report = self.report(run_id)
        return report

    def wait_finished(self, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        return self.wait(
            run_id,
            "the run to finish",
            lambda r: (
                r["state"] in ("SUCCEEDED", "FAILED", "DELETED")
                and all(
                    j["state"] in ("SUCCEEDED", "FAILED", "PRUNED", "DELETED") for j in r["jobs"].values()
                )
            ),
            timeout,
        )

    def datasets(self, collection: str, *types: str) -> dict[str, int]:
        return json.loads(self.run(["python", "datasets.py", str(self.repo), collection, *types]))

    def marker_counts(self) -> dict[str, int]:
        host = self.pool.host_path(self.markers)
        return {p.stem: len(p.read_text().splitlines()) for p in sorted(host.glob("*.log"))}


def _states(report: dict[str, Any]) -> dict[str, str]:
    return {name: job["state"] for name, job in report["jobs"].items()}


def _by_label(report: dict[str, Any], label: str) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in report["jobs"].items() if job["label"] == label}


def _detector(name: str) -> int:
    return int(name.rsplit("_", 1)[1])


DEMO_PIPELINE = """\
    tasks:
      isr: quantumgraph.demo.tasks.Isr
      calibrate:
        class: quantumgraph.demo.tasks.Calibrate
        config:
          fail_detectors: {fail}
      gather: quantumgraph.demo.tasks.Gather
    """


def test_clean_run_succeeds_and_outputs_are_merged(condor_pool: Pool) -> None:
    campaign = Campaign(condor_pool, condor_pool.make_workdir("htc_clean"), exposures=2, detectors=2)
    # LSST's job options: every job logs VERBOSE in the long format, and JSON lines to its own file.
    options = '"--long-log --log-level=VERBOSE --log-file {jobName}.json --log-label job={jobName}"'
    campaign.write_configs(
        DEMO_PIPELINE.format(fail="[]"), f"numberOfRetries: 1\ndefaultPreCmdOpts: {options}\n"
    )
    run_id = campaign.submit()
    report = campaign.wait_finished(run_id)
    assert report["state"] == "SUCCEEDED", report
    assert set(_states(report).values()) == {"SUCCEEDED"}
    assert len(report["jobs"]) == 1 + 2 * 4 + 2 + 1
    text = campaign.run(["bps", "report", "--id", run_id])
    assert f"Run {run_id}: SUCCEEDED" in text
    listing = campaign.run(["bps", "report"])
    assert run_id in listing and "SUCCEEDED" in listing
    counts = campaign.datasets("u/skybatch/htc", "postISR", "calexp", "summary")
    assert counts == {"postISR": 4, "calexp": 4, "summary": 2}
    # One DAG file for the whole run, no submit file per job.
    submit_dir = condor_pool.host_path(report["wms_run_id"])
    (dag,) = submit_dir.glob("*.dag")
    assert [p.name for p in submit_dir.rglob("*.sub")] == [dag.name + ".condor.sub"]  # DAGMan's own
    job_logs = sorted(submit_dir.glob("*_DemoCam_*.json"))
    assert len(job_logs) == 2 * 4 + 2
    for path in job_logs:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["levelname"] for r in records if r["name"] == "quantumgraph._execution"] == ["VERBOSE"]
        assert {r["MDC"]["job"] for r in records} == {path.stem}
    # What a script asks: is the schedd there (bps ping), and how did the run end (bps status:
    # LSST's WmsStates number, 8 = SUCCEEDED).
    for argv, code, out in (
        (["bps", "ping", "--wms-service-class", "htcondor"], 0, "Ping successful (htcondor)"),
        (["bps", "status", "--id", run_id], 8, "SUCCEEDED"),
    ):
        done = condor_pool.run_as_user(argv, cwd=campaign.work.inside, timeout=120)
        assert done.returncode == code and out in done.stdout, (argv, done.stdout, done.stderr)


def test_failed_quantum_prunes_descendants_and_the_rest_is_merged(condor_pool: Pool) -> None:
    campaign = Campaign(condor_pool, condor_pool.make_workdir("htc_fail"), exposures=2, detectors=2)
    campaign.write_configs(DEMO_PIPELINE.format(fail="[1]"))
    run_id = campaign.submit()
    report = campaign.wait_finished(run_id)
    assert report["state"] == "FAILED"
    calibrate = _by_label(report, "calibrate")
    for name, job in calibrate.items():
        if _detector(name) == 1:
            assert (job["state"], job["exit_code"], job["attempts"]) == ("FAILED", 1, 1), job
            stderr = condor_pool.host_path(job["stderr"])
            assert "fail_detectors" in stderr.read_text(), stderr
        else:
            assert job["state"] == "SUCCEEDED"
    assert {job["state"] for job in _by_label(report, "gather").values()} == {"PRUNED"}
    assert {job["state"] for job in _by_label(report, "isr").values()} == {"SUCCEEDED"}
    assert report["jobs"]["finalJob"]["state"] == "SUCCEEDED"
    text = campaign.run(["bps", "report", "--id", run_id])
    assert "FAILED: exit code 1" in text and ".err" in text
    assert campaign.datasets("u/skybatch/htc", "postISR", "calexp", "summary") == {
        "postISR": 4,
        "calexp": 2,
        "summary": 0,
    }


def test_memory_hungry_job_is_retried_with_more_memory(condor_pool: Pool) -> None:
    campaign = Campaign(condor_pool, condor_pool.make_workdir("htc_memory"), exposures=1, detectors=2)
    campaign.write_configs(
        f"""\
        tasks:
          isr: quantumgraph.demo.tasks.Isr
          calibrate:
            class: skybatch_htc_tasks.HungryCalibrate
            config:
              marker_dir: {campaign.markers}
              hungry_detectors: [1]
              hungry_mb: 300
              hungry_seconds: 15
          gather: quantumgraph.demo.tasks.Gather
        """,
        """\
        pipetask:
          calibrate:
            requestMemory: 100
            memoryMultiplier: 4
        """,
    )
    run_id = campaign.submit()
    # The schedd removes the held job at its next PERIODIC_EXPR_INTERVAL (60 s by default).
    report = campaign.wait_finished(run_id, timeout=RUN_TIMEOUT + 60)
    assert report["state"] == "SUCCEEDED", report
    hungry = report["jobs"]["calibrate_DemoCam_1_1"]
    assert hungry["attempts"] == 2, hungry
    assert report["jobs"]["calibrate_DemoCam_1_0"]["attempts"] == 1
    assert campaign.marker_counts() == {"calibrate_1_0": 1, "calibrate_1_1": 2}
    nodes_log = next(condor_pool.host_path(report["wms_run_id"]).glob("*.dag.nodes.log")).read_text()
    assert "skybatch: memory usage" in nodes_log and "exceeded request_memory 100 MB" in nodes_log


def test_cancel_removes_the_dag_and_unfinished_jobs_are_deleted(condor_pool: Pool) -> None:
    campaign = Campaign(condor_pool, condor_pool.make_workdir("htc_cancel"), exposures=1, detectors=2)
    campaign.write_configs(
        """\
        tasks:
          isr: quantumgraph.demo.tasks.Isr
          calibrate:
            class: skybatch_htc_tasks.HungryCalibrate
            config:
              hungry_detectors: [1]
              hungry_mb: 10
              hungry_seconds: 600
          gather: quantumgraph.demo.tasks.Gather
        """
    )
    run_id = campaign.submit()
    campaign.wait(
        run_id, "the slow job to run", lambda r: r["jobs"]["calibrate_DemoCam_1_1"]["state"] == "RUNNING"
    )
    out = campaign.run(["bps", "cancel", "--id", run_id])
    assert f"Asked run {run_id} to stop" in out
    report = campaign.wait_finished(run_id, timeout=90)
    assert report["state"] == "DELETED", report
    states = _states(report)
    assert states["calibrate_DemoCam_1_1"] == "DELETED"
    assert states["gather_DemoCam_1"] == "DELETED"
    assert states["finalJob"] == "DELETED"  # a cancelled run does not merge
    assert states["calibrate_DemoCam_1_0"] == "SUCCEEDED"
    cluster = report["extra"]["dagman_cluster"]
    deadline = time.monotonic() + 60
    while cluster in (queue := campaign.run(["condor_q", "-af", "ClusterId", "DAGManJobId"])).split():
        assert time.monotonic() < deadline, (
            f"DAGMan job {cluster} still queued 60 s after the cancel:\n{queue}"
        )
        time.sleep(POLL_SECONDS)
    again = campaign.run(["bps", "cancel", "--id", run_id], check=False)
    assert "is not running" in again


def test_restart_after_a_failure_does_not_rerun_succeeded_jobs(condor_pool: Pool) -> None:
    campaign = Campaign(condor_pool, condor_pool.make_workdir("htc_restart"), exposures=2, detectors=2)
    flag = campaign.work.inside / "FAIL"
    campaign.run(["touch", str(flag)])
    campaign.write_configs(
        f"""\
        tasks:
          isr:
            class: skybatch_htc_tasks.MarkedIsr
            config:
              marker_dir: {campaign.markers}
          calibrate:
            class: skybatch_htc_tasks.FlakyCalibrate
            config:
              marker_dir: {campaign.markers}
              flaky_detectors: [1]
              fail_flag: {flag}
          gather:
            class: skybatch_htc_tasks.MarkedGather
            config:
              marker_dir: {campaign.markers}
        """
    )
    run_id = campaign.submit()
    first = campaign.wait_finished(run_id)
    assert first["state"] == "FAILED"
    assert {n for n, s in _states(first).items() if s == "FAILED"} == {
        "calibrate_DemoCam_1_1",
        "calibrate_DemoCam_2_1",
    }
    before = campaign.marker_counts()
    assert before == {f"{t}_{e}_{d}": 1 for t in ("isr", "calibrate") for e in (1, 2) for d in (0, 1)}

    campaign.run(["rm", str(flag)])
    out = campaign.run(["bps", "restart", "--id", run_id])
    assert f"Restarted run {run_id}" in out
    report = campaign.wait_finished(run_id)
    assert report["state"] == "SUCCEEDED", report
    after = campaign.marker_counts()
    rerun = {name for name in after if after[name] != before.get(name, 0)}
    # Only the two failed quanta ran again, and the gathers that had been pruned ran once.
    assert rerun == {"calibrate_1_1", "calibrate_2_1", "gather_1_x", "gather_2_x"}, after
    assert after["calibrate_1_1"] == after["calibrate_2_1"] == 2
    assert all(after[f"isr_{e}_{d}"] == 1 for e in (1, 2) for d in (0, 1))
    # The first attempt of the failed jobs is still in the report (DAGMan truncates its nodes log).
    assert report["jobs"]["calibrate_DemoCam_1_1"]["attempts"] == 2
    assert report["extra"]["submissions"] == "2"
    assert campaign.datasets("u/skybatch/htc", "calexp", "summary") == {"calexp": 4, "summary": 2}


def test_environment_key_reaches_jobs_and_unlisted_shell_variables_do_not(condor_pool: Pool) -> None:
    """What reaches an HTCondor job (docs/bps.md "Job environment"): the variables listed under
    ``environment:`` (values from the submitting shell at submit time), and DAGMan's short list;
    a variable merely exported in the shell that ran ``bps submit`` does not."""
    campaign = Campaign(condor_pool, condor_pool.make_workdir("htc_env"), exposures=1, detectors=1)
    extra = """\
        runQuantumCommand: /usr/bin/env SKY_ATTEMPT={wmsAttemptNum} /usr/bin/env
        environment:
          SKY_LISTED: "listed-{payloadName}"
          SKY_FROM_SHELL: "${SKY_SHELL_ONLY}"
        """
    campaign.write_configs(DEMO_PIPELINE.format(fail="[]"), extra)
    run_id = campaign.submit(env={"SKY_SHELL_ONLY": "from-shell", "SKY_NOT_LISTED": "exported"})
    report = campaign.wait_finished(run_id)
    assert report["state"] == "SUCCEEDED", report
    submit_dir = condor_pool.host_path(report["wms_run_id"])
    (out,) = (submit_dir / "logs" / "isr").glob("isr_*.out")
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["SKY_LISTED"] == "listed-htc-test" and env["SKY_FROM_SHELL"] == "from-shell"
    assert "SKY_NOT_LISTED" not in env and "SKY_SHELL_ONLY" not in env
    assert env["SKY_ATTEMPT"] == "0"  # {wmsAttemptNum}: DAGMan's $(RETRY), 0 on the first attempt

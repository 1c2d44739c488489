"""LSST's options on ``bps report`` and ``bps cancel``, and ``bps status`` / ``bps ping``, whose exit
codes a script tests (LSST's values: ctrl_bps's ``WmsStates`` for status, 0/1 for ping).

Runs are recorded in the runs index as ``bps submit`` records them, for the test plugin
(``bps_fake_wms.FakeService``), which keeps each run's state in its submit directory.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bps._runs import RunRecord, record_run
from bps.cli import main


def bps(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _run(tmp_path: Path, run_id: str, operator: str, state: str, days_ago: float = 0.0) -> RunRecord:
    """A recorded run of the test plugin in ``state``, submitted ``days_ago`` days ago."""
    submit_dir = tmp_path / "submit" / run_id
    submit_dir.mkdir(parents=True)
    (submit_dir / "fake.json").write_text(json.dumps({"isr_1": "isr", "finalJob": "finalJob"}))
    (submit_dir / "fake.submitted").write_text(state)
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days_ago)
    record = RunRecord(
        run_id=run_id, submit_dir=str(submit_dir), wms_service_class="bps_fake_wms.FakeService",
        wms_run_id=f"fake:{submit_dir}", submit_time=when.isoformat(timespec="seconds"), operator=operator,
        payload_name="demo", butler_config="repo", output=f"u/{operator}/demo",
        output_run=f"u/{operator}/demo/r",
    )  # fmt: skip
    record_run(record)
    return record


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, RunRecord]:
    return {
        "a1": _run(tmp_path, "aaaa0001", "alice", "RUNNING"),
        "a2": _run(tmp_path, "aaaa0002", "alice", "SUCCEEDED", days_ago=10),
        "b1": _run(tmp_path, "bbbb0001", "bob", "PENDING", days_ago=1),
    }


def _listed(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()]


def test_report_user_hist_and_global(runs: dict[str, RunRecord]) -> None:
    assert sorted(_listed(bps("report"))) == ["aaaa0001", "aaaa0002", "bbbb0001"]
    assert sorted(_listed(bps("report", "--user", "alice"))) == ["aaaa0001", "aaaa0002"]
    assert sorted(_listed(bps("report", "--hist", "2"))) == ["aaaa0001", "bbbb0001"]
    assert _listed(bps("report", "--user", "alice", "--hist", "0.5", "--global")) == ["aaaa0001"]
    mine = bps("report", "--id", "aaaa0001", "--user", "alice", "--no-global")
    assert mine.exit_code == 0 and "Run aaaa0001: RUNNING" in mine.stdout
    theirs = bps("report", "--id", "bbbb0001", "--user", "alice")
    assert theirs.exit_code == 2
    assert "error: run bbbb0001 belongs to bob, not to --user alice" in theirs.stderr


def test_cancel_by_user_and_require_bps(runs: dict[str, RunRecord], tmp_path: Path) -> None:
    result = bps("cancel", "--user", "alice", "--require-bps", "--global")
    assert result.exit_code == 0, result.output
    # Only alice's unfinished run: the finished one stays SUCCEEDED, bob's is untouched.
    assert result.stdout.splitlines() == ["Asked run aaaa0001 to stop."]
    states = {
        rid: (tmp_path / "submit" / rid / "fake.submitted").read_text()
        for rid in ("aaaa0001", "aaaa0002", "bbbb0001")
    }
    assert states == {"aaaa0001": "DELETED", "aaaa0002": "SUCCEEDED", "bbbb0001": "PENDING"}
    again = bps("cancel", "--user", "alice", "--skip-require-bps")
    assert again.exit_code == 0 and again.stdout.strip() == "No unfinished runs of user alice."
    refused = bps("cancel", "--id", "bbbb0001", "--user", "alice")
    assert (
        refused.exit_code == 2
        and (tmp_path / "submit" / "bbbb0001" / "fake.submitted").read_text() == "PENDING"
    )
    nothing = bps("cancel")
    assert nothing.exit_code == 2 and "give --id RUN or --user USER" in nothing.stderr


def _script() -> str:
    exe = shutil.which("bps", path=os.path.dirname(sys.executable))
    assert exe is not None, "console script bps is not installed"
    return exe


def test_status_exit_codes_are_lsst_states(runs: dict[str, RunRecord], tmp_path: Path) -> None:
    # A real process, as a script runs it; the test plugin is found on PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    expected = {"aaaa0001": ("RUNNING", 5), "aaaa0002": ("SUCCEEDED", 8), "bbbb0001": ("PENDING", 4)}
    for run_id, (name, code) in expected.items():
        done = subprocess.run(
            [_script(), "status", "--id", run_id], capture_output=True, text=True, env=env, timeout=120
        )
        assert (done.stdout.strip(), done.returncode) == (name, code), done.stderr
    bps("cancel", "--id", "bbbb0001")
    assert bps("status", "--id", "bbbb0", "--hist", "1", "--global").exit_code == 6  # DELETED, by prefix
    (tmp_path / "submit" / "aaaa0001" / "fake.submitted").write_text("FAILED")
    assert bps("status", "--id", "aaaa0001").exit_code == 9
    (tmp_path / "submit" / "aaaa0001" / "fake.submitted").write_text("HELD")
    assert bps("status", "--id", "aaaa0001").exit_code == 7
    unknown = bps("status", "--id", "zzzz")
    assert (unknown.exit_code, unknown.stdout.strip()) == (0, "UNKNOWN")  # LSST: UNKNOWN is 0
    assert "no run 'zzzz'" in unknown.stderr
    assert bps("status").exit_code == 2  # --id is required


def test_ping_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    parsl = bps("ping", "--wms-service-class", "parsl")
    assert parsl.exit_code == 0 and parsl.stdout.startswith("Ping successful (parsl): parsl ")
    # The shipped default plugin (parsl), or LSST's variable naming another.
    assert bps("ping").exit_code == 0
    monkeypatch.setenv("BPS_WMS_SERVICE_CLASS", "bps_fake_wms.FakeService")
    fake = bps("ping")
    assert fake.exit_code == 0 and "FakeService" in fake.stdout
    # No schedd answers on this machine (the pool's own test pings one that does).
    monkeypatch.delenv("BPS_WMS_SERVICE_CLASS")
    condor = bps("ping", "--wms-service-class", "htcondor")
    assert condor.exit_code == 1
    (line,) = condor.stderr.strip().splitlines()
    assert line.startswith("error: ping failed (htcondor): contact the local schedd: ")
    unknown = bps("ping", "--wms-service-class", "slurmish")
    assert unknown.exit_code == 2 and "unknown wmsServiceClass 'slurmish'" in unknown.stderr


def test_batch_jobs_write_their_logs_as_lsst_job_options_ask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LSST's ``defaultPreCmdOpts`` puts the logging options on every job command: each job then
    logs in the long format to its stderr file, and to its own JSON-lines file, labelled."""
    from quantumgraph.demo.repo import make_demo_repo

    make_demo_repo(tmp_path / "demo_repo", 1, 2).close()
    configs = tmp_path / "submit_configs"
    configs.mkdir()
    root = Path(__file__).resolve().parents[2] / "submit_configs"
    for name in ("quickstart.yaml", "quickstart_pipeline.yaml"):
        shutil.copy(root / name, configs / name)
    with (configs / "quickstart.yaml").open("a") as stream:
        stream.write(
            'defaultPreCmdOpts: "--long-log --log-level=VERBOSE --log-file {jobName}.json '
            '--log-label job={jobName}"\n'
        )
    monkeypatch.chdir(tmp_path)
    result = bps("submit", configs / "quickstart.yaml")
    assert result.exit_code == 0, result.output
    (submit_dir,) = {p.parent for p in (tmp_path / "submit").rglob("run.json")}
    quantum_jobs = ["isr_DemoCam_1_0", "isr_DemoCam_1_1", "calibrate_DemoCam_1_0", "calibrate_DemoCam_1_1",
                    "gather_DemoCam_1"]  # fmt: skip
    for job in quantum_jobs:
        records = [json.loads(line) for line in (submit_dir / f"{job}.json").read_text().splitlines()]
        (done,) = [r for r in records if r["name"] == "quantumgraph._execution"]
        assert done["levelname"] == "VERBOSE" and done["levelno"] == 15 and "done in" in done["message"]
        assert all(r["MDC"] == {"job": job} for r in records)
        label = job.split("_")[0]
        err = (submit_dir / "logs" / label / f"{job}.err").read_text()
        assert f" quantumgraph._execution (job={job})(_execution.py:" in err
    assert (submit_dir / "pipetaskInit.json").exists()  # the init job took the options too

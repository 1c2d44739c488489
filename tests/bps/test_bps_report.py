"""Run records, the runs index, and ``bps report``'s tables built from a Parsl state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bps import RunNotFoundError, find_run, list_runs
from bps._report import fetch_recent_runs, fetch_run_report, format_run_list, format_run_report
from bps._runs import RunRecord, record_run
from bps.wms import JobState, JobStatus, RunState, write_state


def make_record(submit_dir: Path, run_id: str, when: str = "2026-01-02T03:04:05+00:00") -> RunRecord:
    submit_dir.mkdir(parents=True, exist_ok=True)
    return RunRecord(
        run_id=run_id,
        submit_dir=str(submit_dir),
        wms_service_class="parsl",
        wms_run_id=str(submit_dir),
        submit_time=when,
        operator="alice",
        payload_name="demo",
        butler_config="/repo",
        output="u/alice/demo",
        output_run="u/alice/demo/20260102T030405Z",
    )


def write_parsl_state(submit_dir: Path) -> None:
    jobs = {
        "pipetaskInit": JobStatus("pipetaskInit", JobState.SUCCEEDED, 1, 0),
        "isr_1": JobStatus("isr", JobState.SUCCEEDED, 1, 0),
        "isr_2": JobStatus("isr", JobState.FAILED, 2, 1),
        "isr_3": JobStatus("isr", JobState.RUNNING, 1),
        "calibrate_1": JobStatus("calibrate", JobState.PENDING),
        "calibrate_2": JobStatus("calibrate", JobState.PRUNED, 0, None, "a parent job did not succeed"),
        "calibrate_3": JobStatus("calibrate", JobState.UNREADY),
        "finalJob": JobStatus("finalJob", JobState.UNREADY),
    }
    write_state(submit_dir / "state.json", RunState(str(submit_dir), "parsl", jobs, JobState.RUNNING))


def test_record_and_find_by_id_prefix_and_directory(tmp_path: Path, runs_index: Path) -> None:
    record = make_record(tmp_path / "s1", "abcd1234")
    record_run(record)
    other = make_record(tmp_path / "s2", "abff0000", when="2026-01-03T00:00:00+00:00")
    record_run(other)
    assert (runs_index / "abcd1234.json").exists() and (tmp_path / "s1" / "run.json").exists()
    assert find_run("abcd1234") == record
    assert find_run("abc") == record
    assert find_run(str(tmp_path / "s2")) == other
    assert [r.run_id for r in list_runs()] == ["abff0000", "abcd1234"]  # newest first
    with pytest.raises(RunNotFoundError, match="ambiguous: abcd1234, abff0000"):
        find_run("ab")
    with pytest.raises(RunNotFoundError, match="no run 'zz'"):
        find_run("zz")


def test_report_table_from_the_state_file(tmp_path: Path) -> None:
    submit_dir = tmp_path / "s"
    record_run(make_record(submit_dir, "abcd1234"))
    write_parsl_state(submit_dir)
    record, report = fetch_run_report("abcd1234")
    assert report.run_id == "abcd1234" and report.state is JobState.RUNNING
    text = format_run_report(record, report)
    lines = text.splitlines()
    assert lines[0] == "Run abcd1234: RUNNING"
    header = next(line for line in lines if line.startswith("TASK"))
    assert header.split() == [
        "TASK",
        "UNREADY",
        "READY",
        "PENDING",
        "RUNNING",
        "HELD",
        "SUCCEEDED",
        "FAILED",
        "PRUNED",
        "DELETED",
        "TOTAL",
    ]
    rows = {
        line.split()[0]: line.split()[1:]
        for line in lines[lines.index(header) + 1 :]
        if line and line.split()[0] in ("pipetaskInit", "isr", "calibrate", "finalJob", "TOTAL")
    }
    assert rows["isr"] == ["0", "0", "0", "1", "0", "1", "1", "0", "0", "3"]
    assert rows["calibrate"] == ["1", "0", "1", "0", "0", "0", "0", "1", "0", "3"]
    assert rows["TOTAL"] == ["2", "0", "1", "1", "0", "2", "1", "1", "0", "8"]
    assert list(rows) == ["pipetaskInit", "isr", "calibrate", "finalJob", "TOTAL"]  # workflow order
    failed = lines[lines.index("Failed jobs (1):") + 1]
    assert "isr_2 [isr] FAILED: exit code 1; 2 attempt(s)" in failed
    assert failed.endswith(str(submit_dir / "logs" / "isr" / "isr_2.err"))


def test_recent_runs_listing(tmp_path: Path) -> None:
    good = tmp_path / "good"
    record_run(make_record(good, "aaaa0001"))
    write_parsl_state(good)
    record_run(make_record(tmp_path / "gone", "bbbb0002", when="2026-02-01T00:00:00+00:00"))
    summaries = fetch_recent_runs()
    text = format_run_list(summaries)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["RUN", "ID", "STATE"]
    assert lines[1].split()[:2] == ["bbbb0002", "UNKNOWN"]
    assert lines[2].split()[:3] == ["aaaa0001", "RUNNING", "2026-01-02T03:04:05+00:00"]
    assert "Could not read:" in text and "bbbb0002: RunNotFoundError" in text
    assert format_run_list([]) == "No runs recorded (runs index empty)."

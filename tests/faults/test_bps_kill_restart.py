"""``bps submit`` killed mid-run: report, restart and merge stay exact (issue 7, item 7).

A real ``bps submit`` of a quickstart-like workflow (Parsl, threads) runs in a subprocess and is
SIGKILLed while jobs run.  Its jobs run in their own sessions and outlive it.  Then:

* ``bps report`` shows no job RUNNING whose process is gone, and the jobs the orphans finished as
  SUCCEEDED (they journal their own completion);
* ``bps restart`` stops orphans still running, never reruns a quantum that finished (each quantum
  counts its runs in a file: exactly one ``done`` per quantum at the end), and the final merge
  registers every output exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from butler import Butler

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
EXPOSURES, DETECTORS = 2, 2
QUANTA = {
    "isr": [f"{e}_{d}" for e in range(1, EXPOSURES + 1) for d in range(DETECTORS)],
    "calibrate": [f"{e}_{d}" for e in range(1, EXPOSURES + 1) for d in range(DETECTORS)],
    "gather": [str(e) for e in range(1, EXPOSURES + 1)],
}
GUARD_SECONDS = 240  # hang guard for waits on real processes, not a speed assertion


@pytest.fixture
def run_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(submit YAML, counter folder, work folder) for a 2x2 demo repository."""
    repo_mod = pytest.importorskip("quantumgraph.demo.repo")
    repo_mod.make_demo_repo(tmp_path / "demo_repo", exposures=EXPOSURES, detectors=DETECTORS)
    configs = tmp_path / "configs"
    configs.mkdir()
    counters = tmp_path / "counters"
    counters.mkdir()
    shutil.copy(REPO_ROOT / "submit_configs" / "quickstart.yaml", configs / "quickstart.yaml")
    pipeline = {
        "tasks": {
            "isr": {
                "class": "faults_bps_tasks.CountingIsr",
                "config": {"counter_dir": str(counters), "sleep": 1.5},
            },
            "calibrate": {
                "class": "faults_bps_tasks.CountingCalibrate",
                "config": {"counter_dir": str(counters)},
            },
            "gather": {"class": "faults_bps_tasks.CountingGather", "config": {"counter_dir": str(counters)}},
        }
    }
    (configs / "quickstart_pipeline.yaml").write_text(yaml.safe_dump(pipeline), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    return configs / "quickstart.yaml", counters, work


def _env(work: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, USER="alice", SKYBATCH_RUNS_DIR=str(work / "runs-index"), PYTHONPATH=path)


def bps(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("bps"))
    return subprocess.run(
        [exe, *args], cwd=work, env=_env(work), capture_output=True, text=True, timeout=GUARD_SECONDS
    )


def marks(counters: Path, what: str) -> dict[str, int]:
    """``label_ident`` -> how many ``what`` lines its counter file holds."""
    out = {}
    for path in counters.glob("*.log"):
        out[path.stem] = sum(1 for line in path.read_text().splitlines() if line.split()[0] == what)
    return out


def wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def job_processes(submit_dir: Path) -> list[int]:
    """Pids of processes whose command line names the submit directory (the run's jobs)."""
    pids = []
    needle = str(submit_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def total_row(report: str) -> dict[str, int]:
    lines = report.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["LABEL"] or "RUNNING" in line.split())
    names = header.split()
    values = next(line for line in lines if line.startswith("TOTAL")).split()
    return {name: int(value) for name, value in zip(names[1:], values[1:], strict=False) if value.isdigit()}


def start_and_kill(config: Path, counters: Path, work: Path) -> Path:
    """Start ``bps submit``, SIGKILL it once two isr quanta finished; the submit directory."""
    exe = str(Path(sys.executable).with_name("bps"))
    proc = subprocess.Popen(
        [exe, "submit", str(config), "--output-run", "u/alice/killed"],
        cwd=work,
        env=_env(work),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: sum(marks(counters, "done").values()) >= 2, "two quanta to finish")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=GUARD_SECONDS)
    return work / "submit" / "u" / "alice" / "killed"


def check_final(counters: Path, tmp_path: Path) -> None:
    done = marks(counters, "done")
    expected = {f"{label}_{ident}" for label, idents in QUANTA.items() for ident in idents}
    assert set(done) == expected and all(n == 1 for n in done.values()), done
    butler = Butler(tmp_path / "demo_repo", writeable=False)
    output = "u/alice/quickstart"
    for dataset_type, count in (("postISR", 4), ("calexp", 4), ("summary", 2)):
        refs = butler.registry.query_datasets(dataset_type, [output])
        assert len(refs) == count, (dataset_type, refs)
        assert len({ref.data_id for ref in refs}) == count and len({ref.id for ref in refs}) == count


def test_report_after_kill_shows_no_dead_running_job_and_restart_reruns_nothing_finished(
    run_setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    config, counters, work = run_setup
    submit_dir = start_and_kill(config, counters, work)
    # The orphans finish on their own; once every job process is gone, nothing may show RUNNING
    # and what they finished must show SUCCEEDED.
    wait_for(lambda: not job_processes(submit_dir), "orphaned jobs to end")
    report = bps(work, "report", "--id", str(submit_dir))
    assert report.returncode == 0, report.stderr
    totals = total_row(report.stdout)
    assert totals.get("RUNNING", 0) == 0, report.stdout
    finished_quanta = sum(marks(counters, "done").values())
    assert totals["SUCCEEDED"] >= 1 + finished_quanta, report.stdout  # pipetaskInit + each finished quantum
    before = marks(counters, "start")
    restart = bps(work, "restart", "--id", str(submit_dir))
    assert restart.returncode == 0, restart.stdout + restart.stderr
    after = marks(counters, "start")
    assert all(after[key] == n for key, n in before.items()), (before, after)
    check_final(counters, tmp_path)


def test_restart_right_after_kill_stops_orphans_first_and_reruns_nothing_finished(
    run_setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    config, counters, work = run_setup
    submit_dir = start_and_kill(config, counters, work)
    restart = bps(work, "restart", "--id", str(submit_dir))
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert not job_processes(submit_dir)
    check_final(counters, tmp_path)

"""Submit directories: claimed by exactly one run, and left as found when prepare fails.

Issue 7 items 6 and 9.  Real processes race for one directory (forked after a barrier so they
reach the claim together); refused configs go through the real ``bps`` command line.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bps import SubmitDirError, load_bps_config, prepare

REPO_ROOT = Path(__file__).resolve().parents[2]
RACERS = 4
ROUNDS = 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo_mod = pytest.importorskip("quantumgraph.demo.repo")
    root = tmp_path_factory.mktemp("submitdir")
    repo_mod.make_demo_repo(root / "demo_repo", exposures=1, detectors=2)
    (root / "configs").mkdir()
    for name in ("quickstart.yaml", "quickstart_pipeline.yaml"):
        shutil.copy(REPO_ROOT / "submit_configs" / name, root / "configs" / name)
    return root


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def bps(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, USER="alice", SKYBATCH_RUNS_DIR=str(cwd / "runs-index"))
    bps_exe = str(Path(sys.executable).with_name("bps"))
    return subprocess.run([bps_exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _race(config_path: str, run: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    config = load_bps_config(config_path, {"payload": {"outputRun": run}})
    barrier.wait(timeout=60)
    try:
        prepare(config)
    except SubmitDirError:
        os._exit(17)
    os._exit(0)


def test_concurrent_prepares_claim_one_submit_directory_exactly_once(
    demo: Path, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work)
    ctx = multiprocessing.get_context("fork")
    config = str(demo / "configs" / "quickstart.yaml")
    for round_ in range(ROUNDS):
        barrier = ctx.Barrier(RACERS)
        procs = [
            ctx.Process(target=_race, args=(config, f"u/alice/race{round_}", barrier)) for _ in range(RACERS)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=300)
        codes = sorted(proc.exitcode for proc in procs)
        assert codes == [0] + [17] * (RACERS - 1), f"round {round_}: exit codes {codes}"
        submit_dir = work / "submit" / "u" / "alice" / f"race{round_}"
        assert (submit_dir / "workflow.json").is_file() and (submit_dir / "submit_config.yaml").is_file()


def test_a_refused_config_leaves_no_submit_directory_and_the_corrected_retry_works(
    demo: Path, work: Path
) -> None:
    config = demo / "configs" / "badsite.yaml"
    config.write_text(
        "includeConfigs: [quickstart.yaml]\nsite:\n  local:\n    executor: bogus\n", encoding="utf-8"
    )
    result = bps("prepare", str(config), "--output-run", "u/alice/retry", cwd=work)
    assert result.returncode != 0 and "executor" in result.stderr, result.stderr[-2000:]
    assert not (work / "submit").exists(), sorted(p.name for p in (work / "submit").rglob("*"))
    # The corrected config, same run name: no "already used by another run".
    config.write_text("includeConfigs: [quickstart.yaml]\n", encoding="utf-8")
    result = bps("prepare", str(config), "--output-run", "u/alice/retry", cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (work / "submit" / "u" / "alice" / "retry" / "workflow.json").is_file()


def test_an_empty_graph_leaves_no_submit_directory(demo: Path, work: Path) -> None:
    result = bps(
        "prepare",
        str(demo / "configs" / "quickstart.yaml"),
        "-d",
        "exposure = 999",
        "--output-run",
        "u/a/e",
        cwd=work,
    )
    assert result.returncode != 0, result.stdout
    assert not (work / "submit").exists()


def test_a_failed_prepare_in_an_existing_empty_directory_keeps_the_directory_only(
    demo: Path, work: Path
) -> None:
    target = work / "mine"
    target.mkdir()
    config = demo / "configs" / "badsite2.yaml"
    config.write_text(
        f"includeConfigs: [quickstart.yaml]\nsubmitPath: {target}\nsite:\n  local:\n    executor: bogus\n",
        encoding="utf-8",
    )
    result = bps("prepare", str(config), cwd=work)
    assert result.returncode != 0
    assert target.is_dir() and not list(target.iterdir())


def test_a_non_empty_unrelated_directory_is_not_accepted_as_submit_path(demo: Path, work: Path) -> None:
    target = work / "notes"
    target.mkdir()
    (target / "thesis.tex").write_text("precious", encoding="utf-8")
    config = demo / "configs" / "notes.yaml"
    config.write_text(f"includeConfigs: [quickstart.yaml]\nsubmitPath: {target}\n", encoding="utf-8")
    result = bps("prepare", str(config), cwd=work)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert str(target) in lines[0] and "not empty" in lines[0]
    assert sorted(p.name for p in target.iterdir()) == ["thesis.tex"]
    assert (target / "thesis.tex").read_text(encoding="utf-8") == "precious"

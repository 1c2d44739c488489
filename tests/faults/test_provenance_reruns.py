"""Partial reruns: after a failure, fix the task's code and rerun only what did not succeed.

A campaign's calibrate task fails on one detector.  The operator reads the failure from the
quantum's ``_log``, fixes the task's code and reruns with ``--extend-run --skip-existing-in``:
exactly the failed quanta and the ones they blocked run, into the same run, replacing the failed
attempts' datasets instead of duplicating them.  A changed config is refused naming the field, and
``--replace-run`` swaps the output chain's run.  Real subprocesses (the fixed code must be imported
afresh), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from butler import Butler

OUTPUT = "u/op/campaign"

BROKEN = """
from quantumgraph.demo.tasks import Calibrate as _Demo


class Calibrate(_Demo):
    def run(self, post_isr):
        if post_isr["detector"] == 1:
            raise ZeroDivisionError("bad flat for detector 1")
        return super().run(post_isr)
"""

FIXED = """
from quantumgraph.demo.tasks import Calibrate as _Demo


class Calibrate(_Demo):
    pass
"""

PIPELINE = """\
tasks:
  isr: quantumgraph.demo.tasks.Isr
  calibrate:
    class: mycal.Calibrate
    config:
      scale: 2.0
  gather: quantumgraph.demo.tasks.Gather
"""


def _setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "mycal.py").write_text(textwrap.dedent(BROKEN))
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE)
    return pipeline, {"PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}


def _pipetask(run_script: Any, env: dict[str, str], *args: str | Path) -> Any:
    return run_script("pipetask", *args, env=env)


def _by_type(butler: Butler, run: str) -> dict[str, int]:
    return {
        dt.name: n
        for dt in butler.registry.query_dataset_types()
        if (n := len(butler.query_datasets(dt.name, collections=[run])))
    }


def test_fixed_code_reruns_exactly_the_failed_quanta_and_their_descendants(
    tmp_path: Path, db_url: str, demo_repo_on: Any, run_script: Any
) -> None:
    repo = demo_repo_on(db_url, 2, 2)
    pipeline, env = _setup(tmp_path)
    graph = tmp_path / "first.qgraph"
    first = _pipetask(
        run_script, env, "run", "-b", repo, "-i", "DemoCam/defaults", "-o", OUTPUT, "-p", pipeline,
        "--save-qgraph", graph,
    )  # fmt: skip
    assert first.returncode == 1
    assert "6 quanta succeeded, 2 failed, 2 not run because of upstream failures" in first.stdout

    # The operator's view: per task, and each failure with the exception from its log.
    report = _pipetask(run_script, env, "report", repo, graph)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[1:5] == [
        "task       succeeded  failed  blocked  not attempted  total",
        "isr                4       0        0              0      4",
        "calibrate          2       2        0              0      4",
        "gather             0       0        2              0      2",
    ]
    failure = "ZeroDivisionError: bad flat for detector 1"
    assert report.stdout.splitlines()[-3:] == ["2 failed quanta:"] + [
        f"  calibrate {{instrument=DemoCam, detector=1, exposure={e}}}: {failure}" for e in (1, 2)
    ]
    as_json = json.loads(_pipetask(run_script, env, "report", repo, graph, "--format", "json").stdout)
    assert as_json["tasks"]["gather"] == {
        "succeeded": 0, "failed": 0, "blocked": 2, "not_attempted": 0, "total": 2
    }  # fmt: skip
    assert [(f["data_id"]["exposure"], f["exception_type"], f["message"]) for f in as_json["failures"]] == [
        (1, "builtins.ZeroDivisionError", "bad flat for detector 1"),
        (2, "builtins.ZeroDivisionError", "bad flat for detector 1"),
    ]
    with Butler(repo, collections=[OUTPUT]) as butler:
        run = butler.registry.get_chain(OUTPUT)[0]
        log = butler.get("calibrate_log", instrument="DemoCam", exposure=2, detector=1)
        assert log[-1]["exception"]["type"] == "builtins.ZeroDivisionError"
        assert log[-1]["exception"]["message"] == "bad flat for detector 1"
        assert "mycal.py" in log[-1]["exception"]["traceback"]
        before = _by_type(butler, run)
    assert before["calibrate_log"] == 4 and before["calexp"] == 2 and "summary" not in before

    # A changed config is refused before anything runs, naming the field.
    changed = _pipetask(
        run_script, env, "run", "-b", repo, "-o", OUTPUT, "-p", pipeline,
        "--extend-run", "--skip-existing-in", OUTPUT, "-c", "calibrate:scale=3.0",
    )  # fmt: skip
    assert changed.returncode == 1
    assert changed.stderr.strip().splitlines()[-1] == (
        f"error: task 'calibrate' config field 'scale' is 3.0 now but 2.0 in output run '{run}'; a run "
        "holds one configuration: use a new output run, or --clobber-outputs to replace its outputs"
    )

    (tmp_path / "code" / "mycal.py").write_text(textwrap.dedent(FIXED))
    planned = _pipetask(
        run_script, env, "qgraph", "-b", repo, "-o", OUTPUT, "-p", pipeline,
        "--extend-run", "--skip-existing-in", OUTPUT, "--show", "quanta",
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    planned_quanta = sorted(line.split(None, 1)[1] for line in planned.stdout.splitlines())
    assert planned_quanta == sorted(
        [f"calibrate  instrument=DemoCam, detector=1, exposure={e}" for e in (1, 2)]
        + [f"gather  instrument=DemoCam, exposure={e}" for e in (1, 2)]
    )

    rerun = _pipetask(
        run_script,
        env,
        "run",
        "-b",
        repo,
        "-o",
        OUTPUT,
        "-p",
        pipeline,
        "--extend-run",
        "--skip-existing-in",
        OUTPUT,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "4 quanta succeeded, 0 failed, 0 not run" in rerun.stdout
    with Butler(repo, collections=[OUTPUT]) as butler:
        assert butler.registry.get_chain(OUTPUT) == [run, "DemoCam/defaults"]
        after = _by_type(butler, run)
        # One dataset per data ID: the failed attempts' log and metadata were replaced, not duplicated.
        assert after == {
            **before,
            "calexp": 4,
            "summary": 2,
            "gather_log": 2,
            "gather_metadata": 2,
        }
        meta = butler.get("calibrate_metadata", instrument="DemoCam", exposure=2, detector=1)
        calexp = butler.find_dataset("calexp", instrument="DemoCam", exposure=2, detector=1)
        assert meta["succeeded"] is True and calexp is not None and meta["outputs"] == [str(calexp.id)]
        assert butler.get("summary", instrument="DemoCam", exposure=2)["n_detectors"] == 2
        assert not any(
            e.get("exception")
            for e in butler.get("calibrate_log", instrument="DemoCam", exposure=2, detector=1)
        )

    nothing = _pipetask(
        run_script, env, "run", "-b", repo, "-o", OUTPUT, "-p", pipeline, "--extend-run", "--skip-existing"
    )
    assert nothing.returncode == 1
    assert nothing.stderr.strip().splitlines()[-1] == (
        f"error: nothing to run: all 10 quanta already succeeded in {run} (--skip-existing-in)"
    )


def test_replace_run_swaps_the_chains_run_and_prunes_the_old_one(
    tmp_path: Path, db_url: str, demo_repo_on: Any, run_script: Any
) -> None:
    repo = demo_repo_on(db_url, 2, 2)
    pipeline, env = _setup(tmp_path)
    (tmp_path / "code" / "mycal.py").write_text(textwrap.dedent(FIXED))
    first = _pipetask(
        run_script, env, "run", "-b", repo, "-i", "DemoCam/defaults", "-o", OUTPUT, "-p", pipeline
    )
    assert first.returncode == 0, first.stderr
    with Butler(repo) as butler:
        old_run = butler.registry.get_chain(OUTPUT)[0]
    second = _pipetask(
        run_script, env, "run", "-b", repo, "-o", OUTPUT, "-p", pipeline,
        "--replace-run", "--prune-replaced", "purge", "-c", "calibrate:scale=3.0",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    with Butler(repo, collections=[OUTPUT]) as butler:
        new_run, *rest = butler.registry.get_chain(OUTPUT)
        assert new_run != old_run and rest == ["DemoCam/defaults"]
        assert _by_type(butler, old_run) == {}  # purged
        assert (
            butler.get("calexp", instrument="DemoCam", exposure=1, detector=1)["value"] == (101 + 1.0) * 3.0
        )
        assert butler.get("calibrate_config")["scale"] == 3.0

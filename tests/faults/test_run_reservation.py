"""An execution reserves its output run before any quantum runs: a run is never shared by accident.

``pipetask run`` registers the output run in the registry (an atomic insert that says whether it
was new) after building the graph and before executing.  A run that exists is refused unless the
user passes ``--extend-run`` (add outputs; refused if any predicted output is already there) or
``--clobber-outputs`` (replace them).  Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from faults_util import script

from butler import Butler
from quantumgraph.cli import main as pipetask_main
from quantumgraph.demo.repo import raw_value

PIPELINE = """\
tasks:
  isr: quantumgraph.demo.tasks.Isr
  calibrate:
    class: quantumgraph.demo.tasks.Calibrate
    config:
      scale: {scale}
"""

RUN = "u/x/fixed"


def _pipeline(tmp_path: Path, scale: float) -> Path:
    path = tmp_path / f"pipeline-{scale}.yaml"
    path.write_text(PIPELINE.format(scale=scale))
    return path


def _run(repo: Path, pipeline: Path, *extra: str, run: str = RUN) -> Any:
    args = ["run", "-b", str(repo), "-i", "DemoCam/defaults", "--output-run", run, "-p", str(pipeline)]
    return CliRunner().invoke(pipetask_main, [*args, *extra])


def _contents(repo: Path, run: str = RUN) -> dict[tuple[str, str], Any]:
    """Every dataset registered in ``run``, by (type, data ID), with what reading it returns."""
    with Butler(repo) as butler:
        refs = [
            ref
            for dt in butler.registry.query_dataset_types()
            for ref in butler.query_datasets(dt.name, collections=run)
        ]
        return {(ref.dataset_type.name, str(ref.data_id)): butler.get(ref) for ref in refs}


def _calexp_scales(repo: Path, run: str = RUN) -> dict[tuple[int, int], float]:
    """For each registered calexp, the scale its value was computed with."""
    with Butler(repo) as butler:
        out = {}
        for ref in butler.query_datasets("calexp", collections=run):
            e, d = ref.data_id["exposure"], ref.data_id["detector"]
            out[(e, d)] = butler.get(ref)["value"] / (raw_value(e, d) + 1.0)
        return out


def test_second_run_into_one_output_run_is_refused(tmp_path: Path, db_url: str, demo_repo_on: Any) -> None:
    repo = demo_repo_on(db_url, 2, 2)
    first = _run(repo, _pipeline(tmp_path, 2.0))
    assert first.exit_code == 0, first.output
    before = _contents(repo)
    # 4 postISR + 4 calexp, each quantum's log and metadata, the two tasks' configs and packages
    assert len(before) == 3 * 8 + 3
    second = _run(repo, _pipeline(tmp_path, 3.0))
    assert second.exit_code == 1, second.output
    assert second.output.strip().splitlines()[-1] == (
        f"error: output run '{RUN}' already exists; pass --extend-run to add outputs to it, or "
        "--clobber-outputs to replace the outputs it already holds (or choose a new run)"
    )
    assert _contents(repo) == before
    assert set(_calexp_scales(repo).values()) == {2.0}


def test_extend_run_adds_a_disjoint_query_and_refuses_an_overlap(
    tmp_path: Path, db_url: str, demo_repo_on: Any
) -> None:
    repo = demo_repo_on(db_url, 2, 2)
    pipeline = _pipeline(tmp_path, 2.0)
    assert _run(repo, pipeline, "-d", "exposure = 1").exit_code == 0
    extended = _run(repo, pipeline, "-d", "exposure = 2", "--extend-run")
    assert extended.exit_code == 0, extended.output
    assert _calexp_scales(repo) == {(e, d): 2.0 for e in (1, 2) for d in (0, 1)}
    with Butler(repo) as butler:  # the configs are registered once, not once per execution
        assert len(butler.query_datasets("calibrate_config", collections=RUN)) == 1
    before = _contents(repo)
    overlap = _run(repo, pipeline, "-d", "exposure IN (2, 3)", "--extend-run")
    assert overlap.exit_code == 1, overlap.output
    last = overlap.output.strip().splitlines()[-1]
    assert last.startswith(
        f"error: output run '{RUN}' already holds 12 of this graph's predicted outputs (e.g. "
    )
    assert last.endswith("); pass --clobber-outputs to replace them, or narrow the data query")
    assert _contents(repo) == before


def test_clobber_outputs_replaces_the_run_with_the_new_config(
    tmp_path: Path, db_url: str, demo_repo_on: Any
) -> None:
    repo = demo_repo_on(db_url, 2, 2)
    assert _run(repo, _pipeline(tmp_path, 2.0)).exit_code == 0
    clobbered = _run(repo, _pipeline(tmp_path, 3.0), "--clobber-outputs")
    assert clobbered.exit_code == 0, clobbered.output
    assert _calexp_scales(repo) == {(e, d): 3.0 for e in (1, 2) for d in (0, 1)}
    contents = _contents(repo)
    assert len(contents) == 3 * 8 + 3
    config = next(v for (name, _), v in contents.items() if name == "calibrate_config")
    assert config["scale"] == 3.0


def test_concurrent_runs_into_one_output_run_one_wins(tmp_path: Path, db_url: str, demo_repo_on: Any) -> None:
    repo = demo_repo_on(db_url, 2, 2)
    pipetask = script("pipetask")
    procs = [
        subprocess.Popen(
            [pipetask, "run", "-b", str(repo), "-i", "DemoCam/defaults", "--output-run", "u/x/same"]
            + ["-p", str(_pipeline(tmp_path, scale))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for scale in (2.0, 3.0)
    ]
    results = [(p.wait(300), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert refused.strip().splitlines()[-1].startswith("error: output run 'u/x/same' already exists;")
    scales = _calexp_scales(repo, "u/x/same")
    assert len(scales) == 4
    assert len(set(scales.values())) == 1
    contents = _contents(repo, "u/x/same")
    config = next(v for (name, _), v in contents.items() if name == "calibrate_config")
    assert config["scale"] == next(iter(scales.values()))

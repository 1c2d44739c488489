"""Runs started in the same second never share an output run, and concurrent runs never mix data.

The default output run is ``{output}/{UTC timestamp}``; with whole seconds two runs started in
one second shared a run.  The timestamp now has microseconds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from faults_util import script

from butler import Butler
from quantumgraph import GraphReader
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


def test_default_runs_built_in_one_second_differ(
    tmp_path: Path, demo_repo_on: Any, pipeline_file: Path
) -> None:
    repo = demo_repo_on(f"sqlite:///{tmp_path / 'registry.sqlite3'}", 3, 1)
    runs = []
    for i in range(6):  # a build takes a few tens of milliseconds: several share a second
        graph = tmp_path / f"g{i}.qgraph"
        exposure = 1 + i % 3
        args = [
            "qgraph",
            "-b",
            str(repo),
            "-i",
            "DemoCam/defaults",
            "-o",
            "u/x",
            "-d",
            f"exposure = {exposure}",
        ]
        result = CliRunner().invoke(
            pipetask_main, [*args, "-p", str(pipeline_file), "--save-qgraph", str(graph)]
        )
        assert result.exit_code == 0, result.output
        with GraphReader(graph) as reader:
            runs.append(reader.header.output_run)
    assert len(set(runs)) == len(runs), runs
    assert all(r.startswith("u/x/") for r in runs)


def test_concurrent_pipetask_runs_with_different_configs_never_mix(tmp_path: Path, demo_repo_on: Any) -> None:
    repo = demo_repo_on(f"sqlite:///{tmp_path / 'registry.sqlite3'}", 2, 2)
    pipetask = script("pipetask")
    procs = {}
    for scale in (2.0, 3.0):
        pipeline = tmp_path / f"p{scale}.yaml"
        pipeline.write_text(PIPELINE.format(scale=scale))
        procs[scale] = subprocess.Popen(
            [pipetask, "run", "-b", str(repo), "-i", "DemoCam/defaults", "-o", "u/x", "-p", str(pipeline)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for p in procs.values():
        _, err = p.communicate(timeout=300)  # reads and closes both pipes
        assert p.returncode == 0, err
    with Butler(repo) as butler:
        runs = [r for r in butler.registry.get_chain("u/x") if r.startswith("u/x/")]
        assert len(runs) == 2
        for run in runs:
            config = butler.get("calibrate_config", collections=run)
            calexps = butler.query_datasets("calexp", collections=run)
            assert len(calexps) == 4
            for ref in calexps:
                e, d = ref.data_id["exposure"], ref.data_id["detector"]
                assert butler.get(ref)["value"] == (raw_value(e, d) + 1.0) * config["scale"]
        assert sorted(butler.get("calibrate_config", collections=r)["scale"] for r in runs) == [2.0, 3.0]

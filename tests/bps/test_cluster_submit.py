"""``bps submit`` of the clustered quickstart on the demo repository, run for real by the Parsl plugin."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bps_testutil import write_yaml
from click.testing import CliRunner, Result

from bps.cli import main
from bps.workflow import read_workflow
from butler import Butler
from quantumgraph.demo.repo import raw_value

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPOSURES, DETECTORS = (1, 2), (0, 1, 2)


def bps(*args: str) -> Result:
    return CliRunner().invoke(main, ["--log-level", "WARNING", *args], catch_exceptions=False)


@pytest.fixture
def clustered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped quickstart configs next to a demo repository of 2 exposures x 3 detectors."""
    from quantumgraph.demo.repo import make_demo_repo

    make_demo_repo(tmp_path / "demo_repo", len(EXPOSURES), len(DETECTORS)).close()
    configs = tmp_path / "submit_configs"
    configs.mkdir()
    for name in ("quickstart.yaml", "quickstart_pipeline.yaml", "quickstart_clustered.yaml"):
        shutil.copy(REPO_ROOT / "submit_configs" / name, configs / name)
    monkeypatch.chdir(tmp_path)
    return configs / "quickstart_clustered.yaml"


def report_rows(output: str) -> dict[str, list[str]]:
    """TASK -> its counts (UNREADY ... DELETED, TOTAL) from the report table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TASK"))
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        label, *counts = line.split()
        rows[label] = counts
    return rows


def check_outputs(repo: Path, *, post_isr: bool) -> str:
    """calexp and summary values through the output chain; returns the output run."""
    with Butler(repo, writeable=False) as butler:
        chains = [
            c for c, kind in butler.registry.query_collections() if kind == "CHAINED" and c.startswith("u/")
        ]
        (chain,) = chains
        run = butler.registry.get_chain(chain)[0]
        for e in EXPOSURES:
            values = []
            for d in DETECTORS:
                data_id = {"instrument": "DemoCam", "exposure": e, "detector": d}
                calexp = butler.get("calexp", data_id, collections=[chain])
                assert calexp == {"exposure": e, "detector": d, "value": (raw_value(e, d) + 1.0) * 2.0}
                values.append(calexp["value"])
                found = butler.find_dataset("postISR", data_id, collections=[chain])
                assert (found is not None) is post_isr
            summary = butler.get("summary", {"instrument": "DemoCam", "exposure": e}, collections=[chain])
            assert summary == {
                "n_detectors": len(DETECTORS),
                "sum": sum(values),
                "mean": sum(values) / len(values),
            }
    return str(run)


def test_clustered_quickstart(clustered: Path, tmp_path: Path) -> None:
    result = bps("submit", str(clustered))
    assert result.exit_code == 0, result.output
    rows = report_rows(result.output)
    n = len(EXPOSURES) * len(DETECTORS)
    assert set(rows) == {"pipetaskInit", "perChip", "gather", "finalJob", "TOTAL"}
    assert rows["perChip"][-1] == rows["perChip"][5] == str(n)  # every cluster job SUCCEEDED
    assert rows["TOTAL"][-1] == rows["TOTAL"][5] == str(n + len(EXPOSURES) + 2)
    run = check_outputs(tmp_path / "demo_repo", post_isr=True)
    submit_dir = next(Path("submit").rglob("workflow.json")).parent
    logs = sorted(p.name for p in (submit_dir / "logs" / "perChip").glob("*.out"))
    assert logs == [f"perChip_DemoCam_{e}_{d}.out" for e in EXPOSURES for d in DETECTORS]
    assert run.startswith("u/")
    again = bps("report", "--id", str(submit_dir))
    assert again.exit_code == 0 and report_rows(again.output)["perChip"][5] == str(n)


def test_clustered_quickstart_with_job_local_post_isr(clustered: Path, tmp_path: Path) -> None:
    config = write_yaml(
        clustered.parent / "job_local.yaml",
        "includeConfigs: [quickstart_clustered.yaml]\njobLocalDatasetTypes: [postISR]\n",
    )
    result = bps("submit", str(config))
    assert result.exit_code == 0, result.output
    repo = tmp_path / "demo_repo"
    run = check_outputs(repo, post_isr=False)
    assert not (repo / run / "postISR").exists() or not any((repo / run / "postISR").iterdir())
    assert any((repo / run / "calexp").iterdir())
    submit_dir = next(Path("submit").rglob("workflow.json")).parent
    n = len(EXPOSURES) * len(DETECTORS)
    final_log = (submit_dir / "logs" / "finalJob" / "finalJob.out").read_text()
    # configs and packages; per quantum its output, log and metadata (job-local postISR unwritten)
    predicted = 4 + 3 * (2 * n + len(EXPOSURES))
    assert f"{predicted - n} of {predicted} predicted outputs found" in final_log
    assert f"; {n} missing" in final_log
    command = (submit_dir / "workflow.json").read_text()
    assert command.count('"--job-local","postISR"') == n


def test_chain_and_dimension_group_the_demo_graph_alike(clustered: Path, tmp_path: Path) -> None:
    """The same demo QuantumGraph file (``qgraphFile``) prepared with each algorithm."""
    from quantumgraph.cli import main as pipetask

    graph = tmp_path / "demo.qgraph"
    built = CliRunner().invoke(
        pipetask,
        ["qgraph", "-b", "demo_repo", "-i", "DemoCam/defaults", "-o", "u/me/demo",
         "-p", str(clustered.parent / "quickstart_pipeline.yaml"), "--save-qgraph", str(graph)],
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    groups = {}
    n = len(EXPOSURES) * len(DETECTORS)
    for name, algorithm in (("chain", "clusterAlgorithm: chain\n"), ("dimension", "")):
        config = write_yaml(
            clustered.parent / f"{name}.yaml",
            f"includeConfigs: [quickstart_clustered.yaml]\nqgraphFile: {graph}\n{algorithm}"
            f"submitPath: {tmp_path / name}\n",
        )
        result = bps("prepare", str(config), "--wms-service-class", "bps_fake_wms.FakeService")
        assert result.exit_code == 0, result.output
        assert f"Prepared {n + len(EXPOSURES) + 2} jobs" in result.output and "clustering" in result.output
        workflow = read_workflow(tmp_path / name / "workflow.json")
        groups[name] = {job.quantum_ids for job in workflow if len(job.quantum_ids) > 1}
        labels = workflow.label_counts()
        assert labels[{"chain": "isr-calibrate", "dimension": "perChip"}[name]] == n
        assert len(groups[name]) == n
    assert groups["chain"] == groups["dimension"]

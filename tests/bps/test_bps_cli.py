"""The ``bps`` command line through click's CliRunner: messages, exit codes and whole runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from bps_testutil import MINIMAL, workload_graph, write_yaml
from click.testing import CliRunner, Result

from bps.cli import main
from bps.config import load_bps_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def bps(*args: str) -> Result:
    return CliRunner().invoke(main, ["--log-level", "WARNING", *args], catch_exceptions=False)


def test_help_says_which_source_wins() -> None:
    for args in ([], ["submit"], ["prepare"]):
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0
        text = " ".join(result.output.split())
        assert "command-line options > the submit YAML > its includeConfigs" in text
        assert "> the shipped defaults" in text and "environment" in text


def test_report_without_runs() -> None:
    result = bps("report")
    assert result.exit_code == 0 and "No runs recorded" in result.output


def test_unknown_run_id_is_a_one_line_error() -> None:
    result = bps("report", "--id", "nosuch")
    assert result.exit_code == 2
    assert result.output.startswith("error: no run 'nosuch'") and result.output.count("\n") == 1


def test_config_errors_name_the_key_and_file(cfg_dir: Path) -> None:
    path = write_yaml(cfg_dir / "submit.yaml", MINIMAL + "requestMemory: lots\n")
    result = bps("submit", str(path))
    assert result.exit_code == 2
    assert "error: submit config: requestMemory: expected an integer" in result.output
    assert str(path) in result.output and "Traceback" not in result.output


def test_unknown_wms_lists_the_available_ones(cfg_dir: Path) -> None:
    path = write_yaml(cfg_dir / "submit.yaml", MINIMAL)
    result = bps("prepare", str(path), "--wms-service-class", "condor")
    assert result.exit_code == 2
    assert "unknown wmsServiceClass 'condor'; available:" in result.output and "parsl" in result.output


@pytest.fixture
def graph_config(cfg_dir: Path, tmp_path: Path) -> Path:
    """A submit YAML with a pre-built graph file and the test plugin (no jobs really run).

    The repository is real (and empty): submit reserves the graph's output run in it.
    """
    from butler import Butler
    from quantumgraph import write_graph

    Butler.create(tmp_path / "repo").close()
    write_graph(cfg_dir / "w.qgraph", workload_graph(2, 2))
    return write_yaml(
        cfg_dir / "graph.yaml",
        """
qgraphFile: w.qgraph
wmsServiceClass: bps_fake_wms.FakeService
payload: {payloadName: demo, butlerConfig: ../repo, output: "u/{operator}/demo", dataQuery: "a = '$$x{{y}}'"}
""",
    )


def test_prepare_renders_without_submitting(graph_config: Path, runs_index: Path) -> None:
    result = bps("prepare", str(graph_config), "--output-run", "u/me/fixed")
    assert result.exit_code == 0, result.output
    assert "Prepared 12 jobs for bps_fake_wms.FakeService in" in result.output
    submit_dir = Path.cwd() / "submit" / "u" / "me" / "fixed"
    assert {p.name for p in submit_dir.iterdir()} >= {
        "submit_config.yaml",
        "workflow.json",
        "fake.json",
        "u_me_fixed.qgraph",
    }
    assert not (submit_dir / "fake.submitted").exists() and not runs_index.exists()
    # The recorded config loads back to the same values (placeholders resolved, escapes kept).
    again = load_bps_config(submit_dir / "submit_config.yaml")
    assert again.payload.data_query == "a = '$x{y}'"
    assert again.payload.output_run == "u/me/fixed" and again.submit_path == submit_dir
    assert yaml.safe_load((submit_dir / "submit_config.yaml").read_text())["qgraphFile"].endswith("w.qgraph")
    # A second run cannot reuse the directory.
    result = bps("prepare", str(graph_config), "--output-run", "u/me/fixed")
    assert result.exit_code == 1 and "already used by another run" in result.output


def test_second_submit_into_one_output_run_is_refused_and_leaves_no_submit_dir(
    graph_config: Path, runs_index: Path, tmp_path: Path
) -> None:
    from butler import Butler

    first = bps("submit", str(graph_config), "--output-run", "u/me/first")
    assert first.exit_code == 0, first.output
    # Another outputRun in the config, so another submit directory, but the same graph (qgraphFile
    # wins), so the same output run: refused before anything is recorded or run.
    second = bps("submit", str(graph_config), "--output-run", "u/me/second")
    assert second.exit_code == 1, second.output
    assert second.output.strip().splitlines()[-1] == (
        f"error: output run 'u/test/run' already exists in {tmp_path / 'repo'} (another submit or "
        "pipetask run holds it); choose a new payload.outputRun (the default {output}/{timestamp} "
        "changes every second)"
    )
    submit = Path.cwd() / "submit" / "u" / "me"
    assert (submit / "first" / "fake.submitted").exists()
    assert not (submit / "second").exists()
    listing = bps("report").output
    assert listing.count("\n") == 2, listing  # header and the first run only
    with Butler(tmp_path / "repo") as butler:
        assert ("u/test/run", "RUN") in butler.registry.query_collections()


def test_submit_report_cancel_restart_with_a_background_plugin(graph_config: Path) -> None:
    result = bps("submit", str(graph_config))
    assert result.exit_code == 0, result.output
    run_id = next(line.split()[2] for line in result.output.splitlines() if line.startswith("Run id:"))
    assert "Outputs: collection u/" in result.output and "in repository" in result.output
    report = bps("report", "--id", run_id[:5])
    assert report.exit_code == 0 and f"Run {run_id}: PENDING" in report.output
    assert bps("cancel", "--id", run_id).exit_code == 0
    assert f"Run {run_id}: DELETED" in bps("report", "--id", run_id).output
    assert "Restarted" in bps("restart", "--id", run_id).output
    listing = bps("report").output.splitlines()
    assert listing[1].split()[:2] == [run_id, "PENDING"]


# -- the user story: the quickstart on the demo repository, run by Parsl -----------------------------
@pytest.fixture
def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    demo = pytest.importorskip("quantumgraph.demo.repo")
    demo.make_demo_repo(tmp_path / "demo_repo", exposures=2, detectors=2)
    configs = tmp_path / "submit_configs"
    configs.mkdir()
    for name in ("quickstart.yaml", "quickstart_pipeline.yaml"):
        shutil.copy(REPO_ROOT / "submit_configs" / name, configs / name)
    monkeypatch.chdir(tmp_path)
    return configs / "quickstart.yaml"


def test_quickstart_submit_runs_everything(quickstart: Path, tmp_path: Path) -> None:
    result = bps("submit", str(quickstart))
    assert result.exit_code == 0, result.output
    assert "Run id:" in result.output and "SUCCEEDED" in result.output
    total = next(line for line in result.output.splitlines() if line.startswith("TOTAL")).split()
    assert total[6] == total[-1] == str(2 * 2 * 2 + 2 + 2)  # every job SUCCEEDED (init + quanta + final)
    from butler import Butler

    butler = Butler(tmp_path / "demo_repo", writeable=False)
    collections = butler.registry.query_collections()
    output = next(c for c, kind in collections if c.startswith("u/") and kind == "CHAINED")
    assert butler.registry.query_datasets("summary", [output]), "the final job registered the outputs"


def test_quickstart_with_failures_exits_3_and_merges_what_exists(quickstart: Path, tmp_path: Path) -> None:
    pipeline = quickstart.parent / "quickstart_pipeline.yaml"
    doc = yaml.safe_load(pipeline.read_text())
    doc["tasks"]["calibrate"]["config"]["fail_detectors"] = [1]
    pipeline.write_text(yaml.safe_dump(doc))
    result = bps("submit", str(quickstart))
    assert result.exit_code == 3, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.strip()}
    assert rows["calibrate"][6] == "2" and rows["gather"][7] == "2"  # FAILED, PRUNED
    assert rows["finalJob"][5] == "1"  # SUCCEEDED even so
    assert "Failed jobs (2):" in result.output

"""bps and pipeline files: ``pipelineYaml: FILE#selection`` reaches the loader, and a task module
living next to its pipeline file is found by the batch jobs (their environment carries the path)."""

from __future__ import annotations

import json
import shutil
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from bps.cli import main
from butler import Butler
from quantumgraph import GraphReader
from quantumgraph.demo.repo import make_demo_repo

REPO_ROOT = Path(__file__).resolve().parents[2]


def bps(*args: str) -> Result:
    return CliRunner().invoke(main, ["--log-level", "WARNING", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo_repo"
    make_demo_repo(path, exposures=2, detectors=2).close()
    return path


@pytest.fixture
def campaign(tmp_path: Path, demo_repo_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The quickstart submit YAML and pipeline in ``campaign/``, the repo beside it, cwd elsewhere."""
    shutil.copytree(demo_repo_template, tmp_path / "demo_repo")
    folder = tmp_path / "campaign"
    folder.mkdir()
    for name in ("quickstart.yaml", "quickstart_pipeline.yaml"):
        shutil.copy(REPO_ROOT / "submit_configs" / name, folder / name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return folder


def set_pipeline(submit_yaml: Path, value: str) -> None:
    doc = yaml.safe_load(submit_yaml.read_text())
    doc["pipelineYaml"] = value
    submit_yaml.write_text(yaml.safe_dump(doc))


def test_prepare_builds_only_the_selected_part(campaign: Path) -> None:
    submit_yaml = campaign / "quickstart.yaml"
    set_pipeline(submit_yaml, "quickstart_pipeline.yaml#..calibrate")
    result = bps("prepare", str(submit_yaml), "--output-run", "u/me/selected")
    assert result.exit_code == 0, result.output
    submit_dir = Path.cwd() / "submit" / "u" / "me" / "selected"
    with GraphReader(submit_dir / "u_me_selected.qgraph") as reader:
        assert list(reader.header.tasks) == ["isr", "calibrate"]
        assert len(reader.quantum_ids()) == 2 * 2 * 2
    recorded = yaml.safe_load((submit_dir / "submit_config.yaml").read_text())
    assert recorded["pipelineYaml"] == f"{campaign / 'quickstart_pipeline.yaml'}#..calibrate"


def test_a_bad_selection_is_one_line_naming_it(campaign: Path) -> None:
    submit_yaml = campaign / "quickstart.yaml"
    set_pipeline(submit_yaml, "quickstart_pipeline.yaml#calibrat")
    result = bps("prepare", str(submit_yaml))
    assert result.exit_code == 1
    assert "quickstart_pipeline.yaml#calibrat: 'calibrat' is neither a task label" in result.output
    set_pipeline(submit_yaml, "quickstart_pipeline.yaml#")
    assert "pipelineYaml: nothing after '#'" in bps("prepare", str(submit_yaml)).output


def test_parsl_jobs_import_a_task_module_living_next_to_the_pipeline(campaign: Path) -> None:
    """Nothing installed, no PYTHONPATH, cwd elsewhere: jobs get the pipeline's directory explicitly."""
    module = f"nearby_{uuid.uuid4().hex[:8]}"
    (campaign / f"{module}.py").write_text(
        textwrap.dedent(
            """\
            from quantumgraph import Input, Output, PipelineTask

            class Twice(PipelineTask):
                dimensions = ("instrument", "exposure", "detector")
                calexp = Input("calexp", "StructuredDataDict", ("instrument", "exposure", "detector"))
                twice = Output("twice", "StructuredDataDict", ("instrument", "exposure", "detector"))

                def run(self, calexp, *, data_id):
                    return {"twice": {"value": 2 * calexp["value"], "detector": data_id["detector"]}}
            """
        )
    )
    (campaign / "stats.yaml").write_text(
        f"description: twice\nimports: [quickstart_pipeline.yaml]\ntasks: {{twice: {module}.Twice}}\n"
    )
    submit_yaml = campaign / "quickstart.yaml"
    set_pipeline(submit_yaml, "stats.yaml#isr,calibrate,twice")
    result = bps("submit", str(submit_yaml), "--output-run", "u/me/twice")
    assert result.exit_code == 0, result.output
    submit_dir = Path.cwd() / "submit" / "u" / "me" / "twice"
    workflow = json.loads((submit_dir / "workflow.json").read_text())
    envs = {
        tuple(map(tuple, job.get("environment", []))) for job in workflow["jobs"] if not job.get("is_final")
    }
    (env,) = envs
    assert dict(env)["PYTHONPATH"].split(":")[0] == str(campaign)
    with Butler(campaign.parent / "demo_repo", writeable=False) as butler:
        refs = butler.registry.query_datasets("twice", ["u/me/twice"])
        got = sorted((butler.get(ref)["value"], butler.get(ref)["detector"]) for ref in refs)
    # raw 100e+d, +1 (isr), *2 (calibrate), *2 (twice); the detector comes from run()'s data_id
    assert got == [(4 * (100 * e + d + 1), d) for e in (1, 2) for d in (0, 1)]


def test_htcondor_prepare_puts_the_pipeline_directory_on_the_jobs_pythonpath(campaign: Path) -> None:
    """The same path through the HTCondor plugin: the rendered DAG's descriptions carry it."""
    submit_yaml = campaign / "quickstart.yaml"
    doc = yaml.safe_load(submit_yaml.read_text())
    doc["wmsServiceClass"] = "htcondor"
    doc["computeSite"] = "pool"
    doc["site"] = {"pool": {}}
    submit_yaml.write_text(yaml.safe_dump(doc))
    result = bps("prepare", str(submit_yaml), "--output-run", "u/me/condor")
    assert result.exit_code == 0, result.output
    dag = (Path.cwd() / "submit" / "u" / "me" / "condor" / "u_me_condor.dag").read_text()
    descriptions = dag.split("SUBMIT-DESCRIPTION ")[1:]
    with_path = [d.split()[0] for d in descriptions if f"PYTHONPATH='{campaign}" in d]
    assert sorted(with_path) == ["calibrate", "gather", "isr", "pipetaskInit"]

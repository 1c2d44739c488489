"""HTCondorService without a pool: prepare through `bps`, and submit/cancel/restart with the schedd faked.

The real schedd is exercised by tests/htcondor/test_htcondor_plugin.py; here the three functions
of ``_submit`` the service calls are replaced, so the service's own decisions (what it records,
what it refuses, what it archives) are tested on any machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bps_testutil import workload_graph, write_yaml
from click.testing import CliRunner, Result
from htcondor_golden import DATA

from bps import WmsError, list_runs
from bps.cli import main
from bps.config import load_bps_config
from bps.wms import JobState, load_wms_service_class
from wms_plugins.htcondor import HTCondorService, HTCondorSiteSettings, HTCondorWorkflow
from wms_plugins.htcondor import _service as service_module
from wms_plugins.htcondor._bindings import DagmanJob, condor_errors


def bps(*args: str) -> Result:
    return CliRunner().invoke(main, ["--log-level", "WARNING", *args], catch_exceptions=False)


@pytest.fixture
def graph_config(cfg_dir: Path) -> Path:
    """A pre-built graph and the htcondor plugin; the repository is real (and empty) because a
    submit reserves the graph's output run in it."""
    from butler import Butler
    from quantumgraph import write_graph

    Butler.create(cfg_dir.parent / "repo").close()
    write_graph(cfg_dir / "w.qgraph", workload_graph(2, 2))
    return write_yaml(
        cfg_dir / "graph.yaml",
        """
qgraphFile: w.qgraph
wmsServiceClass: htcondor
computeSite: pool
site:
  pool:
    requirements: '(OpSys == "LINUX")'
    maxIdle: 10
numberOfRetries: 1
payload: {payloadName: demo, butlerConfig: ../repo, output: "u/{operator}/demo"}
""",
    )


class FakeSchedd:
    """Stands in for the three bindings calls; records what the service asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.next_cluster = 41
        self.queue: dict[int, int] = {}
        """cluster -> JobStatus of DAGMan jobs still queued."""
        self.calls: list[tuple[str, Any]] = []
        monkeypatch.setattr(service_module, "submit_dag", self.submit_dag)
        monkeypatch.setattr(service_module, "query_dagman", self.query_dagman)
        monkeypatch.setattr(service_module, "remove_dag", self.remove_dag)

    def submit_dag(self, dag_file: Path, *, batch_name: str, schedd_name: str, restart: bool) -> int:
        self.next_cluster += 1
        self.calls.append(("submit", (dag_file.name, batch_name, restart)))
        self.queue[self.next_cluster] = 2
        return self.next_cluster

    def query_dagman(self, cluster: int, schedd_name: str) -> DagmanJob:
        if cluster in self.queue:
            return DagmanJob(cluster, self.queue[cluster], True)
        return DagmanJob(cluster, 4, False)

    def remove_dag(self, cluster: int, schedd_name: str, reason: str) -> None:
        self.calls.append(("remove", cluster))
        self.queue.pop(cluster)


def test_plugin_is_found_by_name_and_imports_no_bindings() -> None:
    code = (
        "import sys; from bps.wms import load_wms_service_class; "
        "cls = load_wms_service_class('htcondor'); print(cls.__name__, 'htcondor2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["HTCondorService", "False"]
    assert load_wms_service_class("wms_plugins.htcondor.HTCondorService") is HTCondorService


def test_exported_names() -> None:
    import wms_plugins.htcondor as plugin

    assert sorted(plugin.__all__) == ["HTCondorService", "HTCondorSiteSettings", "HTCondorWorkflow"]


def test_bps_prepare_writes_one_dag_and_no_submit_files(graph_config: Path) -> None:
    result = bps("prepare", str(graph_config), "--output-run", "u/me/htc")
    assert result.exit_code == 0, result.output
    assert "Prepared 12 jobs for htcondor" in result.output
    submit_dir = Path.cwd() / "submit" / "u" / "me" / "htc"
    names = {p.name for p in submit_dir.iterdir()}
    assert {"u_me_htc.dag", "u_me_htc.dag.config", "htcondor_site.json", "htcondor_run.json"} <= names
    assert not list(submit_dir.rglob("*.sub"))
    dag = (submit_dir / "u_me_htc.dag").read_text()
    assert dag.count("\nJOB ") == 11 and "\nFINAL finalJob finalJob\n" in dag
    assert 'requirements = (OpSys == "LINUX")' in dag
    assert "DAGMAN_MAX_JOBS_IDLE = 10" in (submit_dir / "u_me_htc.dag.config").read_text()


def test_bad_site_fails_prepare(graph_config: Path) -> None:
    text = graph_config.read_text().replace("maxIdle: 10", "maxIdel: 10")
    graph_config.write_text(text)
    result = bps("prepare", str(graph_config))
    assert result.exit_code == 2 and "site.pool.maxIdel: unknown key for the htcondor plugin" in result.output


def _prepared(graph_config: Path, tmp_path: Path) -> tuple[HTCondorService, HTCondorWorkflow]:
    from bps._submit import prepare

    config = load_bps_config(graph_config, {"submitPath": str(tmp_path / "submit")})
    prepared = prepare(config)
    assert isinstance(prepared.wms_workflow, HTCondorWorkflow) and isinstance(
        prepared.service, HTCondorService
    )
    return prepared.service, prepared.wms_workflow


def test_submit_cancel_and_what_they_record(
    graph_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedd = FakeSchedd(monkeypatch)
    service, workflow = _prepared(graph_config, tmp_path)
    run_id = service.submit(workflow)
    assert run_id == str(workflow.submit_dir)
    assert schedd.calls == [("submit", (f"{workflow.name}.dag", workflow.name, False))]
    record = json.loads((workflow.submit_dir / "htcondor_run.json").read_text())
    assert [(s["cluster"], s["kind"], s["cancelled"]) for s in record["submissions"]] == [(42, "submit", "")]
    with pytest.raises(WmsError, match="already submitted"):
        service.submit(workflow)

    (report,) = service.report(run_id)
    assert report.state is JobState.PENDING and report.extra["dagman_status"] == "running"

    with pytest.raises(WmsError, match="still running"):
        service.restart(run_id)
    service.cancel(run_id)
    assert schedd.calls[-1] == ("remove", 42)
    record = json.loads((workflow.submit_dir / "htcondor_run.json").read_text())
    assert record["submissions"][0]["cancelled"]
    (report,) = service.report(run_id)
    assert report.state is JobState.DELETED and {job.state for job in report.jobs} == {JobState.DELETED}
    with pytest.raises(WmsError, match="is not running"):
        service.cancel(run_id)
    with pytest.raises(WmsError, match="no rescue DAG"):
        service.restart(run_id)


def test_restart_uses_the_rescue_dag_and_keeps_the_nodes_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedd = FakeSchedd(monkeypatch)
    submit_dir = tmp_path / "fail"
    shutil.copytree(DATA / "runs" / "fail", submit_dir)
    service = HTCondorService()
    assert service.restart(str(submit_dir)) == str(submit_dir)
    name = "u_skyuser_htcfail_20261126T044408Z"
    assert schedd.calls == [("submit", (f"{name}.dag", name, True))]
    archived = submit_dir / f"{name}.dag.nodes.log.89"
    assert archived.read_bytes() == (submit_dir / f"{name}.dag.nodes.log").read_bytes()
    record = json.loads((submit_dir / "htcondor_run.json").read_text())
    assert [(s["cluster"], s["kind"]) for s in record["submissions"]] == [(89, "submit"), (42, "restart")]


def test_restart_refuses_a_succeeded_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeSchedd(monkeypatch)
    submit_dir = tmp_path / "ok"
    shutil.copytree(DATA / "runs" / "success", submit_dir)
    with pytest.raises(WmsError, match="succeeded; there is nothing to restart"):
        HTCondorService().restart(str(submit_dir))


def test_report_without_id_lists_recorded_htcondor_runs(
    graph_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeSchedd(monkeypatch)
    from bps._submit import prepare, submit_prepared

    config = load_bps_config(graph_config, {"submitPath": str(tmp_path / "submit")})
    record = submit_prepared(prepare(config))
    assert [r.run_id for r in list_runs()] == [record.run_id]
    (summary,) = HTCondorService().report(None)
    assert summary.run_id == record.run_id and summary.state is JobState.PENDING and summary.jobs == ()
    listing = bps("report")
    assert record.run_id in listing.output and "PENDING" in listing.output


def test_binding_errors_become_wms_errors() -> None:
    with pytest.raises(WmsError, match=r"asking: RuntimeError: Failed to connect to schedd") as info:
        with condor_errors("asking"):
            raise RuntimeError("Failed to connect\n to schedd")
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(WmsError, match="pip install htcondor"):
        with condor_errors("submitting"):
            raise ImportError("No module named 'htcondor2'")


def test_site_settings_round_trip_through_the_submit_dir(graph_config: Path, tmp_path: Path) -> None:
    service, workflow = _prepared(graph_config, tmp_path)
    doc = json.loads((workflow.submit_dir / "htcondor_site.json").read_text())
    assert doc["format"] == "skybatch.htcondor.site" and doc["version"].startswith("1.")
    assert HTCondorSiteSettings.from_json(doc) == workflow.settings

"""The submit YAML's ``environment:`` reaches the jobs: real Parsl runs, and the HTCondor DAG text.

A job whose command is ``/usr/bin/env`` (a command template, as an LSST operator may write)
prints the environment it got into its log, which is what the tests read.  The pool test of the
HTCondor side is in tests/htcondor/test_htcondor_plugin.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bps_testutil import MINIMAL, NOW, workload_graph, write_yaml

from bps.config import load_bps_config
from bps.workflow import WorkflowGraph, build_workflow
from wms_plugins.htcondor._render import environment_command
from wms_plugins.parsl import ParslService

ENV_TEMPLATES = """
runQuantumCommand: /usr/bin/env
pipetask:
  pipetaskInit: {runQuantumCommand: /usr/bin/env}
  gather:
    environment: {SKY_LISTED: "gather-{payloadName}"}
finalJob: {command1: /usr/bin/env}
environment:
  SKY_LISTED: "listed-{payloadName}"
  SKY_FROM_SHELL: "${SKY_SHELL_ONLY}"
  SKY_AT_RUN_TIME: "${SKY_WORKER_ONLY}/x"
"""


def _env_of(log: Path) -> dict[str, str]:
    lines = [line for line in log.read_text().splitlines() if "=" in line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_parsl_jobs_get_listed_variables_and_inherit_the_shell(
    cfg_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The submitting shell: one variable it lists (by reference), one it does not list at all.
    shell = {"USER": "alice", "SKY_SHELL_ONLY": "from-shell"}
    monkeypatch.setenv("SKY_SHELL_ONLY", "from-shell")
    monkeypatch.setenv("SKY_NOT_LISTED", "inherited")
    monkeypatch.setenv("SKY_WORKER_ONLY", "/worker")
    config = load_bps_config(
        write_yaml(cfg_dir / "submit.yaml", MINIMAL + ENV_TEMPLATES), now=NOW, environ=shell
    )
    submit_dir = tmp_path / "submit"
    submit_dir.mkdir()
    workflow = build_workflow(config, submit_dir / "g.qgraph", workload_graph(exposures=1, detectors=1))
    service = ParslService()
    run_id = service.submit(service.prepare(config, workflow, submit_dir))
    (report,) = service.report(run_id)
    assert report.state.value == "SUCCEEDED"
    isr = _env_of(submit_dir / "logs" / "isr" / "isr_Cam_0_0.out")
    assert isr["SKY_LISTED"] == "listed-demo" and isr["SKY_FROM_SHELL"] == "from-shell"
    assert isr["SKY_AT_RUN_TIME"] == "/worker/x"  # not set at submit: filled on the worker
    # The local executors run jobs in bps's own environment: unlisted variables reach them too.
    assert isr["SKY_NOT_LISTED"] == "inherited"
    gather = _env_of(submit_dir / "logs" / "gather" / "gather_Cam_0.out")
    assert gather["SKY_LISTED"] == "gather-demo"  # the task's own section wins
    final = _env_of(submit_dir / "logs" / "finalJob" / "finalJob.out")
    assert final["SKY_LISTED"] == "listed-demo"


def test_htcondor_environment_command_quotes_and_defers() -> None:
    line = environment_command({"A": "x y", "B": "it's", "C": '"q"', "D": "${HOME_ON_DAGMAN}/d"})
    assert line == "environment = \"A='x y' B='it''s' C='\"\"q\"\"' D='$ENV(HOME_ON_DAGMAN)/d'\""


def test_htcondor_dag_carries_each_labels_environment(cfg_dir: Path, tmp_path: Path) -> None:
    from wms_plugins.htcondor._render import render_dag
    from wms_plugins.htcondor._site import HTCondorSiteSettings
    from wms_plugins.htcondor._submit_dir import HTCondorLayout

    extra = ENV_TEMPLATES.replace("/usr/bin/env", "/bin/true")
    config = load_bps_config(
        write_yaml(cfg_dir / "submit.yaml", MINIMAL + extra),
        now=NOW,
        environ={"USER": "alice", "SKY_SHELL_ONLY": "s"},
    )
    workflow = build_workflow(config, tmp_path / "g.qgraph", workload_graph(exposures=1, detectors=1))
    layout = HTCondorLayout(tmp_path, workflow.name)
    render_dag(
        workflow, layout, HTCondorSiteSettings(environment=(("SITE_VAR", "1"), ("SKY_LISTED", "site")))
    )
    text = layout.dag_file.read_text()
    isr = text[text.index("SUBMIT-DESCRIPTION isr {") :].split("}", 1)[0]
    assert "environment = \"SITE_VAR='1' SKY_LISTED='listed-demo' SKY_FROM_SHELL='s' " in isr
    assert "SKY_AT_RUN_TIME='$ENV(SKY_WORKER_ONLY)/x'" in isr
    gather = text[text.index("SUBMIT-DESCRIPTION gather {") :].split("}", 1)[0]
    assert "SKY_LISTED='gather-demo'" in gather


def test_parsl_fills_wms_attempt_num_per_attempt(cfg_dir: Path, tmp_path: Path) -> None:
    """``{wmsAttemptNum}``: 0 on the first attempt, then 1 (DAGMan's $(RETRY) numbering)."""
    extra = """
numberOfRetries: 1
runQuantumCommand: "/bin/sh -c 'echo attempt={wmsAttemptNum}; test {wmsAttemptNum} -ge 1'"
"""
    config = load_bps_config(
        write_yaml(cfg_dir / "submit.yaml", MINIMAL + extra), now=NOW, environ={"USER": "a"}
    )
    submit_dir = tmp_path / "submit"
    submit_dir.mkdir()
    built = build_workflow(config, submit_dir / "g.qgraph", workload_graph(exposures=1, detectors=1))
    workflow = WorkflowGraph(built.name)  # the isr job alone is enough
    workflow.add_jobs([built.job("isr_Cam_0_0")])
    service = ParslService()
    run_id = service.submit(service.prepare(config, workflow, submit_dir))
    (report,) = service.report(run_id)
    assert report.state.value == "SUCCEEDED"
    log = (submit_dir / "logs" / "isr" / "isr_Cam_0_0.out").read_text()
    assert [line for line in log.splitlines() if line.startswith("attempt=")] == ["attempt=0", "attempt=1"]

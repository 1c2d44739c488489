"""The rendered DAG (one file, one SUBMIT-DESCRIPTION per label, VARS per node) against golden files."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from htcondor_golden import DATA, check_text

from bps import WmsError
from bps.config import FinalJobWhen, SiteConfig
from bps.workflow import GenericJob, WorkflowGraph
from wms_plugins.htcondor._render import (
    EDGE_LINE_NAMES,
    dag_text_parts,
    dagman_config_text,
    node_retries,
    quote_argument,
    quote_arguments,
    render_dag,
    vars_value,
)
from wms_plugins.htcondor._site import HTCondorSiteSettings, site_settings
from wms_plugins.htcondor._submit_dir import HTCondorLayout

SUBMIT_DIR = Path("/data/submit/u/alice/run1")
PIPETASK = "/opt/venv/bin/pipetask"
BUTLER = "/opt/venv/bin/butler"
GRAPH = f"{SUBMIT_DIR}/u_alice_run1.qgraph"
REPO = "/data/repo"


def _qid(n: int) -> uuid.UUID:
    return uuid.UUID(int=0x1234 << 96 | n)


def small_workflow(final_when: FinalJobWhen = FinalJobWhen.ALWAYS) -> WorkflowGraph:
    """init -> isr x3 -> calibrate x3 -> gather; a final merge job.

    isr: 2 GB, retries 2 unless exit 3; calibrate: 1 GB growing x2 up to 4 GB, disk, walltime,
    one calibrate job with its own memory; gather: 4 cpus; one isr job with a spaced argument.
    """
    wf = WorkflowGraph("u_alice_run1", final_job_when=final_when)
    jobs = [
        GenericJob(
            "pipetaskInit",
            "pipetaskInit",
            [PIPETASK, "pre-exec-init-qbb", REPO, GRAPH],
            1,
            2048,
            0,
            is_init=True,
        )
    ]
    prefix = [PIPETASK, "run-qbb", REPO, GRAPH]
    for d in range(3):
        jobs.append(
            GenericJob(
                f"isr_{d}",
                "isr",
                [*prefix, "--qgraph-node-id", str(_qid(d))]
                + (["--note", "it's a 'test' \"x\" $HOME"] if d == 2 else []),
                1,
                2048,
                2,
                quantum_ids=(_qid(d),),
                retry_unless_exit=(3,),
            )
        )
    for d in range(3):
        jobs.append(
            GenericJob(
                f"calibrate_{d}",
                "calibrate",
                [*prefix, "--qgraph-node-id", str(_qid(10 + d))],
                1,
                3000 if d == 1 else 1024,
                1,
                quantum_ids=(_qid(10 + d),),
                request_disk=500,
                request_walltime=3600,
                memory_multiplier=2.0,
                memory_limit=4096,
            )
        )
    jobs.append(
        GenericJob(
            "gather_1",
            "gather",
            [*prefix, "--qgraph-node-id", str(_qid(20))],
            4,
            2048,
            0,
            quantum_ids=(_qid(20),),
        )
    )
    jobs.append(
        GenericJob(
            "finalJob",
            "finalJob",
            [BUTLER, "transfer-from-graph", GRAPH, REPO, "--update-output-chain", "--register-dataset-types"],
            1,
            2048,
            3,
            is_final=True,
        )
    )
    wf.add_jobs(jobs)
    wf.add_dependencies([("pipetaskInit", f"isr_{d}") for d in range(3)])
    wf.add_dependencies([(f"isr_{d}", f"calibrate_{d}") for d in range(3)])
    wf.add_dependencies([(f"calibrate_{d}", "gather_1") for d in range(3)])
    wf.add_dependencies([("gather_1", "finalJob")])
    return wf


def site() -> HTCondorSiteSettings:
    return site_settings(
        SiteConfig(
            "pool",
            {
                "requirements": '(OpSys == "LINUX") && (Arch == "X86_64")',
                "accountingGroup": "group_survey.prod",
                "submitCommands": {"+ProjectName": '"survey"', "rank": "Memory"},
                "environment": {"OMP_NUM_THREADS": 1},
                "maxIdle": 200,
                "maxJobs": 5000,
                "dagmanConfig": {"DAGMAN_USER_LOG_SCAN_INTERVAL": 1},
                "nodeStatusInterval": 5,
            },
        )
    )


def render(wf: WorkflowGraph, settings: HTCondorSiteSettings | None = None) -> str:
    layout = HTCondorLayout(SUBMIT_DIR, wf.name)
    return "".join(dag_text_parts(wf, layout, settings or site()))


def test_small_workflow_dag_matches_golden() -> None:
    check_text(DATA / "render" / "small.dag", render(small_workflow()))
    check_text(DATA / "render" / "small.dag.config", dagman_config_text(small_workflow(), site()))


def test_final_job_when_success_is_an_ordinary_child_node() -> None:
    check_text(
        DATA / "render" / "final_success.dag",
        render(small_workflow(FinalJobWhen.SUCCESS), HTCondorSiteSettings()),
    )


def test_dag_shape() -> None:
    text = render(small_workflow())
    # One description per label, one JOB/FINAL line per job, no other files named.
    assert text.count("\nSUBMIT-DESCRIPTION ") == 5
    assert text.count("\nJOB ") == 8 and text.count("\nFINAL finalJob finalJob\n") == 1
    # Per-node VARS only for what differs: the quantum id, calibrate_1's memory.
    assert f'VARS isr_0 skyargs="{_qid(0)}"' in text
    assert f'VARS calibrate_1 skyargs="{_qid(11)}" skymem="3000"' in text
    assert "VARS pipetaskInit" not in text and "VARS finalJob" not in text
    # Retries: unless-exit; memory steps added (1024 -> 2048 -> 4096: two steps); none on FINAL.
    assert "RETRY isr_0 2 UNLESS-EXIT 3" in text
    assert "RETRY calibrate_0 3\n" in text and "RETRY calibrate_1 2\n" in text
    assert "RETRY finalJob" not in text and "SCRIPT PRE finalJob" in text
    # Compact edges: the three isr children of init share a line; gather's parents too.
    assert "PARENT pipetaskInit CHILD isr_0 isr_1 isr_2" in text
    assert "PARENT calibrate_0 calibrate_1 calibrate_2 CHILD gather_1" in text
    assert "CHILD finalJob" not in text  # FINAL nodes take no edges


def test_memory_steps() -> None:
    jobs = {job.name: job for job in small_workflow()}
    assert node_retries(jobs["calibrate_0"]) == 1 + 2  # 1024 * 2 * 2 = 4096
    assert node_retries(jobs["calibrate_1"]) == 1 + 1  # 3000 * 2 > 4096 (capped)
    assert node_retries(jobs["isr_0"]) == 2


def test_render_writes_one_dag_and_its_config(tmp_path: Path) -> None:
    wf = small_workflow()
    layout = HTCondorLayout(tmp_path, wf.name)
    rendered = render_dag(wf, layout, HTCondorSiteSettings())
    assert rendered.dag_file == tmp_path / "u_alice_run1.dag" and rendered.nodes == 9
    assert rendered.size == rendered.dag_file.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "logs",
        "u_alice_run1.dag",
        "u_alice_run1.dag.config",
    ]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "calibrate",
        "finalJob",
        "gather",
        "isr",
        "pipetaskInit",
    ]


def test_long_edge_lists_are_split() -> None:
    wf = WorkflowGraph("w")
    n = EDGE_LINE_NAMES + 5
    wf.add_jobs([GenericJob("a", "t", ["/bin/true"], 1, 1, 0)])
    wf.add_jobs(GenericJob(f"b{i}", "u", ["/bin/true", str(i)], 1, 1, 0) for i in range(n))
    wf.add_dependencies(("a", f"b{i}") for i in range(n))
    lines = [line for line in render(wf, HTCondorSiteSettings()).splitlines() if line.startswith("PARENT")]
    assert len(lines) == 2 and sum(len(line.split()) - 3 for line in lines) == n


def test_quoting() -> None:
    assert quote_argument("plain") == "plain"
    assert quote_argument("with space") == "'with space'"
    assert quote_argument("it's") == "'it''s'"
    assert quote_argument("") == "''"
    assert quote_argument("$HOME") == "$(DOLLAR)HOME"
    assert quote_arguments(['say "hi"', "a\\b"]) == "'say \\\"hi\\\"' a\\b"
    assert quote_arguments(["end\\"]) == "end\\ "
    assert vars_value('a "b" \\c') == '"a \\"b\\" \\\\c"'
    with pytest.raises(WmsError, match="newline"):
        vars_value("a\nb")


def test_bad_node_names_and_exit_code_lists_are_refused() -> None:
    wf = WorkflowGraph("w")
    wf.add_jobs([GenericJob("has space", "t", ["/bin/true"], 1, 1, 0)])
    with pytest.raises(WmsError, match="cannot be a DAGMan node name"):
        render(wf)
    wf = WorkflowGraph("w")
    wf.add_jobs([GenericJob("PARENT", "t", ["/bin/true"], 1, 1, 0)])
    with pytest.raises(WmsError, match="not PARENT or CHILD"):
        render(wf)
    wf = WorkflowGraph("w")
    wf.add_jobs([GenericJob("j", "t", ["/bin/true"], 1, 1, 0)])
    with pytest.raises(WmsError, match="white space"):
        "".join(dag_text_parts(wf, HTCondorLayout(Path("/my runs/x"), "w"), HTCondorSiteSettings()))


def test_several_unless_exit_codes_get_a_post_script(tmp_path: Path) -> None:
    wf = WorkflowGraph("w")
    wf.add_jobs(
        [
            GenericJob("j", "t", ["/bin/true"], 1, 1, 2, retry_unless_exit=(3, 4)),
            GenericJob("k", "t", ["/bin/true"], 1, 1, 2, retry_unless_exit=(5,)),
        ]
    )
    layout = HTCondorLayout(tmp_path, "w")
    render_dag(wf, layout, HTCondorSiteSettings())
    text = layout.dag_file.read_text()
    assert "RETRY j 2 UNLESS-EXIT 3\n" in text and "RETRY k 2 UNLESS-EXIT 5\n" in text
    assert f"SCRIPT POST j {tmp_path}/skybatch_unless_exit.sh $RETURN 3 3 4\n" in text
    assert "SCRIPT POST k" not in text
    script = layout.unless_exit_script
    assert script.stat().st_mode & 0o111
    for returned, expected in (("4", 3), ("3", 3), ("0", 0), ("7", 7), ("-9", 1)):
        done = subprocess.run([str(script), returned, "3", "3", "4"])
        assert done.returncode == expected, (returned, done.returncode)


def test_relative_program_is_resolved_or_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "bin" / "mytool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tool.parent))
    wf = WorkflowGraph("w")
    wf.add_jobs([GenericJob("j", "t", ["mytool", "x"], 1, 1, 0)])
    assert f"executable = {tool}\n" in render(wf)
    wf.job("j").command = ["no-such-tool-for-skybatch"]
    with pytest.raises(WmsError, match="cannot find the program"):
        render(wf)


def test_job_environment_joins_the_site_environment_quoted() -> None:
    """bps gives jobs the pipeline's task directories as PYTHONPATH; it must reach the description."""
    wf = WorkflowGraph("w", final_job_when=FinalJobWhen.ALWAYS)
    env = (("PYTHONPATH", "/shared/it's/tasks:/opt/x"),)
    init = GenericJob(
        "pipetaskInit",
        "pipetaskInit",
        [PIPETASK, "pre-exec-init-qbb", REPO, GRAPH],
        1,
        1024,
        0,
        is_init=True,
        environment=env,
    )
    wf.add_jobs([init])
    assert "environment = \"OMP_NUM_THREADS='1' PYTHONPATH='/shared/it''s/tasks:/opt/x'\"" in render(wf)
    other = GenericJob("isr_1", "isr", [PIPETASK, "run-qbb", REPO, GRAPH], 1, 1024, 0, environment=env)
    odd = GenericJob("isr_2", "isr", [PIPETASK, "run-qbb", REPO, GRAPH], 1, 1024, 0)
    wf2 = WorkflowGraph("w2", final_job_when=FinalJobWhen.ALWAYS)
    wf2.add_jobs([other, odd])
    with pytest.raises(WmsError, match="different environment"):
        render(wf2)

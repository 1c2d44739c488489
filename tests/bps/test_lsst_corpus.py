"""LSST's own submit YAMLs prepare here, and the prepared workflow is what LSST's documentation says.

The corpus (tests/data/lsst_submit/, origins in its README.md) holds 30 files from lsst/ctrl_bps,
lsst/ctrl_bps_htcondor and lsst/ctrl_bps_parsl: shipped defaults and includes, test data, and the
YAML blocks of their user guides, with only the repository, pipeline and collections swapped.
Complete submit files are prepared as they are; includes the way LSST's own documentation combines
them (``pipelines_check_execution_butler.yaml``): below ``pipelines_check.yaml``.  Every file is
prepared once, for real (graph built from a demo repository, workflow rendered by the plugin), and
the tests read the prepared workflows.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bps import BpsError
from bps._submit import prepare
from bps.config import BpsConfig, load_bps_config
from bps.workflow import GenericJob
from quantumgraph.demo.repo import make_demo_repo

CORPUS = Path(__file__).resolve().parents[1] / "data" / "lsst_submit"
PIPELINES_CHECK = "ctrl_bps/doc/lsst.ctrl.bps/pipelines_check.yaml"
#: Complete submit YAMLs (everything else is an include, prepared below pipelines_check.yaml).
SUBMITS = {
    PIPELINES_CHECK,
    "ctrl_bps/doc/lsst.ctrl.bps/pipelines_check_execution_butler.yaml",
    "ctrl_bps_parsl/doc/use/ci_hsc_local.yaml",
    "ctrl_bps_parsl/doc/use/ci_hsc_tiger.yaml",
}
#: The files that need an LSST site or plugin, and the error that says so.
NEEDS_LSST_SITE = {
    "ctrl_bps/config/bps_idf.yaml": r"runner_command: unknown key .*did you mean 'runQuantumCommand'",
    "ctrl_bps_parsl/doc/use/ci_hsc_tiger.yaml": (
        r"site\.tiger\.class: lsst\.ctrl\.bps\.parsl\.sites\.princeton"
        r"\.Tiger is LSST's configuration of one particular site"
    ),
}
FILES = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.yaml") if p.name != "pipeline.yaml")


@pytest.fixture(scope="module")
def corpus_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("lsst_corpus_repo") / "repo"
    make_demo_repo(repo, 2, 2)
    return repo


def corpus_env(work: Path, repo: Path) -> dict[str, str]:
    """The submitting shell of the corpus runs: the swapped repository and LSST's CTRL_BPS_DIR."""
    return {
        "USER": "alice",
        "HOME": "/home/alice",
        "PWD": str(work),
        "TMPDIR": str(work),
        "LSST_CORPUS_DIR": str(CORPUS),
        "LSST_CORPUS_REPO": str(repo),
        "CTRL_BPS_DIR": str(CORPUS / "ctrl_bps"),
    }


@dataclass
class Prepared:
    config: BpsConfig | None
    jobs: dict[str, GenericJob]
    submit_dir: Path | None
    error: str
    warnings: list[str]


def test_corpus_has_thirty_files_each_with_its_origin() -> None:
    assert len(FILES) == 30
    readme = (CORPUS / "README.md").read_text()
    for name in FILES:
        head = (CORPUS / name).read_text().splitlines()[0]
        assert head.startswith("# Origin: lsst/ctrl_bps"), name
        assert name in readme, f"{name} is not listed in the corpus README"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, corpus_repo: Path) -> dict[str, Prepared]:
    base = tmp_path_factory.mktemp("lsst_corpus")
    out: dict[str, Prepared] = {}
    cwd = os.getcwd()
    logger = logging.getLogger()
    try:
        for i, name in enumerate(FILES):
            work = base / f"f{i:02d}"
            work.mkdir()
            os.chdir(work)
            env = corpus_env(work, corpus_repo)
            if name in SUBMITS:
                target = CORPUS / name
            else:
                target = work / "submit.yaml"
                target.write_text(
                    "includeConfigs:\n"
                    "  - ${CTRL_BPS_DIR}/doc/lsst.ctrl.bps/pipelines_check.yaml\n"
                    f"  - {CORPUS / name}\n"
                )
            records: list[str] = []
            handler = logging.Handler()
            handler.emit = lambda record, records=records: records.append(record.getMessage())  # type: ignore[method-assign]
            logger.addHandler(handler)
            try:
                config = load_bps_config(target, environ=env)
                run = prepare(config)
                jobs = {job.name: job for job in run.wms_workflow.workflow}
                out[name] = Prepared(config, jobs, run.submit_dir, "", records)
            except BpsError as err:
                out[name] = Prepared(None, {}, None, str(err), records)
            finally:
                logger.removeHandler(handler)
    finally:
        os.chdir(cwd)
    return out


def test_at_least_27_of_30_prepare(prepared: dict[str, Prepared]) -> None:
    failed = {name: p.error for name, p in prepared.items() if p.config is None}
    assert set(failed) == set(NEEDS_LSST_SITE), failed
    for name, pattern in NEEDS_LSST_SITE.items():
        assert re.search(pattern, failed[name]), failed[name]
    assert len(prepared) - len(failed) == 28


def _job(p: Prepared, label: str) -> GenericJob:
    return next(job for job in p.jobs.values() if job.label == label)


def _graph(p: Prepared) -> str:
    assert p.config is not None
    return str(p.config.submit_path / f"{p.config.uniq_proc_name}.qgraph")


def test_pipelines_check_defaults_are_lsst_ones(prepared: dict[str, Prepared]) -> None:
    p = prepared[PIPELINES_CHECK]
    assert p.config is not None
    # payload.output defaults to u/{operator}/{payloadName}, outputRun to {output}/{timestamp}.
    assert p.config.payload.output == "u/alice/pipelines_check"
    assert p.config.payload.output_run.startswith("u/alice/pipelines_check/")
    # computeSite: ncsapool has no site entry: accepted, the plugin's defaults apply.
    assert p.config.compute_site == "ncsapool" and dict(p.config.site.settings) == {}
    # One quantum per task for exposure=1 AND detector=1, plus the init and final jobs.
    assert sorted(job.label for job in p.jobs.values()) == [
        "calibrate",
        "finalJob",
        "gather",
        "isr",
        "pipetaskInit",
    ]
    assert _job(p, "isr").request_memory == 2048 and _job(p, "isr").request_cpus == 1
    assert _job(p, "isr").command[:2] == ["pipetask", "run-qbb"]


def test_execution_butler_keys_warn_once_and_change_nothing(prepared: dict[str, Prepared]) -> None:
    p = prepared["ctrl_bps/doc/lsst.ctrl.bps/pipelines_check_execution_butler.yaml"]
    assert p.config is not None and p.config.payload.output == "u/alice/pcheck_ebutler"
    eb = [w for w in p.config.warnings if w.startswith("executionButler:")]
    assert len(eb) == 1 and "quantum-backed butler" in eb[0] and "final merge job" in eb[0]
    assert sum(w.startswith("executionButler:") for w in p.warnings) == 1  # logged once too
    # The operator's pipetaskInit.runQuantumCommand runs, with {outCollection} (LSST's old name
    # of outputRun) and the job placeholders filled; LSST's ${CTRL_MPEXEC_DIR}/bin/pipetask is ours.
    command = _job(p, "pipetaskInit").command
    run = p.config.payload.output_run
    repo = str(p.config.payload.butler_config)
    assert command[:3] == ["pipetask", "--long-log", "--log-level=VERBOSE"]  # {initPreCmdOpts}
    init = command[3:]
    assert init[:8] == [
        "run",
        "-b",
        repo,
        "-i",
        "DemoCam/defaults",
        "-o",
        "u/alice/pcheck_ebutler",
        "--output-run",
    ]
    assert init[8:12] == [run, "--qgraph", _graph(p), "--qgraph-id"] and re.fullmatch(r"[0-9a-f]+", init[12])
    # {qgraphNodeId} of the init job is empty: the argument is dropped, as a shell would.
    assert init[13:] == ["--qgraph-node-id", "--clobber-outputs", "--init-only", "--extend-run"]
    assert _job(p, "finalJob").command[:2] == ["butler", "transfer-from-graph"]


def test_qbb_defaults_render_as_lsst_documents(prepared: dict[str, Prepared]) -> None:
    p = prepared["ctrl_bps/python/lsst/ctrl/bps/etc/bps_qbb.yaml"]
    assert p.config is not None
    repo = p.config.payload.butler_config
    isr = _job(p, "isr")
    # {runPreCmdOpts} -> {defaultPreCmdOpts}: LSST's "--long-log --log-level=VERBOSE" (ours too).
    opts = ["--long-log", "--log-level=VERBOSE"]
    assert isr.command == [
        "pipetask",
        *opts,
        "run-qbb",
        repo,
        _graph(p),
        "--qgraph-node-id",
        str(isr.quantum_ids[0]),
    ]
    assert _job(p, "pipetaskInit").command == ["pipetask", *opts, "pre-exec-init-qbb", repo, _graph(p)]
    assert _job(p, "finalJob").command == [
        "butler",
        *opts,
        "transfer-from-graph",
        _graph(p),
        repo,
        "--register-dataset-types",
        "--update-output-chain",
        "--transfer-dimensions",
    ]
    warned = {w.split(":")[0] for w in p.config.warnings}
    assert {
        "createQuantumGraph",
        "updateQuantumGraph",
        "executionButler",
        "finalJob.concurrencyLimit",
    } <= warned


def test_lsst_defaults_file_commands_and_plugin(prepared: dict[str, Prepared]) -> None:
    p = prepared["ctrl_bps/python/lsst/ctrl/bps/etc/bps_defaults.yaml"]
    assert p.config is not None and p.config.wms_service_class == "htcondor"  # LSST's class name
    isr = _job(p, "isr")
    assert isr.command[:4] == ["pipetask", "--long-log", "--log-level=VERBOSE", "run"]
    tail = isr.command[-9:]
    assert tail[:3] == ["--qgraph", _graph(p), "--qgraph-id"] and re.fullmatch(r"[0-9a-f]+", tail[3])
    assert tail[4:] == ["--qgraph-node-id", str(isr.quantum_ids[0]), "--clobber-outputs"] + [
        "--skip-init-writes",
        "--extend-run",
    ]
    assert isr.command[isr.command.index("--qgraph-node-id") + 1] == str(isr.quantum_ids[0])
    assert (p.submit_dir / "submit_config.yaml").exists()
    # The early defaults name outputRun outCollection; it resolves to the same run.
    old = prepared["ctrl_bps/etc/bps_defaults.yaml"]
    assert old.config is not None
    init = _job(old, "pipetaskInit").command
    assert init[init.index("--output-run") + 1] == old.config.payload.output_run


def test_execution_butler_era_final_job_never(prepared: dict[str, Prepared]) -> None:
    p = prepared["ctrl_bps/python/lsst/ctrl/bps/etc/bps_eb.yaml"]
    assert p.config is not None
    assert "finalJob" not in p.jobs  # finalJob.whenRun: NEVER
    isr = _job(p, "isr")
    opts = ["--long-log", "--log-level=VERBOSE"]  # {runPreCmdOpts}: LSST's default
    assert isr.command[:6] == ["pipetask", *opts, "run", "--butler-config", p.config.payload.butler_config]
    assert isr.command[6:10] == ["-i", "DemoCam/defaults", "-o", "u/alice/pipelines_check"]


def test_memory_scaling_example(prepared: dict[str, Prepared]) -> None:
    # requestMemory 3072, requestMemoryMax 20480, memoryMultiplier 2.0: 6, 12, then 20 GB.
    p = prepared["ctrl_bps/doc/quickstart/memory_scaling.yaml"]
    assert p.config is not None
    isr = _job(p, "isr")
    assert (isr.request_memory, isr.memory_multiplier, isr.memory_limit) == (3072, 2.0, 20480)
    assert isr.number_of_retries == 5  # LSST: 5 retries when memoryMultiplier is set
    assert any(
        "memoryMultiplier is set but can never take effect" in w and "parsl" in w for w in p.config.warnings
    )


def test_final_job_memory_and_commands(prepared: dict[str, Prepared]) -> None:
    memory = prepared["ctrl_bps/doc/quickstart/final_job_memory.yaml"]
    final = _job(memory, "finalJob")
    assert (final.request_memory, final.memory_multiplier, final.memory_limit, final.number_of_retries) == (
        4096,
        2.0,
        16384,
        5,
    )
    assert _job(memory, "isr").memory_multiplier is None and _job(memory, "isr").request_memory == 2048
    p = prepared["ctrl_bps/doc/quickstart/final_job.yaml"]
    assert p.config is not None
    assert _job(p, "finalJob").command == [
        "butler",
        "transfer-from-graph",
        _graph(p),
        p.config.payload.butler_config,
        "--register-dataset-types",
        "--update-output-chain",
    ]


def test_retries_turned_off(prepared: dict[str, Prepared]) -> None:
    p = prepared["ctrl_bps/doc/quickstart/disable_retries.yaml"]
    for job in p.jobs.values():
        assert (job.memory_multiplier, job.number_of_retries, job.retry_unless_exit) == (None, 0, ())


def test_clustering_snippets(prepared: dict[str, Prepared]) -> None:
    p = prepared["ctrl_bps/doc/quickstart/dimension_clustering.yaml"]
    cluster = _job(p, "clusterLabel1")
    assert len(cluster.quantum_ids) == 2 and sorted(j.label for j in p.jobs.values()) == [
        "clusterLabel1",
        "finalJob",
        "gather",
        "pipetaskInit",
    ]
    dep = prepared["ctrl_bps/doc/quickstart/find_dependency_method.yaml"]
    assert dep.config is not None and len(_job(dep, "clusterLabel1").quantum_ids) == 3
    assert any(w.startswith("cluster.clusterLabel1.findDependencyMethod:") for w in dep.config.warnings)


def test_old_full_graph_command_and_run_init(prepared: dict[str, Prepared]) -> None:
    p = prepared["ctrl_bps/doc/quickstart/full_qgraph.yaml"]
    assert p.config is not None
    isr = _job(p, "isr").command
    assert isr[:6] == ["pipetask", "--long-log", "run", "-b", p.config.payload.butler_config, "--output"]
    assert isr[isr.index("--qgraph-node-id") + 1] == str(_job(p, "isr").quantum_ids[0])
    init = prepared["ctrl_bps/doc/quickstart/run_init.yaml"]
    assert init.config is not None
    command = _job(init, "pipetaskInit").command
    assert command[-5:] == [
        "--init-only",
        "--register-dataset-types",
        "--qgraph",
        _graph(init),
        "--clobber-outputs",
    ]


def test_free_form_variables(prepared: dict[str, Prepared]) -> None:
    p = prepared["ctrl_bps/tests/data/initialize_config.yaml"]
    assert p.config is not None
    # submitPath: "{tempDir}/submit_test/{outputRun}"; {tempDir} is the submitting shell's TMPDIR.
    assert p.submit_dir is not None and p.submit_dir.parent.parent.parent.parent.name == "submit_test"
    unused = sorted(w.split(":")[0] for w in p.config.warnings if "kept as a free-form variable" in w)
    assert unused == [
        "finalJob.p1",
        "finalJob.p2",
        "p1",
        "p2",
        "p3",
        "p4",
        "pipetask.ptask1.p2",
        "pipetask.ptask1.p3",
    ]
    config = prepared["ctrl_bps/tests/data/config.yaml"]
    assert config.config is not None and config.config.resolved["foo"] == {"qux": 1}


def test_plugin_keys(prepared: dict[str, Prepared]) -> None:
    local = prepared["ctrl_bps_parsl/doc/use/ci_hsc_local.yaml"]
    assert local.config is not None and local.config.wms_service_class == "parsl"
    assert local.submit_dir is not None
    site = (local.submit_dir / "parsl_site.json").read_text()
    assert '"max_threads": 10' in site and '"executor": "threads"' in site  # class Local, cores: 10
    htc = prepared["ctrl_bps_htcondor/python/lsst/ctrl/bps/htcondor/etc/htcondor_defaults.yaml"]
    assert htc.config is not None and htc.config.resources.memory_limit == 491520
    prov = prepared["ctrl_bps_htcondor/doc/userguide/provisioning.yaml"]
    assert prov.config is not None and any(w.startswith("provisionResources:") for w in prov.config.warnings)


def test_save_dot_writes_the_workflow_graph(
    corpus_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_bps_config(
        CORPUS / PIPELINES_CHECK, {"saveDot": True}, environ=corpus_env(tmp_path, corpus_repo)
    )
    run = prepare(config)
    dot = (run.submit_dir / "bps_generic_workflow.dot").read_text()
    assert dot.startswith("digraph ") and '"pipetaskInit" -> "isr_DemoCam_1_1";' in dot
    assert dot.count(" -> ") == len(list(run.wms_workflow.workflow.edges()))


def test_lsst_qbb_templates_with_clustering_run_for_real(
    corpus_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LSST's quantum-backed-butler templates and a dimension cluster, submitted on Parsl: every job
    runs the command the operator's files wrote, and the outputs are registered."""
    from bps._submit import submit_prepared
    from butler import Butler

    monkeypatch.chdir(tmp_path)
    submit = tmp_path / "submit.yaml"
    includes = [PIPELINES_CHECK, "ctrl_bps/python/lsst/ctrl/bps/etc/bps_qbb.yaml"]
    includes.append("ctrl_bps/doc/quickstart/dimension_clustering.yaml")
    submit.write_text("includeConfigs:\n" + "".join(f"  - {CORPUS / name}\n" for name in includes))
    config = load_bps_config(submit, environ=corpus_env(tmp_path, corpus_repo))
    run = prepare(config)
    cluster = next(job for job in run.wms_workflow.workflow if job.label == "clusterLabel1")
    ids = ",".join(str(q) for q in cluster.quantum_ids)
    assert cluster.command[-2:] == ["--qgraph-node-id", ids] and "," in ids
    record = submit_prepared(run)
    (report,) = run.service.report(record.wms_run_id or record.run_id)
    assert report.state.value == "SUCCEEDED", report
    with Butler(str(corpus_repo), writeable=False) as butler:
        found = {
            t: len(butler.query_datasets(t, config.payload.output)) for t in ("postISR", "calexp", "summary")
        }
    assert found == {"postISR": 1, "calexp": 1, "summary": 1}


def test_pipeline_yaml_label_selection_is_passed_to_the_pipeline_loader(
    corpus_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LSST's ``pipelineYaml: file.yaml#labels`` (pipelines_check.yaml names ``#processCcd``)."""
    monkeypatch.chdir(tmp_path)
    env = corpus_env(tmp_path, corpus_repo)
    config = load_bps_config(
        CORPUS / PIPELINES_CHECK, {"pipelineYaml": f"{CORPUS}/pipeline.yaml#isr,calibrate"}, environ=env
    )
    assert config.pipeline_yaml == CORPUS / "pipeline.yaml" and config.pipeline_fragment == "isr,calibrate"
    run = prepare(config)
    assert sorted(job.label for job in run.wms_workflow.workflow) == [
        "calibrate",
        "finalJob",
        "isr",
        "pipetaskInit",
    ]

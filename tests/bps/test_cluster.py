"""Clustering quanta into jobs: the algorithms, the checks, resources per cluster, job-local types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bps_testutil import MINIMAL, NOW, graph_reader_like, workload_graph, write_yaml

from bps import BpsConfigError
from bps.config import BpsConfig, load_bps_config
from bps.workflow import FINAL_LABEL, INIT_LABEL, WorkflowGraph, build_workflow, read_workflow, write_workflow
from quantumgraph._model import QuantumGraph

PER_CHIP = """
clusterAlgorithm: dimension
cluster:
  perChip:
    pipetasks: isr, calibrate
    dimensions: exposure, detector
"""


def make_config(cfg_dir: Path, extra: str = "") -> BpsConfig:
    return load_bps_config(
        write_yaml(cfg_dir / "submit.yaml", MINIMAL + extra), now=NOW, environ={"USER": "alice"}
    )


def build(cfg_dir: Path, extra: str, graph: QuantumGraph, tmp_path: Path) -> WorkflowGraph:
    return build_workflow(make_config(cfg_dir, extra), tmp_path / "g.qgraph", graph)


def node_ids(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "--qgraph-node-id"]


def clustered(wf: WorkflowGraph) -> set[tuple[str, ...]]:
    return {tuple(str(q) for q in job.quantum_ids) for job in wf if len(job.quantum_ids) > 1}


# -- single ----------------------------------------------------------------------------------------
def test_single_is_one_quantum_per_job_with_data_id_names(cfg_dir: Path, tmp_path: Path) -> None:
    graph = workload_graph(exposures=3, detectors=4)
    wf = build(cfg_dir, "", graph, tmp_path)
    explicit = build(cfg_dir, "clusterAlgorithm: single\n", graph, tmp_path)
    assert [j.name for j in wf] == [j.name for j in explicit]
    assert len(wf) == len(graph) + 2 == 2 * 3 * 4 + 3 + 2
    assert all(len(job.quantum_ids) == 1 for job in wf if job.label not in (INIT_LABEL, FINAL_LABEL))
    names = {job.name for job in wf}
    assert {"isr_Cam_0_0", "calibrate_Cam_2_3", "gather_Cam_1"} <= names
    assert wf.job("isr_Cam_2_3").quantum_ids == (graph.quanta[-3].id,)  # exposure 2, detector 3


# -- dimension -------------------------------------------------------------------------------------
def test_dimension_clustering_of_twenty_thousand_quanta(cfg_dir: Path, tmp_path: Path) -> None:
    """W(500, 20) through a real graph file: 10,000 isr+calibrate jobs, 500 gathers, init, final."""
    from quantumgraph import GraphReader, write_graph

    graph = workload_graph(exposures=500, detectors=20)
    path = tmp_path / "w.qgraph"
    write_graph(path, graph)
    config = make_config(cfg_dir, PER_CHIP)
    timings: dict[str, float] = {}
    with GraphReader(path) as reader:
        wf = build_workflow(config, path, reader, timings=timings)
    assert len(wf) == 10_502
    assert wf.label_counts() == {"perChip": 10_000, "gather": 500, INIT_LABEL: 1, FINAL_LABEL: 1}
    quanta = {str(q.id): q for q in graph.quanta}
    for job in wf:
        if job.label != "perChip":
            continue
        isr, cal = (quanta[i] for i in node_ids(job.command))
        assert (isr.task_label, cal.task_label) == ("isr", "calibrate")  # in dependency order
        assert isr.data_id == cal.data_id and job.quantum_ids == (isr.id, cal.id)
        _, e, d = isr.data_id.values_tuple
        assert job.name == f"perChip_Cam_{e}_{d}"
    assert wf.parents("perChip_Cam_7_3") == [INIT_LABEL]
    assert wf.children("perChip_Cam_7_3") == ["gather_Cam_7"]
    assert sorted(wf.parents("gather_Cam_7")) == sorted(f"perChip_Cam_7_{d}" for d in range(20))
    assert sorted(wf.parents(FINAL_LABEL)) == sorted(f"gather_Cam_{e}" for e in range(500))
    assert wf.number_of_edges == 10_000 + 10_000 + 500  # init->cluster, cluster->gather, gather->final
    assert wf.is_acyclic()
    assert "clustering" in timings  # bps prepare reports the stage; speed is measured in benchmarks/

    # The DAG an operator would submit: one JOB line per job and the merge as the FINAL node.
    from bps.config import SiteConfig
    from wms_plugins.htcondor._render import dag_text_parts
    from wms_plugins.htcondor._site import site_settings
    from wms_plugins.htcondor._submit_dir import HTCondorLayout

    dag = "".join(
        dag_text_parts(wf, HTCondorLayout(tmp_path / "submit", wf.name), site_settings(SiteConfig("p", {})))
    )
    lines = dag.splitlines()
    jobs = [line.split()[1] for line in lines if line.startswith("JOB ")]
    finals = [line.split()[1] for line in lines if line.startswith("FINAL ")]
    assert len(jobs) == 10_501 and finals == [FINAL_LABEL]
    assert sum(name.startswith("perChip_") for name in jobs) == 10_000
    assert sum(line.startswith("SUBMIT-DESCRIPTION ") for line in lines) == 4  # init, perChip, gather, final


def test_dimension_list_syntax_and_partial_clusters(cfg_dir: Path, tmp_path: Path) -> None:
    """pipetasks/dimensions as YAML lists; quanta of tasks outside every cluster stay single jobs."""
    extra = """
clusterAlgorithm: dimension
cluster:
  isrByExposure:
    pipetasks: [isr]
    dimensions: [exposure]
"""
    graph = workload_graph(exposures=2, detectors=3)
    wf = build(cfg_dir, extra, graph, tmp_path)
    assert wf.label_counts() == {
        "isrByExposure": 2,
        "calibrate": 6,
        "gather": 2,
        INIT_LABEL: 1,
        FINAL_LABEL: 1,
    }
    job = wf.job("isrByExposure_Cam_1")
    assert [graph.quanta[0].id] != list(job.quantum_ids)
    assert len(job.quantum_ids) == 3 and len(node_ids(job.command)) == 3
    assert sorted(wf.children("isrByExposure_Cam_1")) == [f"calibrate_Cam_1_{d}" for d in range(3)]


def test_dimension_cluster_without_dimensions_is_one_job(cfg_dir: Path, tmp_path: Path) -> None:
    extra = "clusterAlgorithm: dimension\ncluster: {allGathers: {pipetasks: gather}}\n"
    wf = build(cfg_dir, extra, workload_graph(exposures=3, detectors=2), tmp_path)
    job = wf.job("allGathers")
    assert len(job.quantum_ids) == 3 and wf.children("allGathers") == [FINAL_LABEL]


def test_equal_dimensions_group_by_the_partner_dimension(cfg_dir: Path, tmp_path: Path) -> None:
    """LSST's equalDimensions: isr has no visit, so visit:exposure groups it by its exposure."""
    extra = """
clusterAlgorithm: dimension
cluster:
  perVisit:
    pipetasks: isr
    dimensions: visit
    equalDimensions: visit:exposure
"""
    graph = workload_graph(exposures=2, detectors=3)
    wf = build(cfg_dir, extra, graph, tmp_path)
    assert wf.label_counts()["perVisit"] == 2
    assert sorted(len(job.quantum_ids) for job in wf if job.label == "perVisit") == [3, 3]
    with pytest.raises(BpsConfigError, match=r"cluster\.perVisit\.dimensions: task 'isr' has dimensions"):
        build(cfg_dir, extra.replace("    equalDimensions: visit:exposure\n", ""), graph, tmp_path)
    with pytest.raises(
        BpsConfigError, match=r"equalDimensions: expected pairs like visit:exposure, got 'visit'"
    ):
        make_config(cfg_dir, extra.replace("visit:exposure", "visit"))


# -- chain -----------------------------------------------------------------------------------------
def test_chain_gives_the_dimension_grouping(cfg_dir: Path, tmp_path: Path) -> None:
    graph = workload_graph(exposures=4, detectors=5)
    chain = build(cfg_dir, "clusterAlgorithm: chain\n", graph, tmp_path)
    dimension = build(cfg_dir, PER_CHIP, graph, tmp_path)
    assert clustered(chain) == clustered(dimension) and len(clustered(chain)) == 20
    assert chain.label_counts() == {"isr-calibrate": 20, "gather": 4, INIT_LABEL: 1, FINAL_LABEL: 1}
    assert "isr-calibrate_Cam_3_4" in chain
    assert sorted(chain.edges()) == sorted(
        (p.replace("perChip", "isr-calibrate"), c.replace("perChip", "isr-calibrate"))
        for p, c in dimension.edges()
    )


def test_chain_with_one_detector_runs_the_whole_exposure_in_one_job(cfg_dir: Path, tmp_path: Path) -> None:
    wf = build(cfg_dir, "clusterAlgorithm: chain\n", workload_graph(exposures=2, detectors=1), tmp_path)
    assert wf.label_counts() == {"isr-calibrate-gather": 2, INIT_LABEL: 1, FINAL_LABEL: 1}
    assert wf.children("isr-calibrate-gather_Cam_0_0") == [FINAL_LABEL]


# -- user functions ----------------------------------------------------------------------------------
def test_user_function_by_dotted_path(cfg_dir: Path, tmp_path: Path) -> None:
    graph = workload_graph(exposures=3, detectors=2)
    wf = build(cfg_dir, "clusterAlgorithm: bps_cluster_funcs.per_exposure\n", graph, tmp_path)
    assert wf.label_counts() == {"exposure": 3, INIT_LABEL: 1, FINAL_LABEL: 1}
    job = wf.job("exp1")
    expected = [q.id for q in graph.quanta if q.data_id["exposure"] == 1]
    assert list(job.quantum_ids) == expected  # graph order, although the function listed them backwards
    assert node_ids(job.command) == [str(q) for q in expected]
    assert wf.parents("exp1") == [INIT_LABEL] and wf.children("exp1") == [FINAL_LABEL]


def test_user_function_tuples_and_left_out_quanta(cfg_dir: Path, tmp_path: Path) -> None:
    graph = workload_graph(exposures=1, detectors=4)
    wf = build(cfg_dir, "clusterAlgorithm: bps_cluster_funcs.isr_pairs_as_tuples\n", graph, tmp_path)
    # Same names get unique suffixes; what the function left out runs one quantum per job.
    assert wf.label_counts() == {"isrPair": 2, "calibrate": 4, "gather": 1, INIT_LABEL: 1, FINAL_LABEL: 1}
    assert {"pair", "pair_2"} <= {job.name for job in wf}
    assert sorted(wf.children("pair")) == ["calibrate_Cam_0_0", "calibrate_Cam_0_1"]


@pytest.mark.parametrize(
    ("algorithm", "pattern"),
    [
        ("bps_cluster_funcs.twice", r"clusterAlgorithm: quantum .* is in two jobs, 'a' and 'b'"),
        (
            "bps_cluster_funcs.explodes",
            r"clusterAlgorithm: bps_cluster_funcs\.explodes raised RuntimeError: boom",
        ),
        ("bps_cluster_funcs.nope", r"module 'bps_cluster_funcs' has no function 'nope'"),
        ("no_such_module_xyz.f", r"cannot import module 'no_such_module_xyz'"),
        ("bps_cluster_funcs.NOT_A_FUNCTION", r"bps_cluster_funcs\.NOT_A_FUNCTION is not a function"),
    ],
)
def test_broken_user_functions(cfg_dir: Path, tmp_path: Path, algorithm: str, pattern: str) -> None:
    with pytest.raises(BpsConfigError, match=pattern + r".*\(in .*submit\.yaml\)"):
        build(cfg_dir, f"clusterAlgorithm: {algorithm}\n", workload_graph(1, 2), tmp_path)


# -- refused configs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (
            "cluster: {a: {pipetasks: isr}, b: {pipetasks: 'calibrate, isr'}}\n",
            r"cluster\.b\.pipetasks: task 'isr' is already in cluster 'a'; a task can be in one cluster only",
        ),
        (
            "clusterAlgorithm: sometimes\n",
            r"clusterAlgorithm: expected one of single, dimension, chain or a dotted",
        ),
        ("cluster: {a: {pipetask: isr}}\n", r"cluster\.a\.pipetask: unknown key.*did you mean 'pipetasks'"),
        ("cluster: {a: [isr]}\n", r"cluster\.a: expected a mapping of keys, got a list"),
        ("cluster: {finalJob: {pipetasks: isr}}\n", r"cluster\.finalJob: the cluster name is reserved"),
        ("cluster: {'a b': {pipetasks: isr}}\n", r"cluster\.a b: the cluster name must start with a letter"),
        (
            "clusterAlgorithm: dimension\ncluster: {a: {dimensions: exposure}}\n",
            r"cluster\.a\.pipetasks: lists no",
        ),
        (
            "cluster: {a: {pipetasks: [1]}}\n",
            r"cluster\.a\.pipetasks: expected a comma-separated string or a list",
        ),
    ],
)
def test_config_refuses_bad_clusters(cfg_dir: Path, extra: str, pattern: str) -> None:
    with pytest.raises(BpsConfigError, match=pattern):
        make_config(cfg_dir, extra)


@pytest.mark.parametrize(
    ("cluster", "pattern"),
    [
        (
            "{pipetasks: 'isr, isrr', dimensions: exposure}",
            r"cluster\.bad\.pipetasks: unknown task label 'isrr'; "
            r"the pipeline's tasks are isr, calibrate, gather",
        ),
        (
            "{pipetasks: isr, dimensions: 'exposure, chip'}",
            r"cluster\.bad\.dimensions: unknown dimension 'chip'; known dimensions: instrument",
        ),
        (
            "{pipetasks: [calibrate, gather], dimensions: [exposure, detector]}",
            r"cluster\.bad\.dimensions: task 'gather' has dimensions \(instrument, exposure\), not detector",
        ),
        (
            "{pipetasks: [isr, gather], dimensions: exposure}",
            r"cluster\.bad\.pipetasks: cluster 'bad' would make a dependency cycle between jobs: "
            r"bad_Cam_0 \(tasks isr, gather\) -> calibrate_Cam_0_\d \(task calibrate\) -> bad_Cam_0; "
            r"task\(s\) calibrate run between tasks of the cluster but are not in it",
        ),
        ("{pipetasks: isr, dimensions: exposure}", None),
    ],
)
def test_build_refuses_bad_clusters(cfg_dir: Path, tmp_path: Path, cluster: str, pattern: str | None) -> None:
    extra = f"clusterAlgorithm: dimension\ncluster:\n  bad: {cluster}\n"
    graph = workload_graph(exposures=1, detectors=2)
    if pattern is None:
        assert build(cfg_dir, extra, graph, tmp_path).is_acyclic()
        return
    with pytest.raises(BpsConfigError, match=pattern + r".*\(in .*submit\.yaml\)"):
        build(cfg_dir, extra, graph, tmp_path)


def test_cluster_named_like_a_task_outside_it(cfg_dir: Path, tmp_path: Path) -> None:
    extra = "clusterAlgorithm: dimension\ncluster: {gather: {pipetasks: isr, dimensions: exposure}}\n"
    with pytest.raises(
        BpsConfigError, match=r"cluster\.gather: the cluster name 'gather' is the label of a task"
    ):
        build(cfg_dir, extra, workload_graph(1, 1), tmp_path)


def test_lsst_spelling_of_the_algorithm(cfg_dir: Path) -> None:
    extra = PER_CHIP.replace("dimension\n", "lsst.ctrl.bps.quantum_clustering_funcs.dimension_clustering\n")
    assert make_config(cfg_dir, extra).clustering.algorithm == "dimension"
    assert (
        make_config(cfg_dir, "clusterAlgorithm: dimension_clustering\n").clustering.algorithm == "dimension"
    )


# -- resources ---------------------------------------------------------------------------------------
def test_resources_of_cluster_jobs(cfg_dir: Path, tmp_path: Path) -> None:
    extra = """
requestMemory: 1000
requestWalltime: 600
retryUnlessExit: 2
pipetask:
  isr: {requestMemory: 1500, requestWalltime: 100, numberOfRetries: 1, retryUnlessExit: [3, 4]}
  calibrate: {requestCpus: 2, requestDisk: 50, memoryMultiplier: 1.5}
  gather: {requestMemory: 4000, memoryMultiplier: 2, memoryLimit: 10000}
clusterAlgorithm: dimension
cluster:
  perChip:
    pipetasks: isr, calibrate
    dimensions: exposure, detector
  perExposure:
    pipetasks: gather
    dimensions: exposure
    requestMemory: 5000
    numberOfRetries: 3
finalJob: {requestWalltime: 7200}
"""
    wf = build(cfg_dir, extra, workload_graph(exposures=1, detectors=2), tmp_path)
    chip = wf.job("perChip_Cam_0_1")
    assert (chip.request_memory, chip.request_cpus, chip.request_disk) == (1500, 2, 50)  # the largest
    assert chip.request_walltime == 100 + 600  # one isr then one calibrate
    # calibrate sets memoryMultiplier but no numberOfRetries: LSST's 5, the largest of the cluster.
    assert chip.number_of_retries == 5 and chip.retry_unless_exit == (2, 3, 4)
    assert chip.memory_multiplier == 1.5 and chip.memory_limit == 4 * 1500  # default: 4 x requestMemory
    exposure = wf.job("perExposure_Cam_0")
    assert (exposure.request_memory, exposure.number_of_retries) == (5000, 3)  # the cluster's own keys win
    assert (exposure.memory_multiplier, exposure.memory_limit) == (2.0, 10000)
    assert exposure.retry_unless_exit == (2,)
    init, final = wf.init_job, wf.final_job
    assert init is not None and final is not None
    assert (init.request_memory, init.request_walltime, init.memory_limit) == (1000, 600, None)
    assert (final.request_walltime, final.retry_unless_exit) == (7200, (2,))


def test_single_jobs_take_their_task_resources(cfg_dir: Path, tmp_path: Path) -> None:
    extra = """
requestDisk: 10
pipetask: {calibrate: {requestWalltime: 30, memoryMultiplier: 3, memoryLimit: 2048}}
"""
    wf = build(cfg_dir, extra, workload_graph(1, 1), tmp_path)
    job = wf.job("calibrate_Cam_0_0")
    assert (job.request_disk, job.request_walltime, job.memory_multiplier, job.memory_limit) == (
        10,
        30,
        3.0,
        2048,
    )
    isr = wf.job("isr_Cam_0_0")
    assert (isr.request_disk, isr.request_walltime, isr.memory_multiplier, isr.memory_limit) == (
        10,
        None,
        None,
        None,
    )


def test_a_task_memory_limit_below_the_cluster_memory_is_raised(cfg_dir: Path, tmp_path: Path) -> None:
    extra = (
        PER_CHIP
        + "pipetask:\n  isr: {requestMemory: 3000}\n  calibrate: {memoryMultiplier: 2, memoryLimit: 2500}\n"
    )
    job = build(cfg_dir, extra, workload_graph(1, 1), tmp_path).job("perChip_Cam_0_0")
    assert (job.request_memory, job.memory_multiplier, job.memory_limit) == (3000, 2.0, 3000)


def test_cluster_memory_limit_below_the_job_memory(cfg_dir: Path, tmp_path: Path) -> None:
    extra = (
        PER_CHIP + "    memoryMultiplier: 2\n    memoryLimit: 3000\npipetask: {isr: {requestMemory: 3500}}\n"
    )
    with pytest.raises(
        BpsConfigError, match=r"cluster\.perChip\.memoryLimit: memoryLimit \(3000 MB\) is below"
    ):
        build(cfg_dir, extra, workload_graph(1, 1), tmp_path)


def test_new_fields_round_trip_through_workflow_json(cfg_dir: Path, tmp_path: Path) -> None:
    extra = (
        PER_CHIP + "requestWalltime: 60\nretryUnlessExit: [5, 1]\nmemoryMultiplier: 1.25\nrequestDisk: 7\n"
    )
    wf = build(cfg_dir, extra, workload_graph(2, 2), tmp_path)
    path = tmp_path / "workflow.json"
    write_workflow(path, wf)
    back = read_workflow(path)
    fields = (
        "name label command quantum_ids request_memory request_disk request_walltime "
        "retry_unless_exit memory_multiplier memory_limit"
    ).split()
    for old, new in zip(wf, back, strict=True):
        assert [getattr(old, f) for f in fields] == [getattr(new, f) for f in fields]
    job = back.job("perChip_Cam_1_0")
    assert (job.request_walltime, job.retry_unless_exit, job.memory_multiplier) == (120, (1, 5), 1.25)
    assert job.memory_limit == 4 * 2048 and job.request_disk == 7


def test_a_version_1_0_workflow_file_still_reads(tmp_path: Path) -> None:
    doc = {
        "format": "skybatch.bps.workflow",
        "version": "1.0",
        "created": "2026-01-01T00:00:00+00:00",
        "name": "old",
        "final_job_when": "ALWAYS",
        "file_sets": [["/g.qgraph"]],
        "jobs": [
            {
                "name": "isr_1",
                "label": "isr",
                "command": ["true"],
                "request_cpus": 1,
                "request_memory": 10,
                "number_of_retries": 2,
                "files": 0,
            },
        ],
        "edges": [],
    }
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(doc))
    job = read_workflow(path).job("isr_1")
    assert (job.number_of_retries, job.files, job.request_disk, job.request_walltime) == (
        2,
        ("/g.qgraph",),
        0,
        None,
    )
    assert (job.retry_unless_exit, job.memory_multiplier, job.memory_limit) == ((), None, None)


# -- job-local dataset types -------------------------------------------------------------------------
def test_job_local_types_go_only_to_jobs_holding_every_reader(cfg_dir: Path, tmp_path: Path) -> None:
    graph = workload_graph(exposures=1, detectors=2)
    wf = build(cfg_dir, PER_CHIP + "jobLocalDatasetTypes: [postISR, calexp]\n", graph, tmp_path)
    chip = wf.job("perChip_Cam_0_1")
    # postISR is read only by the calibrate in the same job; calexp is read by gather, elsewhere.
    assert chip.command[-2:] == ["--job-local", "postISR"] and chip.command.count("--job-local") == 1
    assert "--job-local" not in wf.job("gather_Cam_0").command
    # isr alone in a cluster: its postISR goes to calibrate jobs, so it is written.
    split = "clusterAlgorithm: dimension\ncluster: {i: {pipetasks: isr, dimensions: exposure}}\n"
    wf = build(cfg_dir, split + "jobLocalDatasetTypes: postISR\n", graph, tmp_path)
    assert all("--job-local" not in job.command for job in wf)


def test_job_local_types_must_be_intermediates_of_the_graph(cfg_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BpsConfigError, match=r"jobLocalDatasetTypes: 'postISRR' is not a dataset type"):
        build(cfg_dir, PER_CHIP + "jobLocalDatasetTypes: postISRR\n", workload_graph(1, 1), tmp_path)
    with pytest.raises(BpsConfigError, match=r"jobLocalDatasetTypes: 'raw' is not produced by any task"):
        build(cfg_dir, PER_CHIP + "jobLocalDatasetTypes: raw\n", workload_graph(1, 1), tmp_path)


# -- graph sources -----------------------------------------------------------------------------------
def test_every_graph_source_clusters_alike(cfg_dir: Path, tmp_path: Path) -> None:
    from quantumgraph import GraphReader, GraphSummary, write_graph

    graph = workload_graph(exposures=2, detectors=3)
    path = tmp_path / "g.qgraph"
    write_graph(path, graph)
    config = make_config(cfg_dir, PER_CHIP)
    expected = build_workflow(config, path, graph)
    with GraphReader(path) as reader:
        assert list(reader.iter_quantum_summaries()) == [
            (q.id, q.task_label, q.data_id) for q in graph.quanta
        ]
        sources: list[object] = [reader, graph_reader_like(graph)]
        assert all(isinstance(source, GraphSummary) for source in sources)
        for source in sources:
            wf = build_workflow(config, path, source)  # type: ignore[arg-type]
            assert [(j.name, j.label, j.command) for j in wf] == [
                (j.name, j.label, j.command) for j in expected
            ]
            assert sorted(wf.edges()) == sorted(expected.edges())

"""WorkflowGraph building from a synthetic QuantumGraph, its file format and its speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bps_testutil import MINIMAL, NOW, graph_reader_like, workload_graph, write_yaml

from bps import EmptyGraphError, StateFileError
from bps.config import BpsConfig, FinalJobWhen, load_bps_config
from bps.workflow import (
    FINAL_LABEL,
    INIT_LABEL,
    GenericJob,
    WorkflowGraph,
    build_workflow,
    read_workflow,
    write_workflow,
)
from quantumgraph._model import QuantumGraph


def make_config(cfg_dir: Path, extra: str = "") -> BpsConfig:
    return load_bps_config(
        write_yaml(cfg_dir / "submit.yaml", MINIMAL + extra), now=NOW, environ={"USER": "alice"}
    )


@pytest.fixture
def config(cfg_dir: Path) -> BpsConfig:
    return make_config(cfg_dir, "pipetask:\n  gather: {requestMemory: 9000, numberOfRetries: 2}\n")


def test_jobs_edges_and_order(config: BpsConfig, tmp_path: Path) -> None:
    graph = workload_graph(exposures=3, detectors=4)
    wf = build_workflow(config, tmp_path / "g.qgraph", graph)
    assert len(wf) == len(graph) + 2 == 2 * 3 * 4 + 3 + 2
    assert wf.label_counts() == {INIT_LABEL: 1, "isr": 12, "calibrate": 12, "gather": 3, FINAL_LABEL: 1}
    assert wf.is_acyclic()
    order = wf.topological_order()
    assert order[0] is wf.init_job and order[0].is_init
    assert order[-1] is wf.final_job and order[-1].is_final
    position = {job.name: i for i, job in enumerate(order)}
    assert all(position[p] < position[c] for p, c in wf.edges())

    by_quantum = {job.quantum_ids[0]: job for job in wf if job.quantum_ids}
    deps = graph.dependencies()
    for quantum in graph.quanta:
        job = by_quantum[quantum.id]
        expected = {by_quantum[d].name for d in deps[quantum.id]} or {INIT_LABEL}
        assert set(wf.parents(job.name)) == expected
    # The final job depends on the jobs nothing else depends on (the gathers), so on everything.
    assert sorted(wf.parents(FINAL_LABEL)) == ["gather_Cam_0", "gather_Cam_1", "gather_Cam_2"]
    assert sorted(wf.children(INIT_LABEL)) == sorted(j.name for j in wf if j.label == "isr")
    import networkx as nx

    # Checked with an independent graph library: every job is reachable from the init job.
    independent = nx.DiGraph(list(wf.edges()))
    assert nx.descendants(independent, INIT_LABEL) == {job.name for job in wf} - {INIT_LABEL}


def test_commands_resources_and_files(config: BpsConfig, tmp_path: Path) -> None:
    graph = workload_graph(exposures=1, detectors=2)
    graph_path = tmp_path / "g.qgraph"
    wf = build_workflow(config, graph_path, graph)
    repo, gpath = config.payload.butler_config, str(graph_path)
    assert wf.init_job is not None and wf.init_job.command == ["pipetask", "pre-exec-init-qbb", repo, gpath]
    isr = wf.job("isr_Cam_0_0")
    assert isr.command == ["pipetask", "run-qbb", repo, gpath, "--qgraph-node-id", str(isr.quantum_ids[0])]
    assert isr.quantum_ids == (graph.quanta[0].id,)
    assert (isr.request_memory, isr.request_cpus, isr.number_of_retries) == (2048, 1, 0)
    gather = wf.job("gather_Cam_0")
    assert (gather.request_memory, gather.number_of_retries) == (9000, 2)
    assert wf.final_job is not None
    assert wf.final_job.command == [
        "butler",
        "transfer-from-graph",
        gpath,
        repo,
        "--update-output-chain",
        "--register-dataset-types",
    ]
    assert all(job.files == (gpath,) for job in wf)
    assert wf.name == config.uniq_proc_name


def test_reader_gives_the_same_workflow(config: BpsConfig, tmp_path: Path) -> None:
    graph = workload_graph(exposures=2, detectors=3)
    from_memory = build_workflow(config, tmp_path / "g", graph)
    from quantumgraph import GraphSummary

    reader = graph_reader_like(graph)
    assert isinstance(graph, GraphSummary) and isinstance(reader, GraphSummary)
    from_reader = build_workflow(config, tmp_path / "g", reader)  # type: ignore[arg-type]
    assert [j.name for j in from_reader] == [j.name for j in from_memory]
    assert [j.command for j in from_reader] == [j.command for j in from_memory]
    assert sorted(from_reader.edges()) == sorted(from_memory.edges())


def test_real_graph_file(config: BpsConfig, tmp_path: Path) -> None:
    """Through the real graph file format: the file reader gives the same workflow as the graph."""
    from quantumgraph import GraphReader, write_graph

    graph = workload_graph(exposures=2, detectors=2)
    path = tmp_path / "real.qgraph"
    write_graph(path, graph)
    with GraphReader(path) as reader:
        wf = build_workflow(config, path, reader)
    expected = build_workflow(config, path, graph)
    assert sorted(wf.edges()) == sorted(expected.edges())


def test_final_job_never_and_empty_graph(cfg_dir: Path, tmp_path: Path) -> None:
    config = make_config(cfg_dir, "finalJob: {whenRun: NEVER}\n")
    wf = build_workflow(config, tmp_path / "g", workload_graph(1, 1))
    assert wf.final_job is None and wf.final_job_when is FinalJobWhen.NEVER
    graph = workload_graph(1, 1)
    empty = QuantumGraph(graph.header, [], {})
    with pytest.raises(EmptyGraphError, match="no quanta"):
        build_workflow(config, tmp_path / "g", empty)


def test_reserved_task_label(config: BpsConfig, tmp_path: Path) -> None:
    graph = workload_graph(1, 1)
    graph.quanta[0].task_label = FINAL_LABEL
    with pytest.raises(ValueError, match="reserved"):
        build_workflow(config, tmp_path / "g", graph)


def test_workflow_graph_api() -> None:
    wf = WorkflowGraph("w")
    a, b = (GenericJob(n, "t", ["true"], 1, 1, 0) for n in "ab")
    wf.add_job(a)
    wf.add_job(b, parents=["a"])
    assert "a" in wf and len(wf) == 2 and wf.parents("b") == ["a"] and wf.children("a") == ["b"]
    with pytest.raises(ValueError, match="duplicate job name"):
        wf.add_job(GenericJob("a", "t", [], 1, 1, 0))
    with pytest.raises(KeyError, match="no job named 'zz'"):
        wf.add_dependencies([("a", "zz")])
    wf.add_dependencies([("b", "a")])
    assert not wf.is_acyclic()
    with pytest.raises(ValueError, match="cycle"):
        wf.topological_order()


def test_file_round_trip_and_version(
    config: BpsConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = workload_graph(2, 2)
    graph.header.metadata["python_path"] = ["/shared/tasks", "/home/me/campaign"]
    monkeypatch.setenv("PYTHONPATH", "/opt/site")
    wf = build_workflow(config, tmp_path / "g", graph)
    expected_env = (("PYTHONPATH", "/shared/tasks:/home/me/campaign:/opt/site"),)
    assert {job.environment for job in wf if not job.is_final} == {expected_env}
    assert next(job for job in wf if job.is_final).environment == ()
    path = tmp_path / "workflow.json"
    write_workflow(path, wf)
    doc = json.loads(path.read_text())
    assert doc["format"] == "skybatch.bps.workflow" and doc["version"] == "1.2"
    assert [job["environment"] for job in doc["jobs"] if "environment" in job][0] == [
        ["PYTHONPATH", "/shared/tasks:/home/me/campaign:/opt/site"]
    ]
    back = read_workflow(path)
    assert back.name == wf.name and back.final_job_when is wf.final_job_when
    for old, new in zip(wf, back, strict=True):
        assert (
            old.name,
            old.label,
            old.command,
            old.quantum_ids,
            old.files,
            old.is_init,
            old.is_final,
            old.request_memory,
            old.request_cpus,
            old.number_of_retries,
            old.environment,
        ) == (
            new.name,
            new.label,
            new.command,
            new.quantum_ids,
            new.files,
            new.is_init,
            new.is_final,
            new.request_memory,
            new.request_cpus,
            new.number_of_retries,
            new.environment,
        )
    assert sorted(back.edges()) == sorted(wf.edges())
    doc["version"] = "2.0"
    path.write_text(json.dumps(doc))
    with pytest.raises(StateFileError, match=r"version 2\.0 is not supported"):
        read_workflow(path)


def test_twenty_thousand_quanta_round_trip(config: BpsConfig, tmp_path: Path) -> None:
    """W(500, 20) builds, writes and reads back intact (its speed is in benchmarks/workload.py)."""
    graph = workload_graph(exposures=500, detectors=20)
    reader = graph_reader_like(graph)
    wf = build_workflow(config, tmp_path / "g", reader)  # type: ignore[arg-type]
    write_workflow(tmp_path / "workflow.json", wf)
    assert len(wf) == 20_502
    back = read_workflow(tmp_path / "workflow.json")
    assert len(back) == 20_502 and back.number_of_edges == wf.number_of_edges


def test_a_cycle_is_reported_with_its_jobs() -> None:
    from bps.workflow import GenericJob, WorkflowGraph

    wf = WorkflowGraph("cyclic")
    wf.add_jobs(GenericJob(name, "t", ["true"], 1, 100, 0) for name in ("a", "b", "c"))
    wf.add_dependencies([("a", "b"), ("b", "c"), ("c", "a")])
    assert not wf.is_acyclic()
    assert sorted(wf.find_cycle()) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="dependency cycle: "):
        wf.topological_order()

"""The batch-job path: ``pre-exec-init-qbb``, ``run-qbb`` and the ``butler transfer-from-graph`` merge.

This is what bps runs, one command per job: jobs read the graph file and the datastore only (the
registry may be out of reach), and the final merge registers exactly the outputs that exist, as
many times as it is run and whatever happened to the jobs.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import Result

from butler import Butler
from quantumgraph import GraphReader, Quantum, QuantumGraph, transfer_from_graph
from quantumgraph.demo.repo import DEFAULTS, raw_value

Invoke = Callable[..., Result]
RunScript = Callable[..., subprocess.CompletedProcess[str]]

OUTPUT = "u/tester/demo"
OUTPUT_RUN = "u/tester/demo/run1"  # as saved by the saved_graph fixture
REGISTRY_FILES = ("registry.sqlite3", "registry.sqlite3-wal", "registry.sqlite3-shm")


def read(butler: Butler, dataset_type: str, **kwargs: Any) -> dict[str, Any]:
    """``butler.get`` of one of the demo's dict-valued datasets."""
    value = butler.get(dataset_type, **kwargs)
    assert isinstance(value, dict)
    return value


def load(path: Path) -> QuantumGraph:
    with GraphReader(path) as reader:
        return reader.read_all()


def quantum(graph: QuantumGraph, label: str, exposure: int, detector: int | None = None) -> Quantum:
    for q in graph.quanta:
        if q.task_label == label and q.data_id["exposure"] == exposure:
            if detector is None or q.data_id["detector"] == detector:
                return q
    raise AssertionError(f"no {label} quantum for exposure {exposure}, detector {detector}")


def predicted_ids(graph: QuantumGraph, quanta: list[Quantum] | None = None) -> set[uuid.UUID]:
    """Init outputs (configs and packages), plus the outputs of ``quanta`` (default: every quantum)."""
    ids = {ref.id for ref in graph.header.all_init_outputs()}
    ids.update(ref.id for q in (graph.quanta if quanta is None else quanta) for ref in q.output_refs())
    return ids


def registered_ids(repo: Path, run: str = OUTPUT_RUN) -> set[uuid.UUID]:
    with Butler(repo) as butler:
        if run not in dict(butler.registry.query_collections()):
            return set()
        return {
            ref.id
            for dt in butler.registry.query_dataset_types()
            for ref in butler.query_datasets(dt.name, [run])
        }


@contextmanager
def registry_out_of_reach(repo: Path) -> Iterator[None]:
    """Move the registry database aside, as on a batch node that cannot reach it, then put it back.

    On the way out it checks that nothing created a new registry in the meantime.
    """
    hidden = repo / "hidden-registry"
    hidden.mkdir()
    moved = [name for name in REGISTRY_FILES if (repo / name).exists()]
    assert "registry.sqlite3" in moved
    for name in moved:
        (repo / name).rename(hidden / name)
    try:
        yield
        assert not any((repo / name).exists() for name in REGISTRY_FILES), "something opened the registry"
    finally:
        for name in moved:
            (hidden / name).replace(repo / name)
        hidden.rmdir()


def test_jobs_run_without_the_registry_and_the_merge_registers_their_outputs(
    saved_graph: Path,
    demo_repo: Path,
    pipetask: Invoke,
    butler_cli: Invoke,
    run_script: RunScript,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
) -> None:
    graph = load(saved_graph)
    first = [quantum(graph, "isr", 1, 0), quantum(graph, "calibrate", 1, 0)]
    pair = [quantum(graph, "isr", 2, 1), quantum(graph, "isr", 3, 0)]

    with registry_out_of_reach(demo_repo):
        init = run_script("pipetask", "pre-exec-init-qbb", demo_repo, saved_graph)
        assert init.returncode == 0, init.stderr
        assert "wrote 4 init-output dataset(s)" in init.stderr
        # A few jobs exactly as bps renders them, one quantum (or two) each.
        for q in first:
            job = run_script("pipetask", "run-qbb", demo_repo, saved_graph, "--qgraph-node-id", str(q.id))
            assert job.returncode == 0, job.stderr
        ids = [arg for q in pair for arg in ("--qgraph-node-id", str(q.id))]
        job = run_script("pipetask", "run-qbb", demo_repo, saved_graph, *ids)
        assert job.returncode == 0, job.stderr
        # The rest in one go: no ids means every quantum, in file order.
        rest = pipetask("run-qbb", demo_repo, saved_graph)
        assert rest.exit_code == 0, rest.output

    assert registered_ids(demo_repo) == set()  # jobs write files only; the merge registers them
    n_predicted = len(predicted_ids(graph))
    merged = butler_cli("transfer-from-graph", saved_graph, demo_repo)
    assert merged.exit_code == 0, merged.output
    assert (
        f"{n_predicted} of {n_predicted} predicted outputs found; {n_predicted} newly registered in "
        f"{OUTPUT} (run {OUTPUT_RUN}); 0 missing" in merged.stdout
    )
    assert registered_ids(demo_repo) == predicted_ids(graph)

    with Butler(demo_repo, collections=[OUTPUT]) as butler:
        assert butler.registry.get_chain(OUTPUT) == [OUTPUT_RUN, DEFAULTS]
        for e in exposures:
            values = []
            for d in detectors:
                calexp = read(butler, "calexp", instrument="DemoCam", exposure=e, detector=d)
                assert calexp["value"] == (raw_value(e, d) + 1.0) * 2.0
                values.append(calexp["value"])
            summary = read(butler, "summary", instrument="DemoCam", exposure=e)
            assert summary == {
                "n_detectors": len(detectors),
                "sum": sum(values),
                "mean": sum(values) / len(values),
            }
        assert read(butler, "isr_config") == {"offset": 1.0, "connections": {}}
        # Datasets carry the IDs the graph gave them.
        ref = butler.find_dataset("calexp", instrument="DemoCam", exposure=1, detector=0)
        assert ref is not None and ref.id == first[1].outputs["calexp"][0].id

    again = run_script("butler", "transfer-from-graph", saved_graph, demo_repo)
    assert again.returncode == 0, again.stderr
    assert f"{n_predicted} of {n_predicted} predicted outputs found; 0 newly registered" in again.stdout
    assert registered_ids(demo_repo) == predicted_ids(graph)
    with Butler(demo_repo) as butler:
        assert butler.registry.get_chain(OUTPUT) == [OUTPUT_RUN, DEFAULTS]


def test_merge_after_a_partial_workflow_registers_only_what_ran(
    saved_graph: Path, demo_repo: Path, pipetask: Invoke, butler_cli: Invoke, detectors: tuple[int, ...]
) -> None:
    graph = load(saved_graph)
    done = [quantum(graph, "isr", 1, d) for d in detectors] + [quantum(graph, "calibrate", 1, 0)]
    assert pipetask("pre-exec-init-qbb", demo_repo, saved_graph).exit_code == 0
    ids = [arg for q in done for arg in ("--qgraph-node-id", str(q.id))]
    result = pipetask("run-qbb", demo_repo, saved_graph, *ids)
    assert result.exit_code == 0, result.output

    with Butler(demo_repo) as butler:
        merged = transfer_from_graph(saved_graph, butler)
    n_predicted = len(predicted_ids(graph))
    n_done = 3 * len(done) + 4  # each quantum's output, log and metadata; three configs and packages
    assert (merged.predicted, merged.found, merged.registered, merged.missing) == (
        n_predicted,
        n_done,
        n_done,
        n_predicted - n_done,
    )
    assert registered_ids(demo_repo) == predicted_ids(graph, done)
    with Butler(demo_repo, collections=[OUTPUT]) as butler:
        assert butler.find_dataset("calexp", instrument="DemoCam", exposure=1, detector=1) is None
        assert butler.find_dataset("summary", instrument="DemoCam", exposure=1) is None
        assert (
            read(butler, "calexp", instrument="DemoCam", exposure=1, detector=0)["value"]
            == (100.0 + 1.0) * 2.0
        )

    # The workflow is resumed: only the quanta that had not run, then the merge again.
    rest = [q for q in graph.quanta if q not in done]
    ids = [arg for q in rest for arg in ("--qgraph-node-id", str(q.id))]
    result = pipetask("run-qbb", demo_repo, saved_graph, *ids)
    assert result.exit_code == 0, result.output
    merged_again = butler_cli("transfer-from-graph", saved_graph, demo_repo)
    assert merged_again.exit_code == 0, merged_again.output
    assert (
        f"{n_predicted} of {n_predicted} predicted outputs found; {n_predicted - n_done} newly registered"
        in merged_again.stdout
    )
    assert registered_ids(demo_repo) == predicted_ids(graph)


def test_merge_with_nothing_run_registers_nothing_but_the_run(
    saved_graph: Path, demo_repo: Path, butler_cli: Invoke
) -> None:
    result = butler_cli("transfer-from-graph", saved_graph, demo_repo)
    assert result.exit_code == 0, result.output
    n_predicted = len(predicted_ids(load(saved_graph)))
    assert f"0 of {n_predicted} predicted outputs found; 0 newly registered" in result.stdout
    assert f"{n_predicted} missing" in result.stdout
    assert registered_ids(demo_repo) == set()
    with Butler(demo_repo) as butler:
        assert butler.registry.get_collection_type(OUTPUT_RUN) == "RUN"
        assert butler.registry.get_chain(OUTPUT) == [OUTPUT_RUN, DEFAULTS]


def test_pre_exec_init_qbb_is_safe_to_rerun(saved_graph: Path, demo_repo: Path, pipetask: Invoke) -> None:
    first = pipetask("pre-exec-init-qbb", demo_repo, saved_graph)
    assert first.exit_code == 0, first.output
    assert "wrote 4 init-output dataset(s)" in first.stderr
    again = pipetask("pre-exec-init-qbb", demo_repo, saved_graph)
    assert again.exit_code == 0, again.output
    assert "wrote 0 init-output dataset(s)" in again.stderr


def test_jobs_accept_the_butler_yaml_path_as_the_repository(
    saved_graph: Path, demo_repo: Path, pipetask: Invoke, butler_cli: Invoke
) -> None:
    """``REPO/butler.yaml`` names the repository for the jobs too, as it does for every Butler."""
    config = demo_repo / "butler.yaml"
    init = pipetask("pre-exec-init-qbb", config, saved_graph)
    assert init.exit_code == 0, init.output
    jobs = pipetask("run-qbb", config, saved_graph)
    assert jobs.exit_code == 0, jobs.output
    merged = butler_cli("transfer-from-graph", saved_graph, config)
    assert merged.exit_code == 0, merged.output
    assert registered_ids(demo_repo) == predicted_ids(load(saved_graph))
    assert not (demo_repo / "butler.yaml" / OUTPUT_RUN).exists()


def test_run_qbb_with_a_node_id_not_in_the_graph(
    saved_graph: Path, demo_repo: Path, pipetask: Invoke
) -> None:
    graph = load(saved_graph)
    not_a_quantum = graph.quanta[0].outputs["post_isr"][0].id  # a dataset ID from the same graph
    for node in (uuid.uuid4(), not_a_quantum):
        result = pipetask("run-qbb", demo_repo, saved_graph, "--qgraph-node-id", str(node))
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert result.stderr == f"error: quantum {node} is not in {saved_graph}\n"
    result = pipetask("run-qbb", demo_repo, saved_graph, "--qgraph-node-id", "isr-1-0")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: --qgraph-node-id must be a UUID")
    assert not (demo_repo / OUTPUT_RUN).exists()  # nothing ran


def test_run_qbb_reports_a_quantum_whose_input_is_missing(
    saved_graph: Path, demo_repo: Path, pipetask: Invoke
) -> None:
    """A job started before the one producing its input (or after it failed) fails clearly."""
    q = quantum(load(saved_graph), "calibrate", 2, 1)
    result = pipetask("run-qbb", demo_repo, saved_graph, "--qgraph-node-id", str(q.id))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert (
        f"error: quantum {q.id} (calibrate {{instrument=DemoCam, detector=1, exposure=2}})" in result.stderr
    )
    assert "input 'post_isr' is missing" in result.stderr

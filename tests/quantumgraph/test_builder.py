"""The QuantumGraph builder, checked the way a user checks a graph before running it.

Which quanta each task gets and with which data IDs, what each quantum reads and writes, that
outputs land in the output run, that the graph carries the raws' datastore records, how the data
query narrows the graph, and that bad input is refused with an error that says what is wrong.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from butler import Butler, DatasetType
from butler._exceptions import (
    MissingDatasetTypeError,
    QueryError,
    QuerySyntaxError,
    UnknownDimensionError,
)
from quantumgraph import GraphBuildError, Pipeline, Quantum, QuantumGraph, build_quantum_graph
from quantumgraph.demo.repo import DEFAULTS, RAW_RUN, make_demo_repo

OUTPUT = "u/tester/demo"
OUTPUT_RUN = "u/tester/demo/run1"


# A 4 x 3 repository: exposures 1-4 cycle through the g, r, i filters and alternate 15 s / 30 s
# exposure times, so every query below selects a different set of exposures.
@pytest.fixture(scope="module")
def exposures() -> tuple[int, ...]:
    return (1, 2, 3, 4)


@pytest.fixture(scope="module")
def detectors() -> tuple[int, ...]:
    return (0, 1, 2)


@pytest.fixture(scope="module")
def shared_butler(
    tmp_path_factory: pytest.TempPathFactory, exposures: tuple[int, ...], detectors: tuple[int, ...]
) -> Iterator[Butler]:
    """A read-only Butler on one repository shared by the tests that do not change it."""
    path = tmp_path_factory.mktemp("builder") / "repo"
    make_demo_repo(path, len(exposures), len(detectors)).close()
    butler = Butler(path, writeable=False)
    yield butler
    butler.close()


@pytest.fixture(scope="module")
def pipeline(pipeline_file: Path) -> Pipeline:
    return Pipeline.from_file(pipeline_file)


@pytest.fixture(scope="module")
def graph(shared_butler: Butler, pipeline: Pipeline) -> QuantumGraph:
    """The graph over every raw in the repository."""
    return build(shared_butler, pipeline)


def build(butler: Butler, pipeline: Pipeline, where: str | None = None, **options: object) -> QuantumGraph:
    kwargs: dict[str, object] = {"input_collections": [DEFAULTS], "output_run": OUTPUT_RUN, "output": OUTPUT}
    kwargs.update(options)
    return build_quantum_graph(butler, pipeline, where=where, **kwargs)  # type: ignore[arg-type]


def pipeline_yaml(tasks: str) -> Pipeline:
    return Pipeline.from_yaml("description: test\ntasks:\n" + textwrap.indent(textwrap.dedent(tasks), "  "))


def exposure_detector(q: Quantum) -> tuple[int | str, int | str]:
    return q.data_id["exposure"], q.data_id["detector"]


# -- the full graph -------------------------------------------------------------------------------


def test_one_quantum_per_task_data_id(
    graph: QuantumGraph, exposures: tuple[int, ...], detectors: tuple[int, ...]
) -> None:
    by_task = graph.quanta_by_task()
    counts = {label: len(quanta) for label, quanta in by_task.items()}
    n_e, n_d = len(exposures), len(detectors)
    assert counts == {"isr": n_e * n_d, "calibrate": n_e * n_d, "gather": n_e}
    assert len(graph) == 2 * n_e * n_d + n_e
    assert graph.header.metadata["quanta_per_task"] == counts

    every_pair = set(itertools.product(exposures, detectors))
    for label in ("isr", "calibrate"):
        assert {exposure_detector(q) for q in by_task[label]} == every_pair
        assert all(q.data_id.dimensions == ("instrument", "detector", "exposure") for q in by_task[label])
    assert sorted(q.data_id["exposure"] for q in by_task["gather"]) == list(exposures)
    assert all(q.data_id.dimensions == ("instrument", "exposure") for q in by_task["gather"])
    assert {q.data_id["instrument"] for q in graph.quanta} == {"DemoCam"}


def test_isr_and_calibrate_read_and_write_the_expected_datasets(
    graph: QuantumGraph, shared_butler: Butler
) -> None:
    by_task = graph.quanta_by_task()
    post_isr_by_data_id = {}
    for q in by_task["isr"]:
        (raw,) = q.inputs["raw"]
        registered = shared_butler.find_dataset("raw", dict(q.data_id), collections=DEFAULTS)
        assert registered is not None
        assert (raw.id, raw.run, raw.data_id) == (registered.id, RAW_RUN, q.data_id)
        assert list(q.outputs) == ["post_isr", "_log", "_metadata"]
        (post_isr,) = q.outputs["post_isr"]
        assert (post_isr.dataset_type.name, post_isr.data_id, post_isr.run) == (
            "postISR",
            q.data_id,
            OUTPUT_RUN,
        )
        post_isr_by_data_id[q.data_id] = post_isr
    for q in by_task["calibrate"]:
        assert q.inputs == {"post_isr": [post_isr_by_data_id[q.data_id]]}
        (calexp,) = q.outputs["calexp"]
        assert (calexp.dataset_type.name, calexp.data_id, calexp.run) == ("calexp", q.data_id, OUTPUT_RUN)


def test_gather_quantum_has_every_detectors_calexp(graph: QuantumGraph, detectors: tuple[int, ...]) -> None:
    by_task = graph.quanta_by_task()
    calexps = {exposure_detector(q): q.outputs["calexp"][0] for q in by_task["calibrate"]}
    for q in by_task["gather"]:
        e = q.data_id["exposure"]
        assert q.inputs["calexps"] == [calexps[e, d] for d in detectors]
        (summary,) = q.outputs["summary"]
        assert summary.dataset_type.name == "summary"
        assert summary.dataset_type.dimensions == ("instrument", "exposure")
        assert (summary.data_id, summary.run) == (q.data_id, OUTPUT_RUN)


def test_dependencies_follow_the_datasets(graph: QuantumGraph, detectors: tuple[int, ...]) -> None:
    by_task = graph.quanta_by_task()
    isr = {exposure_detector(q): q.id for q in by_task["isr"]}
    calibrate = {exposure_detector(q): q.id for q in by_task["calibrate"]}
    deps = graph.dependencies()
    assert all(deps[qid] == set() for qid in isr.values())
    assert all(deps[calibrate[key]] == {isr[key]} for key in calibrate)
    for q in by_task["gather"]:
        assert deps[q.id] == {calibrate[q.data_id["exposure"], d] for d in detectors}
    # Quanta come in an order in which each one's producers are already done.
    seen: set[object] = set()
    for q in graph.quanta:
        assert deps[q.id] <= seen
        seen.add(q.id)


def test_outputs_are_new_datasets_in_the_output_run(graph: QuantumGraph, shared_butler: Butler) -> None:
    header = graph.header
    assert (header.output_run, header.output, header.input_collections) == (OUTPUT_RUN, OUTPUT, (DEFAULTS,))
    outputs = [ref for q in graph.quanta for ref in q.output_refs()]
    inits = [ref for refs in header.init_outputs.values() for ref in refs]
    assert {ref.run for ref in outputs + inits} == {OUTPUT_RUN}
    ids = [ref.id for ref in outputs + inits] + [q.id for q in graph.quanta]
    assert len(set(ids)) == len(ids)
    raws = {ref.id for ref in shared_butler.query_datasets("raw", DEFAULTS)}
    assert raws.isdisjoint(ids)
    # Every output type the graph predicts is described in the header, so jobs need no registry.
    provenance = {
        f"{label}_{kind}" for label in ("isr", "calibrate", "gather") for kind in ("log", "metadata")
    }
    assert {ref.dataset_type.name for ref in outputs} == {"postISR", "calexp", "summary"} | provenance
    for ref in outputs + inits:
        assert header.dataset_types[ref.dataset_type.name] == ref.dataset_type


def test_init_outputs_are_each_tasks_config(graph: QuantumGraph) -> None:
    init_outputs = graph.header.init_outputs
    assert sorted(init_outputs) == ["calibrate", "gather", "isr"]
    for label, refs in init_outputs.items():
        (ref,) = refs
        assert ref.dataset_type.name == f"{label}_config"
        assert ref.dataset_type.storage_class == "TaskConfig"
        assert ref.data_id.dimensions == ()
    tasks = graph.header.tasks
    assert tasks["isr"].task_class == "quantumgraph.demo.tasks.Isr"
    assert tasks["isr"].config["offset"] == 1.0
    assert tasks["calibrate"].config["scale"] == 2.0
    assert tasks["calibrate"].config["fail_detectors"] == []


def test_datastore_records_are_attached_for_every_raw_used(
    graph: QuantumGraph, shared_butler: Butler
) -> None:
    raw_ids = {ref.id for q in graph.quanta for ref in q.input_refs() if ref.dataset_type.name == "raw"}
    assert len(raw_ids) == len(graph.quanta_by_task()["isr"])
    assert set(graph.datastore_records) == raw_ids
    assert graph.datastore_records == shared_butler.get_records(raw_ids)
    for info in graph.datastore_records.values():
        assert (shared_butler.datastore.root / info.path).is_file()


def test_building_does_not_change_the_repository(shared_butler: Butler, pipeline: Pipeline) -> None:
    before = shared_butler.registry.query_collections()
    build(shared_butler, pipeline, output_run="u/tester/other")
    assert shared_butler.registry.query_collections() == before


# -- the data query -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected_exposures", "expected_detectors"),
    [
        ("exposure IN (1,2)", {1, 2}, {0, 1, 2}),
        ("detector = 1", {1, 2, 3, 4}, {1}),
        ("band = 'r'", {2}, {0, 1, 2}),  # through exposure -> physical_filter -> band
        ("physical_filter = 'i_06'", {3}, {0, 1, 2}),
        ("exposure.exposure_time > 20", {2, 4}, {0, 1, 2}),
        ("band IN ('g', 'i') AND NOT detector = 0", {1, 3, 4}, {1, 2}),
    ],
)
def test_data_query_restricts_quanta(
    shared_butler: Butler,
    pipeline: Pipeline,
    where: str,
    expected_exposures: set[int],
    expected_detectors: set[int],
) -> None:
    graph = build(shared_butler, pipeline, where)
    by_task = graph.quanta_by_task()
    pairs = set(itertools.product(expected_exposures, expected_detectors))
    assert {exposure_detector(q) for q in by_task["isr"]} == pairs
    assert {exposure_detector(q) for q in by_task["calibrate"]} == pairs
    assert {q.data_id["exposure"] for q in by_task["gather"]} == expected_exposures
    for q in by_task["gather"]:
        assert {ref.data_id["detector"] for ref in q.inputs["calexps"]} == expected_detectors
    used = {q.inputs["raw"][0].id for q in by_task["isr"]}
    assert set(graph.datastore_records) == used
    assert graph.header.metadata["data_query"] == where


def test_data_query_matching_everything_gives_the_full_graph(
    graph: QuantumGraph, shared_butler: Butler, pipeline: Pipeline
) -> None:
    assert len(build(shared_butler, pipeline, "instrument = 'DemoCam' AND exposure > 0")) == len(graph)


# -- connection renames ---------------------------------------------------------------------------


def test_connection_rename_makes_the_builder_read_the_renamed_type(
    demo_repo: Path, detectors: tuple[int, ...]
) -> None:
    alt_run = "DemoCam/raw/alt"
    with Butler(demo_repo) as butler:
        raw_alt = DatasetType.build(
            "rawAlt", ("instrument", "exposure", "detector"), "StructuredDataDict", butler.universe
        )
        butler.registry.register_dataset_type(raw_alt)
        butler.registry.register_run(alt_run)
        for d in detectors:
            butler.put(
                {"value": -1.0, "detector": d},
                raw_alt,
                run=alt_run,
                instrument="DemoCam",
                exposure=3,
                detector=d,
            )
        pipeline = pipeline_yaml(
            """
            isr:
              class: quantumgraph.demo.tasks.Isr
              config:
                connections.raw: rawAlt
            calibrate: quantumgraph.demo.tasks.Calibrate
            gather: quantumgraph.demo.tasks.Gather
            """
        )
        graph = build(butler, pipeline, input_collections=[DEFAULTS, alt_run])
        alt_refs = {ref.id for ref in butler.query_datasets("rawAlt", alt_run)}

    by_task = graph.quanta_by_task()
    assert {exposure_detector(q) for q in by_task["isr"]} == {(3, d) for d in detectors}
    assert [q.data_id["exposure"] for q in by_task["gather"]] == [3]
    for q in by_task["isr"]:
        (ref,) = q.inputs["raw"]  # the connection keeps its name; only the dataset type changes
        assert (ref.dataset_type.name, ref.run) == ("rawAlt", alt_run)
    assert set(graph.datastore_records) == alt_refs
    connections = {c.name: c.dataset_type for c in graph.header.tasks["isr"].connections}
    assert connections["raw"] == "rawAlt"


def test_renamed_input_type_that_is_not_registered(shared_butler: Butler) -> None:
    pipeline = pipeline_yaml(
        """
        isr:
          class: quantumgraph.demo.tasks.Isr
          config:
            connections.raw: rawNowhere
        """
    )
    with pytest.raises(MissingDatasetTypeError, match="'rawNowhere' \\(needed by isr\\) is not registered"):
        build(shared_butler, pipeline)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "position"),
    [("exposure IN (1,", 15), ("detector = 1 AND", 16), ("exposure = = 1", 11), ("band = 'r", 7)],
)
def test_query_syntax_error_says_where(
    shared_butler: Butler, pipeline: Pipeline, where: str, position: int
) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        build(shared_butler, pipeline, where)
    assert info.value.position == position
    assert info.value.expression == where
    assert f"at position {position}" in str(info.value)


def test_unknown_dimension_in_query(shared_butler: Butler, pipeline: Pipeline) -> None:
    with pytest.raises(UnknownDimensionError) as info:
        build(shared_butler, pipeline, "filter = 'r'")
    message = str(info.value)
    assert "unknown dimension 'filter'" in message
    assert "band" in message and "physical_filter" in message  # the known ones are listed
    assert isinstance(info.value, LookupError)


def test_unknown_dimension_field_in_query(shared_butler: Butler, pipeline: Pipeline) -> None:
    with pytest.raises(QueryError, match="exposure has no field 'exptime'.*exposure_time"):
        build(shared_butler, pipeline, "exposure.exptime > 20")


def test_query_on_a_dimension_the_inputs_do_not_have(shared_butler: Butler, pipeline: Pipeline) -> None:
    with pytest.raises(GraphBuildError, match="names visit, which no input dataset type \\(raw\\)"):
        build(shared_butler, pipeline, "visit = 1")


@pytest.mark.parametrize("where", ["exposure = 99", "band = 'r' AND exposure = 1", "band = 'z'"])
def test_query_matching_nothing_is_an_empty_graph_error(
    shared_butler: Butler, pipeline: Pipeline, where: str
) -> None:
    with pytest.raises(GraphBuildError, match="empty") as info:
        build(shared_butler, pipeline, where)
    assert "raw (0 found)" in str(info.value)
    assert where in str(info.value)


def test_missing_input_collection(shared_butler: Butler, pipeline: Pipeline) -> None:
    with pytest.raises(GraphBuildError, match="'DemoCam/nowhere' does not exist"):
        build(shared_butler, pipeline, input_collections=[DEFAULTS, "DemoCam/nowhere"])


def test_no_input_collections(shared_butler: Butler, pipeline: Pipeline) -> None:
    with pytest.raises(GraphBuildError, match="no input collections"):
        build(shared_butler, pipeline, input_collections=[])


def test_output_run_that_already_exists(shared_butler: Butler, pipeline: Pipeline) -> None:
    with pytest.raises(GraphBuildError, match=f"output run '{RAW_RUN}' already exists"):
        build(shared_butler, pipeline, output_run=RAW_RUN)


def test_output_collection_that_is_a_run(shared_butler: Butler, pipeline: Pipeline) -> None:
    with pytest.raises(GraphBuildError, match="is a RUN collection, not CHAINED"):
        build(shared_butler, pipeline, output=RAW_RUN)

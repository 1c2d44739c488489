"""Pipeline YAML, task config and the pipeline graph: what a pipeline author gets wrong, caught early."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from butler import DimensionUniverse
from quantumgraph import Input, Output, Pipeline, PipelineError, PipelineGraph, PipelineTask
from quantumgraph.demo.tasks import Isr

QUICKSTART = Path(__file__).parents[2] / "submit_configs" / "quickstart_pipeline.yaml"


@pytest.fixture(scope="module")
def universe() -> DimensionUniverse:
    return DimensionUniverse.default()


class Looper(PipelineTask):
    """Reads its own output type: a one-task cycle."""

    dimensions = ("instrument", "exposure", "detector")
    a = Input("loopA", "StructuredDataDict", ("instrument", "exposure", "detector"))
    b = Output("loopB", "StructuredDataDict", ("instrument", "exposure", "detector"))


class LooperBack(PipelineTask):
    dimensions = ("instrument", "exposure", "detector")
    b = Input("loopB", "StructuredDataDict", ("instrument", "exposure", "detector"))
    a = Output("loopA", "StructuredDataDict", ("instrument", "exposure", "detector"))


class BadGather(PipelineTask):
    """Reads per-detector data in a per-exposure task without multiple=True."""

    dimensions = ("instrument", "exposure")
    calexp = Input("calexp", "StructuredDataDict", ("instrument", "exposure", "detector"))
    out = Output("badSummary", "StructuredDataDict", ("instrument", "exposure"))


def pipeline_text(tasks: str) -> str:
    return "description: test\ntasks:\n" + textwrap.indent(textwrap.dedent(tasks), "  ")


def test_quickstart_pipeline_graph_order_and_inputs(universe: DimensionUniverse) -> None:
    pipeline = Pipeline.from_file(QUICKSTART)
    graph = PipelineGraph.build(pipeline, universe)
    assert graph.task_order == ["isr", "calibrate", "gather"]
    assert graph.overall_inputs == ["raw"]
    assert graph.producers["calexp"] == "calibrate"
    assert graph.dataset_types["summary"].dimensions == ("instrument", "exposure")
    assert graph.dataset_types["isr_config"].storage_class == "TaskConfig"


def test_task_order_does_not_depend_on_file_order(universe: DimensionUniverse) -> None:
    text = pipeline_text(
        """
        gather: quantumgraph.demo.tasks.Gather
        calibrate: quantumgraph.demo.tasks.Calibrate
        isr: quantumgraph.demo.tasks.Isr
        """
    )
    graph = PipelineGraph.build(Pipeline.from_yaml(text), universe)
    assert graph.task_order == ["isr", "calibrate", "gather"]


def test_config_overrides_and_defaults() -> None:
    pipeline = Pipeline.from_yaml(
        pipeline_text(
            """
            isr:
              class: quantumgraph.demo.tasks.Isr
              config:
                offset: 5
            """
        )
    )
    config = pipeline.tasks["isr"].config
    assert config.offset == 5.0 and isinstance(config.offset, float)
    task = Isr(config)
    assert task.run(raw={"value": 1.0})["post_isr"]["value"] == 6.0
    assert Isr().config.offset == 1.0


def test_connection_rename_from_config(universe: DimensionUniverse) -> None:
    for override in ("connections.raw: rawAlt", "connections: {raw: rawAlt}"):
        text = pipeline_text(
            f"""
            isr:
              class: quantumgraph.demo.tasks.Isr
              config:
                {override}
            """
        )
        graph = PipelineGraph.build(Pipeline.from_yaml(text), universe)
        assert graph.overall_inputs == ["rawAlt"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks: [1, 2]", "'tasks' must be a non-empty mapping"),
        ("description: x\ntasks: {isr: {class: quantumgraph.demo.tasks.Nope}}", "has no attribute 'Nope'"),
        (
            "description: x\ntasks: {isr: {class: no_such_module.Task}}",
            "cannot import module 'no_such_module'",
        ),
        ("description: x\ntasks: {isr: {class: Isr}}", "dotted path"),
        (
            "description: x\ntasks: {isr: {class: quantumgraph.demo.tasks.Isr, config: {ofset: 2}}}",
            "unknown config field(s) ofset",
        ),
        (
            "description: x\ntasks: {isr: {class: quantumgraph.demo.tasks.Isr, config: {offset: fast}}}",
            "'offset' must be float",
        ),
        (
            "description: x\ntasks: {isr: {class: quantumgraph.demo.tasks.Isr, config: {connections.rw: a}}}",
            "renames unknown connection(s) rw",
        ),
        ("description: x\ntasks: {isr: {klass: quantumgraph.demo.tasks.Isr}}", "unknown key(s) klass"),
        (
            "description: x\nsteps: Foo\ntasks: {isr: quantumgraph.demo.tasks.Isr}",
            "unsupported top-level",
        ),
        ("description: x\ntasks: {isr: [quantumgraph.demo.tasks.Isr", "not valid YAML (line 2"),
        ("description: x\ntasks: {isr: {class: builtins.dict}}", "not a PipelineTask subclass"),
    ],
)
def test_bad_pipelines_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(PipelineError) as info:
        Pipeline.from_yaml(text, source="bad.yaml")
    assert message in str(info.value)
    assert "bad.yaml" in str(info.value)


def test_missing_pipeline_file() -> None:
    with pytest.raises(PipelineError, match="cannot read pipeline file"):
        Pipeline.from_file("/nonexistent/pipeline.yaml")


def test_cycle_is_refused(universe: DimensionUniverse) -> None:
    text = pipeline_text(
        f"""
        a: {__name__}.Looper
        b: {__name__}.LooperBack
        """
    )
    with pytest.raises(PipelineError, match="dependency cycle"):
        PipelineGraph.build(Pipeline.from_yaml(text), universe)


def test_gather_without_multiple_is_refused(universe: DimensionUniverse) -> None:
    text = pipeline_text(
        f"""
        isr: quantumgraph.demo.tasks.Isr
        calibrate: quantumgraph.demo.tasks.Calibrate
        bad: {__name__}.BadGather
        """
    )
    with pytest.raises(PipelineError, match="multiple=True"):
        PipelineGraph.build(Pipeline.from_yaml(text), universe)


def test_two_producers_of_one_dataset_type_are_refused(universe: DimensionUniverse) -> None:
    text = pipeline_text(
        """
        isr: quantumgraph.demo.tasks.Isr
        isr2: quantumgraph.demo.tasks.Isr
        """
    )
    with pytest.raises(PipelineError, match="produced by both 'isr' and 'isr2'"):
        PipelineGraph.build(Pipeline.from_yaml(text), universe)


def test_connections_are_collected_from_class_attributes() -> None:
    assert set(Isr.inputs) == {"raw"}
    assert set(Isr.outputs) == {"post_isr"}
    assert Isr.inputs["raw"].dimensions == ("instrument", "exposure", "detector")


def test_run_may_ask_for_the_quantum_data_id_which_no_connection_may_be_named() -> None:
    class WithId(PipelineTask):
        dimensions = ("instrument", "exposure")
        raw = Input("raw", "StructuredDataDict", ("instrument", "exposure"))

        def run(self, raw: object, *, data_id: object) -> dict[str, object]:
            return {}

    assert WithId.wants_data_id and not Isr.wants_data_id
    with pytest.raises(PipelineError, match="a connection may not be named 'data_id'"):

        class Clash(PipelineTask):
            data_id = Input("raw", "StructuredDataDict", ("instrument",))

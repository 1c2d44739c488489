"""A synthetic QuantumGraph of the benchmark workload W(E, D), built from the model classes.

isr (exposure, detector): raw -> postISR; calibrate: postISR -> calexp; gather (exposure): all
detectors' calexp -> summary.  2*E*D + E quanta, IDs from one IdFactory like a real graph.
"""

from __future__ import annotations

import datetime
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

from bps.workflow import GenericJob
from butler._dataset_type import DatasetRef, DatasetType
from butler._dimensions import DataCoordinate
from quantumgraph._ids import IdFactory
from quantumgraph._model import ConnectionInfo, GraphHeader, Quantum, QuantumGraph, TaskInfo

RUN = "u/test/run"
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
TIMESTAMP = "20260102T030405Z"
#: The smallest valid submit YAML, for a folder made by the ``cfg_dir`` fixture.
MINIMAL = """
pipelineYaml: pipeline.yaml
payload:
  payloadName: demo
  butlerConfig: ../repo
  inCollection: DemoCam/defaults
  output: "u/{operator}/demo"
"""
ED = ("instrument", "exposure", "detector")
E = ("instrument", "exposure")


def _type(name: str, dims: tuple[str, ...]) -> DatasetType:
    return DatasetType(name, dims, "StructuredDataDict")


def workload_graph(exposures: int, detectors: int) -> QuantumGraph:
    ids = IdFactory()
    raw, post, calexp, summary = (
        _type("raw", ED),
        _type("postISR", ED),
        _type("calexp", ED),
        _type("summary", E),
    )
    tasks = {
        "isr": TaskInfo(
            "isr",
            "demo.Isr",
            {},
            ED,
            (ConnectionInfo("raw", "raw", "input"), ConnectionInfo("out", "postISR", "output")),
        ),
        "calibrate": TaskInfo(
            "calibrate",
            "demo.Cal",
            {},
            ED,
            (ConnectionInfo("inp", "postISR", "input"), ConnectionInfo("out", "calexp", "output")),
        ),
        "gather": TaskInfo(
            "gather",
            "demo.Gather",
            {},
            E,
            (
                ConnectionInfo("inp", "calexp", "input", multiple=True),
                ConnectionInfo("out", "summary", "output"),
            ),
        ),
    }
    header = GraphHeader(
        tasks=tasks,
        dataset_types={t.name: t for t in (raw, post, calexp, summary)},
        universe_config={},
        input_collections=("demo/raw",),
        output_run=RUN,
        output="u/test",
        id_prefix=ids.prefix,
    )
    quanta: list[Quantum] = []
    for e in range(exposures):
        calexps = []
        for d in range(detectors):
            did = DataCoordinate(ED, ("Cam", e, d))
            raw_ref = DatasetRef(ids.next_id(), raw, did, "demo/raw")
            post_ref = DatasetRef(ids.next_id(), post, did, RUN)
            cal_ref = DatasetRef(ids.next_id(), calexp, did, RUN)
            quanta.append(Quantum(ids.next_id(), "isr", did, {"raw": [raw_ref]}, {"out": [post_ref]}))
            quanta.append(Quantum(ids.next_id(), "calibrate", did, {"inp": [post_ref]}, {"out": [cal_ref]}))
            calexps.append(cal_ref)
        eid = DataCoordinate(E, ("Cam", e))
        out = DatasetRef(ids.next_id(), summary, eid, RUN)
        quanta.append(Quantum(ids.next_id(), "gather", eid, {"inp": calexps}, {"out": [out]}))
    return QuantumGraph(header, quanta, {})


def write_yaml(path: Path, text: str) -> Path:
    """Write dedented YAML text to ``path`` (creating folders) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def python_job(
    name: str, label: str, code: str, *, retries: int = 0, is_init: bool = False, is_final: bool = False
) -> GenericJob:
    """A job whose command is ``python -c code`` (run in the submit directory)."""
    return GenericJob(
        name, label, [sys.executable, "-c", code], 1, 100, retries, is_init=is_init, is_final=is_final
    )


def graph_reader_like(graph: QuantumGraph) -> object:
    """Another implementation of ``quantumgraph.GraphSummary`` over an in-memory graph.

    Dependencies are computed once, up front, so timing a build through it measures bps only.
    """
    deps = graph.dependencies()

    class _Summary:
        header = graph.header

        def dependencies(self) -> dict[uuid.UUID, set[uuid.UUID]]:
            return deps

        def iter_quantum_summaries(self) -> Iterator[tuple[uuid.UUID, str, DataCoordinate]]:
            return ((q.id, q.task_label, q.data_id) for q in graph.quanta)

    return _Summary()

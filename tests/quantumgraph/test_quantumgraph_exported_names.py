"""Pin the public names of ``quantumgraph`` (bps and the plugins use nothing else) and keep the
import light: a batch job pays for ``import quantumgraph`` in every job."""

from __future__ import annotations

import subprocess
import sys

import pytest

import quantumgraph

EXPECTED = {
    "ConnectionInfo",
    "GraphBuildError",
    "GraphFileError",
    "GraphHeader",
    "GraphOptions",
    "GraphReport",
    "GraphSummary",
    "GraphReader",
    "Input",
    "MergeResult",
    "Output",
    "OutputRunExistsError",
    "Pipeline",
    "PipelineError",
    "PipelineGraph",
    "PipelineTask",
    "Quantum",
    "QuantumExecutionError",
    "QuantumFailure",
    "QuantumGraph",
    "QuantumGraphError",
    "QuantumNotFoundError",
    "QuantumTimeoutError",
    "RunConflictError",
    "TaskConfig",
    "TaskInfo",
    "TaskSummary",
    "build_quantum_graph",
    "format_report",
    "parse_graph_options",
    "report_graph",
    "transfer_from_graph",
    "write_graph",
}


def test_exported_names() -> None:
    assert set(quantumgraph.__all__) == EXPECTED
    for name in EXPECTED:
        value = getattr(quantumgraph, name)
        assert value.__module__.startswith("quantumgraph."), name


def test_import_quantumgraph_is_light() -> None:
    code = (
        "import sys, quantumgraph\n"
        "heavy = ('sqlalchemy', 'numpy', 'networkx', 'msgpack', 'zstandard', 'quantumgraph._builder',\n"
        "         'quantumgraph._file', 'butler.registry', 'butler.datastore')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "quantumgraph.GraphReader\n"
        "assert 'quantumgraph._file' in sys.modules\n"
        "assert 'sqlalchemy' not in sys.modules, 'reading a graph must not need sqlalchemy'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        quantumgraph.NoSuchThing  # noqa: B018

"""Units of work: the PipelineTask API, pipelines, QuantumGraphs, their file format and execution.

Only light modules are imported eagerly so that a batch job's start-up stays small; the builder
and the graph file are lifted on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import TaskConfig
from ._exceptions import (
    GraphBuildError,
    GraphFileError,
    OutputRunExistsError,
    PipelineError,
    QuantumExecutionError,
    QuantumGraphError,
    QuantumNotFoundError,
    QuantumTimeoutError,
    RunConflictError,
)
from ._model import ConnectionInfo, GraphHeader, GraphSummary, Quantum, QuantumGraph, TaskInfo
from ._options import GraphOptions
from ._task import Input, Output, PipelineTask

if TYPE_CHECKING:
    from ._builder import build_quantum_graph
    from ._file import GraphReader, write_graph
    from ._merge import MergeResult, transfer_from_graph
    from ._pipeline import Pipeline
    from ._pipeline_graph import PipelineGraph
    from ._report import GraphReport, QuantumFailure, TaskSummary, format_report, report_graph
    from .cli import parse_graph_options

_LAZY = {
    "build_quantum_graph": "._builder",
    "Pipeline": "._pipeline",
    "PipelineGraph": "._pipeline_graph",
    "GraphReader": "._file",
    "write_graph": "._file",
    "transfer_from_graph": "._merge",
    "MergeResult": "._merge",
    "GraphReport": "._report",
    "QuantumFailure": "._report",
    "TaskSummary": "._report",
    "format_report": "._report",
    "report_graph": "._report",
    "parse_graph_options": ".cli",
}

__all__ = [
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
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'quantumgraph' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

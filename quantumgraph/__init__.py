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
)
from ._model import ConnectionInfo, GraphHeader, GraphSummary, Quantum, QuantumGraph, TaskInfo
from ._task import Input, Output, PipelineTask

if TYPE_CHECKING:
    from ._builder import build_quantum_graph
    from ._file import GraphReader, write_graph
    from ._merge import MergeResult, transfer_from_graph
    from ._pipeline import Pipeline
    from ._pipeline_graph import PipelineGraph

_LAZY = {
    "build_quantum_graph": "._builder",
    "Pipeline": "._pipeline",
    "PipelineGraph": "._pipeline_graph",
    "GraphReader": "._file",
    "write_graph": "._file",
    "transfer_from_graph": "._merge",
    "MergeResult": "._merge",
}

__all__ = [
    "ConnectionInfo",
    "GraphBuildError",
    "GraphFileError",
    "GraphHeader",
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
    "QuantumGraph",
    "QuantumGraphError",
    "QuantumNotFoundError",
    "TaskConfig",
    "TaskInfo",
    "build_quantum_graph",
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

"""The engine-neutral WorkflowGraph and how it is built from a QuantumGraph."""

from __future__ import annotations

from ._build import build_workflow
from ._cluster import ClusterFunction, QuantumCluster, QuantumGraphSummary
from ._graph import WorkflowGraph
from ._io import WORKFLOW_FILENAME, read_workflow, write_workflow
from ._job import FINAL_LABEL, INIT_LABEL, GenericJob

__all__ = [
    "FINAL_LABEL",
    "ClusterFunction",
    "INIT_LABEL",
    "WORKFLOW_FILENAME",
    "GenericJob",
    "QuantumCluster",
    "QuantumGraphSummary",
    "WorkflowGraph",
    "build_workflow",
    "read_workflow",
    "write_workflow",
]

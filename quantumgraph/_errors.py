"""Errors raised by the quantumgraph layer.

::

    QuantumGraphError
     +-- PipelineError (ValueError)        a pipeline YAML, task class or config that is wrong
     +-- GraphBuildError (ValueError)      inputs or data query that cannot produce a graph
     +-- QuantumExecutionError (RuntimeError)   a task that failed while running a quantum

Graph-file corruption is reported by ``quantumgraph._file.GraphFileError`` (a ValueError).
"""

from __future__ import annotations


class QuantumGraphError(Exception):
    """Root of the errors raised by the quantumgraph layer."""


class PipelineError(QuantumGraphError, ValueError):
    """A pipeline definition, task class or task config that cannot be used."""


class GraphBuildError(QuantumGraphError, ValueError):
    """The builder cannot turn the pipeline, inputs and query into a graph."""


class QuantumExecutionError(QuantumGraphError, RuntimeError):
    """A quantum's task raised, or returned outputs that do not match its connections."""

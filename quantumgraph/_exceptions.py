"""Errors raised by the quantumgraph layer.

Every error derives from :class:`QuantumGraphError` and also from the builtin it refines, so
callers may catch either ``QuantumGraphError`` or, say, ``ValueError``::

    QuantumGraphError
     +-- PipelineError (ValueError)        a pipeline YAML, task class or config that is wrong
     +-- GraphBuildError (ValueError)      inputs or data query that cannot produce a graph
     +-- GraphFileError (ValueError)       a QuantumGraph file that cannot be trusted: bad magic,
     |                                     truncated, checksum mismatch, unsupported version,
     |                                     undecodable or malformed part (or one that cannot be written)
     +-- QuantumNotFoundError (KeyError)   a quantum ID the graph does not hold
     +-- QuantumExecutionError (RuntimeError)   a task that failed while running a quantum
     |    +-- QuantumTimeoutError (TimeoutError) ... or ran longer than --timeout allows
     +-- OutputRunExistsError (FileExistsError) an execution's output run is already taken
     +-- RunConflictError (ValueError)     an existing output run made with another config or
                                           other package versions than this execution's

The command lines turn these into one-line ``error: ...`` messages (the error boundary in
:mod:`butler.cli_support`); anything else escaping a command is a bug and keeps its traceback.
"""

from __future__ import annotations

import os


class QuantumGraphError(Exception):
    """Root of the errors raised by the quantumgraph layer."""


class PipelineError(QuantumGraphError, ValueError):
    """A pipeline definition, task class or task config that cannot be used."""


class GraphBuildError(QuantumGraphError, ValueError):
    """The builder cannot turn the pipeline, inputs and query into a graph."""


class GraphFileError(QuantumGraphError, ValueError):
    """A QuantumGraph file that cannot be read: the message names the file, the part and the fault.

    Corruption, truncation, a foreign file or a format this skybatch does not read all surface as
    this one type, never as a msgpack or zstd traceback, so a batch job's log says which file is bad
    and which part of it.  It refines :class:`ValueError` (the file's *content* is wrong).  Missing
    files and permission problems stay :class:`OSError`: those are about the path, not the bytes,
    and callers handle them differently (retry, wrong argument) from a corrupt file.

    ``part`` is one of ``header``, ``block N``, ``index``, ``footer``, ``quantum table``,
    ``dataset table page N``, ``records``, ``dictionary``, or ``write`` for problems found while
    writing; ``reason`` is the fault without the location, so tests and tools can match on it.
    """

    def __init__(self, path: str | os.PathLike[str], part: str, reason: str) -> None:
        self.path = os.fspath(path)
        self.part = part
        self.reason = reason
        super().__init__(f"QuantumGraph file {self.path}: {part}: {reason}")


class QuantumNotFoundError(QuantumGraphError, KeyError):
    """A quantum ID (``--qgraph-node-id``, or a caller's) that the graph or graph file does not hold."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class QuantumExecutionError(QuantumGraphError, RuntimeError):
    """A quantum's task raised, or returned outputs that do not match its connections."""


class OutputRunExistsError(QuantumGraphError, FileExistsError):
    """The output run an execution would write already exists, and the user did not say to reuse it.

    Runs are reserved in the registry when execution starts, so two executions never share one
    by accident (and never mix their outputs); ``--extend-run`` and ``--clobber-outputs`` are the
    explicit ways to write into an existing run.
    """


class QuantumTimeoutError(QuantumExecutionError, TimeoutError):
    """A quantum ran longer than its time limit (``--timeout``); it failed like any other."""


class RunConflictError(QuantumGraphError, ValueError):
    """Writing into an existing run (``--extend-run``) would mix configs or package versions.

    The message names the task and config field, or the packages, that differ: the outputs
    already in the run were made with those, and a run must describe one way of processing.
    """

"""One engine-neutral batch job: what to run, with what resources, for which quanta."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

#: Label (and name) of the job that writes init-outputs before any quantum runs.
INIT_LABEL = "pipetaskInit"
#: Label (and name) of the merge job that registers what the workflow produced.
FINAL_LABEL = "finalJob"
RESERVED_LABELS = frozenset({INIT_LABEL, FINAL_LABEL})


@dataclass(slots=True, eq=False)
class GenericJob:
    """A node of the :class:`~bps.workflow.WorkflowGraph`.

    Plugins render it for their engine; they must not need the QuantumGraph to do so, which is
    why the full command line and the resources are spelled out here.  ``eq=False``: two jobs
    are the same only if they are the same object (names are unique within a workflow).
    """

    name: str
    """Unique within the workflow; used for log file names and in reports."""
    label: str
    """Task label for quantum jobs; :data:`INIT_LABEL` / :data:`FINAL_LABEL` for the others."""
    command: list[str]
    """argv; the program is looked up on PATH by the engine."""
    request_cpus: int
    request_memory: int
    """Megabytes."""
    number_of_retries: int
    quantum_ids: tuple[uuid.UUID, ...] = ()
    is_init: bool = False
    is_final: bool = False
    files: tuple[str, ...] = ()
    """Files the job reads that an engine might have to stage (the graph file)."""

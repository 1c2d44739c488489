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
    """Task label of a one-quantum job, the cluster name of a cluster job (several quanta);
    :data:`INIT_LABEL` / :data:`FINAL_LABEL` for bps's own jobs."""
    command: list[str]
    """argv; the program is looked up on PATH by the engine."""
    request_cpus: int
    request_memory: int
    """Megabytes."""
    number_of_retries: int
    quantum_ids: tuple[uuid.UUID, ...] = ()
    """The quanta the command runs, in the order it runs them (empty for init and final jobs)."""
    is_init: bool = False
    is_final: bool = False
    files: tuple[str, ...] = ()
    """Files the job reads that an engine might have to stage (the graph file)."""
    request_disk: int = 0
    """Megabytes of local scratch disk; 0: the engine's default."""
    request_walltime: int | None = None
    """Seconds the job may run; None: no limit asked for."""
    retry_unless_exit: tuple[int, ...] = ()
    """Exit codes after which the job must NOT be retried (retries are left unused)."""
    memory_multiplier: float | None = None
    """> 1: an attempt killed or held for exceeding ``request_memory`` is retried with the memory
    multiplied by this, again on each such retry, up to ``memory_limit``.  None: memory is fixed."""
    memory_limit: int | None = None
    """Megabytes the multiplied memory never exceeds; set (>= ``request_memory``) exactly when
    ``memory_multiplier`` is.  An engine may lower it to the largest memory its site offers."""
    environment: tuple[tuple[str, str], ...] = ()
    """Variables set for this job on top of what the engine passes (the submit YAML's
    ``environment:``, resolved at submit time; see docs/bps.md for what else reaches a job), and,
    for jobs that import task classes, ``PYTHONPATH`` with the pipeline's task directories first
    (``_commands.with_task_search_path``)."""

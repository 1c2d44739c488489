"""Command lines of the three kinds of batch job: the one place that spells them out.

These are the contract with ``pipetask`` and ``butler`` (see docs/contracts.md); a plugin only
ever sees the resulting argv lists.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence


def init_command(repo: str, graph: str) -> list[str]:
    """Write every task's init-outputs (configs, schemas) once, before any quantum runs."""
    return ["pipetask", "pre-exec-init-qbb", repo, graph]


def quantum_command_prefix(repo: str, graph: str) -> tuple[str, ...]:
    """The part of :func:`quantum_command` shared by every quantum job (built once per workflow)."""
    return ("pipetask", "run-qbb", repo, graph)


def quantum_command(
    prefix: tuple[str, ...], quantum_ids: tuple[uuid.UUID, ...], job_local: tuple[str, ...] = ()
) -> list[str]:
    """Run the given quanta, in this order, from the graph file with a quantum-backed butler.

    ``job_local`` dataset types are kept in memory for the job's later quanta instead of being
    written (bps passes only types that no quantum outside the job reads).
    """
    argv = list(prefix)
    for qid in quantum_ids:
        argv += ("--qgraph-node-id", str(qid))
    for name in job_local:
        argv += ("--job-local", name)
    return argv


def final_command(repo: str, graph: str, *, update_output_chain: bool) -> list[str]:
    """Register in the repository exactly the outputs that exist; safe to run twice."""
    argv = ["butler", "transfer-from-graph", graph, repo]
    if update_output_chain:
        argv.append("--update-output-chain")
    argv.append("--register-dataset-types")
    return argv


def with_task_search_path(
    python_path: Sequence[str], configured: tuple[tuple[str, str], ...], inherited: str | None
) -> tuple[tuple[str, str], ...]:
    """The environment of a job that imports task classes (init and quantum jobs).

    ``python_path`` is the task search path the graph was built with (graph metadata
    ``python_path``: the pipeline's ``python_path:`` entries, its files' directories, the build's
    working directory).  Jobs run elsewhere and must not depend on the submitting shell, so these
    directories go on ``PYTHONPATH`` explicitly, in front of the ``PYTHONPATH`` the submit YAML's
    ``environment:`` gives the job (``configured``) or, without one, of ``inherited`` (the
    submitting process's), so a job still sees what the build saw.
    """
    if not python_path:
        return configured
    own = dict(configured).get("PYTHONPATH")
    rest = own if own is not None else inherited
    value = os.pathsep.join([*python_path, *([rest] if rest else [])])
    return (*((k, v) for k, v in configured if k != "PYTHONPATH"), ("PYTHONPATH", value))

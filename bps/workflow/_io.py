"""The workflow description kept in the submit directory (versioned JSON, never pickle).

``report`` and ``restart`` read it back long after the submitting process is gone; jobs with
default flags omit them to keep 20,000-job files small.

Versions: 1.0 had name, label, command, cpus, memory, retries, quantum IDs, flags and files;
1.1 adds the optional ``request_disk``, ``request_walltime``, ``retry_unless_exit``,
``memory_multiplier`` and ``memory_limit`` (written only when not at their defaults), so 1.0 files
read as jobs with default values and a 1.0 reader still reads 1.1 files.  1.2 adds the optional
``environment`` (a list of [name, value] pairs from the submit YAML's ``environment:`` keys).
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

from butler import gc_paused

from .._exceptions import StateFileError
from .._jsonfile import read_versioned, versioned, write_json_atomic
from ..config._model import FinalJobWhen
from ._graph import WorkflowGraph
from ._job import GenericJob

WORKFLOW_FORMAT = "skybatch.bps.workflow"
WORKFLOW_MAJOR = 1
WORKFLOW_MINOR = 2
WORKFLOW_FILENAME = "workflow.json"


def _job_to_json(job: GenericJob, file_index: dict[tuple[str, ...], int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": job.name,
        "label": job.label,
        "command": job.command,
        "request_cpus": job.request_cpus,
        "request_memory": job.request_memory,
        "number_of_retries": job.number_of_retries,
    }
    if job.quantum_ids:
        out["quantum_ids"] = [str(q) for q in job.quantum_ids]
    if job.is_init:
        out["is_init"] = True
    if job.is_final:
        out["is_final"] = True
    if job.files:
        out["files"] = file_index.setdefault(job.files, len(file_index))
    if job.request_disk:
        out["request_disk"] = job.request_disk
    if job.request_walltime is not None:
        out["request_walltime"] = job.request_walltime
    if job.retry_unless_exit:
        out["retry_unless_exit"] = list(job.retry_unless_exit)
    if job.memory_multiplier is not None:
        out["memory_multiplier"] = job.memory_multiplier
    if job.memory_limit is not None:
        out["memory_limit"] = job.memory_limit
    if job.environment:
        out["environment"] = [list(pair) for pair in job.environment]
    return out


def _optional_int(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    return None if value is None else int(value)


def write_workflow(path: Path, workflow: WorkflowGraph) -> None:
    """Write ``workflow`` to ``path``; identical ``files`` tuples are stored once and referenced."""
    with gc_paused():
        _write(path, workflow)


def _write(path: Path, workflow: WorkflowGraph) -> None:
    file_index: dict[tuple[str, ...], int] = {}
    jobs = [_job_to_json(job, file_index) for job in workflow]
    body = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "name": workflow.name,
        "final_job_when": workflow.final_job_when.value,
        "file_sets": [list(files) for files in file_index],
        "jobs": jobs,
        "edges": [list(edge) for edge in workflow.edges()],
    }
    write_json_atomic(path, versioned(WORKFLOW_FORMAT, WORKFLOW_MAJOR, WORKFLOW_MINOR, body))


def read_workflow(path: Path) -> WorkflowGraph:
    """Rebuild a :class:`WorkflowGraph` from :func:`write_workflow`'s file."""
    with gc_paused():
        return _read(path)


def _read(path: Path) -> WorkflowGraph:
    doc = read_versioned(path, WORKFLOW_FORMAT, WORKFLOW_MAJOR)
    try:
        file_sets = [tuple(files) for files in doc["file_sets"]]
        workflow = WorkflowGraph(doc["name"], final_job_when=FinalJobWhen(doc["final_job_when"]))
        workflow.add_jobs(
            GenericJob(
                name=item["name"],
                label=item["label"],
                command=list(item["command"]),
                request_cpus=int(item["request_cpus"]),
                request_memory=int(item["request_memory"]),
                number_of_retries=int(item["number_of_retries"]),
                quantum_ids=tuple(uuid.UUID(q) for q in item.get("quantum_ids", ())),
                is_init=bool(item.get("is_init", False)),
                is_final=bool(item.get("is_final", False)),
                files=file_sets[item["files"]] if "files" in item else (),
                request_disk=int(item.get("request_disk", 0)),
                request_walltime=_optional_int(item, "request_walltime"),
                retry_unless_exit=tuple(int(c) for c in item.get("retry_unless_exit", ())),
                memory_multiplier=(
                    None if item.get("memory_multiplier") is None else float(item["memory_multiplier"])
                ),
                memory_limit=_optional_int(item, "memory_limit"),
                environment=tuple((str(k), str(v)) for k, v in item.get("environment", ())),
            )
            for item in doc["jobs"]
        )
        workflow.add_dependencies((parent, child) for parent, child in doc["edges"])
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise StateFileError(f"{path}: malformed workflow file ({type(err).__name__}: {err})") from err
    return workflow


#: LSST's name for the workflow drawn as DOT (``saveDot: true``).
DOT_FILENAME = "bps_generic_workflow.dot"


def write_dot(path: Path, workflow: WorkflowGraph) -> None:
    """The workflow as Graphviz DOT: a node per job (its label as tooltip), an edge per dependency."""

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {quote(workflow.name)} {{"]
    lines += [f"  {quote(job.name)} [tooltip={quote(job.label)}];" for job in workflow]
    lines += [f"  {quote(parent)} -> {quote(child)};" for parent, child in workflow.edges()]
    lines.append("}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)

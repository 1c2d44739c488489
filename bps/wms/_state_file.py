"""A run's job states as a small versioned JSON file in the submit directory.

For plugins whose engine keeps no queryable record of its own (Parsl's local executors: when
the submitting process ends, the engine is gone), this file is what ``bps report`` reads later.
It is rewritten whole, atomically, by the one process that runs the workflow.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import StateFileError
from .._jsonfile import read_versioned, versioned, write_json_atomic
from ._states import JobState

STATE_FORMAT = "skybatch.bps.state"
STATE_MAJOR = 1
STATE_MINOR = 0
STATE_FILENAME = "state.json"


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class JobStatus:
    """What is recorded about one job: its state and how its last attempt ended."""

    label: str
    state: JobState
    attempts: int = 0
    exit_code: int | None = None
    message: str = ""


@dataclass(slots=True)
class RunState:
    """The whole state file."""

    run_id: str
    wms: str
    jobs: dict[str, JobStatus]
    state: JobState = JobState.READY
    pid: int | None = None
    """Process running the workflow (so ``cancel`` can signal it and ``report`` can tell it died)."""
    host: str = ""
    started: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)
    message: str = ""


def _job_json(status: JobStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"label": status.label, "state": status.state.value}
    if status.attempts:
        out["attempts"] = status.attempts
    if status.exit_code is not None:
        out["exit_code"] = status.exit_code
    if status.message:
        out["message"] = status.message
    return out


def write_state(path: Path, state: RunState) -> None:
    """Write ``state`` atomically (readers see the old file or the new one, never a mix)."""
    state.updated = utc_now()
    body = {
        "run_id": state.run_id,
        "wms": state.wms,
        "state": state.state.value,
        "pid": state.pid,
        "host": state.host,
        "started": state.started,
        "updated": state.updated,
        "message": state.message,
        "jobs": {name: _job_json(status) for name, status in state.jobs.items()},
    }
    write_json_atomic(path, versioned(STATE_FORMAT, STATE_MAJOR, STATE_MINOR, body))


def read_state(path: Path) -> RunState:
    doc = read_versioned(path, STATE_FORMAT, STATE_MAJOR)
    try:
        jobs = {
            name: JobStatus(
                label=item["label"],
                state=JobState(item["state"]),
                attempts=int(item.get("attempts", 0)),
                exit_code=item.get("exit_code"),
                message=item.get("message", ""),
            )
            for name, item in doc["jobs"].items()
        }
        return RunState(
            run_id=doc["run_id"],
            wms=doc["wms"],
            jobs=jobs,
            state=JobState(doc["state"]),
            pid=doc.get("pid"),
            host=doc.get("host", ""),
            started=doc.get("started", ""),
            updated=doc.get("updated", ""),
            message=doc.get("message", ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise StateFileError(f"{path}: malformed state file ({type(err).__name__}: {err})") from err

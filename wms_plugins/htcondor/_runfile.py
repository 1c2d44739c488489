"""``htcondor_run.json``: the DAG's name and each submission of it (DAGMan cluster id, kind, time).

A run is submitted once and restarted any number of times; each submission is a new DAGMan job.
``cancel`` marks the submission it removed, so ``report`` can tell an operator's cancel from a
DAGMan that died.  Versioned JSON, written atomically (bps's helpers).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bps import StateFileError
from bps.wms import read_versioned_json, write_versioned_json

RUN_FILE_FORMAT = "skybatch.htcondor.run"
RUN_FILE_MAJOR = 1
RUN_FILE_MINOR = 0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Submission:
    cluster: int
    kind: str
    """``submit`` or ``restart``."""
    time: str = field(default_factory=_now)
    schedd: str = ""
    cancelled: str = ""
    """When ``bps cancel`` removed it (ISO time), else empty."""


@dataclass(frozen=True, slots=True)
class HTCondorRun:
    name: str
    """The workflow name: the DAG file is ``<name>.dag``."""
    submissions: tuple[Submission, ...] = ()

    @property
    def last(self) -> Submission | None:
        return self.submissions[-1] if self.submissions else None

    def with_submission(self, submission: Submission) -> HTCondorRun:
        return replace(self, submissions=(*self.submissions, submission))

    def with_last_cancelled(self) -> HTCondorRun:
        if not self.submissions:
            return self
        last = replace(self.submissions[-1], cancelled=_now())
        return replace(self, submissions=(*self.submissions[:-1], last))


def write_run_file(path: Path, run: HTCondorRun) -> None:
    body: dict[str, Any] = {
        "name": run.name,
        "submissions": [
            {
                "cluster": s.cluster,
                "kind": s.kind,
                "time": s.time,
                "schedd": s.schedd,
                "cancelled": s.cancelled,
            }
            for s in run.submissions
        ],
    }
    write_versioned_json(path, RUN_FILE_FORMAT, RUN_FILE_MAJOR, RUN_FILE_MINOR, body)


def read_run_file(path: Path) -> HTCondorRun:
    doc = read_versioned_json(path, RUN_FILE_FORMAT, RUN_FILE_MAJOR)
    try:
        return HTCondorRun(
            name=str(doc["name"]),
            submissions=tuple(
                Submission(
                    cluster=int(s["cluster"]),
                    kind=str(s["kind"]),
                    time=str(s.get("time", "")),
                    schedd=str(s.get("schedd", "")),
                    cancelled=str(s.get("cancelled", "")),
                )
                for s in doc["submissions"]
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise StateFileError(f"{path}: malformed HTCondor run file ({type(err).__name__}: {err})") from err

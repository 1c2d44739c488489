"""What the run's journal (``parsl_events.jsonl``) says about each job, and what to do with it.

The state file is written by the ``bps`` process running the workflow; if that process is
killed, the jobs it launched keep running in their own sessions and record their own ends in the
journal (see ``_job_wrapper``).  This module folds those records back into the state:

* a job with an ``end`` record of exit code 0 SUCCEEDED -- whatever the state file says -- and is
  never run again;
* a job whose last ``launch`` has no ``end`` is either an orphan still running (its process
  group is alive on this host) or was killed with its parent.

``bps report`` only reads (it shows orphans as RUNNING and dead ones as FAILED); ``bps restart``
first stops orphans, then records the folded state and runs what is left.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from bps.wms import JobState, RunState

_LOG = logging.getLogger(__name__)
#: How long a stopped orphan gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 10.0


@dataclass(slots=True)
class JobRecord:
    """One job's launches and ends, in journal order."""

    launches: list[tuple[int, str]] = field(default_factory=list)
    """(process group, host) of each launched attempt."""
    exit_codes: list[int] = field(default_factory=list)
    ended: str | None = None
    """ISO time of the last ``end`` record (when the last finished attempt ended)."""

    @property
    def succeeded(self) -> bool:
        return 0 in self.exit_codes

    @property
    def unfinished_launch(self) -> tuple[int, str] | None:
        """The last attempt's (process group, host) if it has not recorded its end."""
        if len(self.launches) > len(self.exit_codes):
            return self.launches[-1]
        return None


def read_journal(path: Path) -> dict[str, JobRecord]:
    """Every job's records; a torn last line (a crash mid-write) and malformed lines are skipped."""
    records: dict[str, JobRecord] = {}
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return records
    for line in data.splitlines():
        try:
            event = json.loads(line)
            name, kind = event["job"], event["event"]
            if kind == "launch":
                records.setdefault(name, JobRecord()).launches.append(
                    (int(event["pgid"]), str(event["host"]))
                )
            elif kind == "end":
                record = records.setdefault(name, JobRecord())
                record.exit_codes.append(int(event["exit_code"]))
                record.ended = str(event.get("time")) if event.get("time") else record.ended
        except (ValueError, KeyError, TypeError):
            continue
    return records


def _group_alive(pgid: int, host: str) -> bool:
    """Whether the job's process group still exists here (and is still one of our wrappers)."""
    if host != socket.gethostname():
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pgid}/cmdline")
    try:
        return b"_job_wrapper.py" in cmdline.read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: trust the signal check
    except OSError:
        return True


def live_orphans(journal: dict[str, JobRecord]) -> dict[str, int]:
    """Job name -> process group, for launched attempts on this host that are still running."""
    out = {}
    for name, record in journal.items():
        launch = record.unfinished_launch
        if launch is not None and _group_alive(*launch):
            out[name] = launch[0]
    return out


def stop_orphans(journal: dict[str, JobRecord], grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """SIGTERM each orphan's process group, SIGKILL what is left after ``grace``; the names stopped.

    The job wrapper forwards SIGTERM to the command and records the end, so a stopped job shows
    as failed (and is run again) rather than as lost.
    """
    orphans = live_orphans(journal)
    for name, pgid in orphans.items():
        _LOG.warning("stopping orphaned job %s (process group %d) left by a killed bps", name, pgid)
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while orphans and time.monotonic() < deadline:
        if not any(_group_alive(pgid, socket.gethostname()) for pgid in orphans.values()):
            break
        time.sleep(0.1)
    for pgid in orphans.values():
        if _group_alive(pgid, socket.gethostname()):
            _signal_group(pgid, signal.SIGKILL)
    return sorted(orphans)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def apply_journal(state: RunState, journal: dict[str, JobRecord], *, for_report: bool) -> None:
    """Fold the journal into ``state`` for a run whose ``bps`` process is gone.

    Jobs that recorded success become SUCCEEDED.  For a report, a job still marked RUNNING or
    PENDING with a launched attempt is RUNNING if that attempt's process lives (an orphan) and
    FAILED if it does not (nobody will finish it until ``bps restart``).
    """
    for name, status in state.jobs.items():
        record = journal.get(name)
        if record is None:
            continue
        if record.succeeded:
            if status.state is not JobState.SUCCEEDED:
                status.state, status.exit_code, status.message = JobState.SUCCEEDED, 0, ""
            continue
        if not for_report or status.state not in (JobState.RUNNING, JobState.PENDING) or not record.launches:
            continue
        launch = record.unfinished_launch
        if launch is not None and _group_alive(*launch):
            status.state = JobState.RUNNING
            status.message = (
                f"orphaned: still running as process group {launch[0]} after bps was killed; "
                "`bps restart` stops it first"
            )
        else:
            status.state = JobState.FAILED
            status.exit_code = record.exit_codes[-1] if launch is None and record.exit_codes else None
            status.message = "its process is gone (the bps process running the workflow was killed)"

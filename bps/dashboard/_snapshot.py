"""What the dashboard shows, as JSON-ready dicts built from bps's report model.

One function per API resource: :func:`run_list` (``/api/runs``) and :func:`run_detail`
(``/api/runs/{id}``).  The page draws exactly these, so the API and the page can never disagree.

Everything here only reads: the runs index, each run's plugin report (the same one ``bps report``
prints), and two files every submit directory holds, ``workflow.json`` (memory requested per
job) and ``submit_config.yaml`` (shown as written).  The per-job facts -- exception, log tail,
memory used, when a job ended -- come from the report model; this module only groups and counts.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._report import _report as service_report
from .._runs import RunRecord, find_run, list_runs, runs_dir
from .._submit import CONFIG_FILENAME
from ..wms import STATE_ORDER, TERMINAL_STATES, BaseWmsService, JobReport, JobState, RunReport

_LOG = logging.getLogger(__name__)
#: Lines of a failed job's log shown under its failure group.
TAIL_LINES = 15
#: Bytes read from the end of a log to find those lines (a huge log is never read whole).
TAIL_BYTES = 16 * 1024
#: Failed jobs listed per failure group (the count is always exact).
JOBS_PER_GROUP = 20
_FAILED = (JobState.FAILED, JobState.HELD)
_RAISED = re.compile(r"raised (\w[\w.]*: .*)$")
_EXCEPTION_LINE = re.compile(r"^(\w[\w.]*(?:Error|Exception|Interrupt|Exit)\b:? ?.*)$")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _summary(record: RunRecord, report: RunReport | None, error: str = "") -> dict[str, Any]:
    """One run's line in the list: who, what, where, and its job counts per state."""
    counts: Counter[JobState] = Counter(job.state for job in report.jobs) if report else Counter()
    return {
        "run_id": record.run_id,
        "state": report.state.value if report is not None else "UNKNOWN",
        "payload": record.payload_name,
        "operator": record.operator,
        "project": record.project,
        "campaign": record.campaign,
        "submit_time": record.submit_time,
        "updated": report.updated if report is not None else None,
        "wms": record.wms_service_class,
        "output": record.output,
        "output_run": record.output_run,
        "butler_config": record.butler_config,
        "submit_dir": record.submit_dir,
        "message": report.message if report is not None else "",
        "error": error,
        "counts": {state.value: counts.get(state, 0) for state in STATE_ORDER},
        "total": sum(counts.values()),
        "finished": sum(n for state, n in counts.items() if state in TERMINAL_STATES),
    }


def _reports(records: Iterable[RunRecord]) -> Iterable[tuple[RunRecord, RunReport | None, str]]:
    """Each record with its report, or the reason it has none (one broken run hides no other)."""
    services: dict[str, BaseWmsService] = {}
    for record in records:
        try:
            yield record, service_report(record, services), ""
        except Exception as err:  # noqa: BLE001 -- shown on the run's row, the page goes on
            _LOG.debug("report for run %s failed", record.run_id, exc_info=True)
            yield record, None, f"{type(err).__name__}: {err}"


def run_list() -> dict[str, Any]:
    """Every run in the runs index, newest first, with its state and job counts."""
    runs = [_summary(record, report, error) for record, report, error in _reports(list_runs())]
    return {"generated": _now(), "runs_dir": str(runs_dir()), "runs": runs}


def run_detail(ref: str) -> dict[str, Any]:
    """One run (id, unique id prefix or submit directory) in full.

    Raises :class:`~bps.RunNotFoundError` if ``ref`` names no recorded run.
    """
    record = find_run(ref)
    ((_, report, error),) = _reports([record])
    out = _summary(record, report, error)
    jobs = report.jobs if report is not None else ()
    requested = _requested_memory(Path(record.submit_dir))
    out["generated"] = _now()
    out["labels"] = _labels(jobs, requested)
    out["failures"] = _failures(jobs)
    out["finished_times"] = _finished_times(jobs)
    out["config"] = _config_text(Path(record.submit_dir))
    return out


# -- per-label progress and memory ----------------------------------------------------------------
def _labels(jobs: Iterable[JobReport], requested: dict[str, int]) -> list[dict[str, Any]]:
    """Task label -> job counts per state and memory, labels in workflow order."""
    per_label: dict[str, list[JobReport]] = {}
    for job in jobs:
        per_label.setdefault(job.label, []).append(job)
    out = []
    for label, members in per_label.items():
        counts = Counter(job.state for job in members)
        used = [job.memory_used for job in members if job.memory_used is not None]
        given = [job.memory_requested for job in members if job.memory_requested is not None]
        out.append(
            {
                "label": label,
                "counts": {state.value: counts.get(state, 0) for state in STATE_ORDER},
                "total": len(members),
                "memory_requested_mb": max(given) if given else requested.get(label),
                "memory_used_mb": max(used) if used else None,
                "memory_measured_jobs": len(used),
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class _WorkflowMemory:
    mtime_ns: int
    per_label: dict[str, int]


_MEMORY_CACHE: dict[Path, _WorkflowMemory] = {}


def _requested_memory(submit_dir: Path) -> dict[str, int]:
    """Largest requestMemory (MB) of each label's jobs, from the run's ``workflow.json``.

    The workflow never changes after ``bps prepare``; it is read once per file version.
    """
    from ..workflow import WORKFLOW_FILENAME, read_workflow

    path = submit_dir / WORKFLOW_FILENAME
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return {}
    cached = _MEMORY_CACHE.get(path)
    if cached is not None and cached.mtime_ns == mtime:
        return cached.per_label
    per_label: dict[str, int] = {}
    try:
        for job in read_workflow(path):
            per_label[job.label] = max(per_label.get(job.label, 0), job.request_memory)
    except Exception as err:  # noqa: BLE001 -- a missing memory column, not a broken page
        _LOG.warning("cannot read requested memory from %s: %s", path, err)
        return {}
    _MEMORY_CACHE[path] = _WorkflowMemory(mtime, per_label)
    return per_label


# -- failures grouped by exception -------------------------------------------------------------------
def _log_tail(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, 2)
            stream.seek(max(0, size - TAIL_BYTES))
            data = stream.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if len(data) == TAIL_BYTES and lines:
        lines = lines[1:]  # the first line read is probably cut
    return lines[-TAIL_LINES:]


def _exception(job: JobReport, tail: list[str]) -> str:
    """The exception that ended the job (its log's last one), else why it stopped."""
    for line in reversed(tail):
        found = _RAISED.search(line) or _EXCEPTION_LINE.match(line.strip())
        if found:
            return found.group(1)
    if job.message:
        return job.message
    if job.exit_code is not None:
        return f"exit code {job.exit_code} (no exception in its log)"
    return f"{job.state.value} (no exit code, no exception in its log)"


def _failures(jobs: Iterable[JobReport]) -> list[dict[str, Any]]:
    """Failed and held jobs grouped by (label, exception), biggest group first."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for job in jobs:
        if job.state not in _FAILED:
            continue
        tail = _log_tail(job.stderr)
        exception = _exception(job, tail)
        groups.setdefault((job.label, exception), []).append(
            {
                "name": job.name,
                "state": job.state.value,
                "exit_code": job.exit_code,
                "attempts": job.attempts,
                "log": str(job.stderr) if job.stderr is not None else None,
                "tail": tail,
            }
        )
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [
        {"label": label, "exception": exception, "count": len(members), "jobs": members[:JOBS_PER_GROUP]}
        for (label, exception), members in ordered
    ]


# -- jobs finished over time ----------------------------------------------------------------------
def _finished_times(jobs: Iterable[JobReport]) -> list[str]:
    """When each job that reached a final state ended (ISO, sorted): the plot's data."""
    return sorted(job.finished for job in jobs if job.finished is not None and job.state in TERMINAL_STATES)


def _config_text(submit_dir: Path) -> str:
    try:
        return (submit_dir / CONFIG_FILENAME).read_text(encoding="utf-8")
    except OSError as err:
        return f"# cannot read {submit_dir / CONFIG_FILENAME}: {err.strerror or err}"

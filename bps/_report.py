"""``bps report``: ask a run's plugin for its state and lay it out as text tables.

Fetching (which plugin, which run) and formatting are separate functions so tests and other
front ends can use the :class:`~bps.wms.RunReport` dataclasses directly.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from dataclasses import dataclass, replace

from ._runs import RunRecord, find_run, list_runs
from .wms._loader import load_wms_service_class
from .wms._service import BaseWmsService, RunReport
from .wms._states import STATE_ORDER, JobState

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One line of the recent-runs listing."""

    record: RunRecord
    report: RunReport | None
    error: str = ""


def _service_for(record: RunRecord, cache: dict[str, BaseWmsService]) -> BaseWmsService:
    if record.wms_service_class not in cache:
        cache[record.wms_service_class] = load_wms_service_class(record.wms_service_class)()
    return cache[record.wms_service_class]


def _report(record: RunRecord, cache: dict[str, BaseWmsService]) -> RunReport:
    service = _service_for(record, cache)
    reports = service.report(record.wms_run_id or record.submit_dir)
    if not reports:
        message = "the WMS knows nothing of this run"
        return RunReport(run_id=record.run_id, state=JobState.READY, message=message)
    return replace(reports[0], run_id=record.run_id)


def service_and_record(ref: str, progress: bool = False) -> tuple[BaseWmsService, RunRecord]:
    """The plugin instance that owns the run named by ``ref``, and the run's record."""
    record = find_run(ref)
    return load_wms_service_class(record.wms_service_class)(progress=progress), record


def fetch_run_report(ref: str) -> tuple[RunRecord, RunReport]:
    """The record and full report (every job) of the run named by ``ref`` (id, prefix or directory)."""
    record = find_run(ref)
    return record, _report(record, {})


def fetch_recent_runs(
    limit: int = 20, *, operator: str | None = None, since: datetime.datetime | None = None
) -> list[RunSummary]:
    """The newest ``limit`` runs (of ``operator``, submitted ``since``) with their current states
    (a failing plugin only marks its row)."""
    cache: dict[str, BaseWmsService] = {}
    out = []
    for record in list_runs(limit, operator=operator, since=since):
        try:
            out.append(RunSummary(record, _report(record, cache)))
        except Exception as err:  # one broken run must not hide the others
            _LOG.debug("report for run %s failed", record.run_id, exc_info=True)
            out.append(RunSummary(record, None, f"{type(err).__name__}: {err}"))
    return out


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Plain-text table: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in pairs]
        return "  ".join(cells).rstrip()

    return "\n".join(line(r) for r in [header, *rows])


def format_run_report(record: RunRecord, report: RunReport, *, max_failed: int = 50) -> str:
    """The per-task state table of one run, its overall state and its failed jobs with their logs."""
    lines = [
        f"Run {record.run_id}: {report.state.value}",
        f"  payload {record.payload_name}, operator {record.operator}, submitted {record.submit_time}",
        f"  output {record.output} (run {record.output_run}) in {record.butler_config}",
        f"  submit directory {record.submit_dir}",
    ]
    if report.updated:
        lines.append(f"  state recorded {report.updated}")
    if report.message:
        lines.append(f"  note: {report.message}")
    counts = report.counts_by_label()
    states = list(STATE_ORDER)
    header = ["TASK", *[s.value for s in states], "TOTAL"]
    rows = []
    total: Counter[JobState] = Counter()
    for label, per_state in counts.items():
        total.update(per_state)
        rows.append([label, *[str(per_state.get(s, 0)) for s in states], str(sum(per_state.values()))])
    rows.append(["TOTAL", *[str(total.get(s, 0)) for s in states], str(sum(total.values()))])
    lines += ["", _table(header, rows)]
    failed = [job for job in report.jobs if job.state in (JobState.FAILED, JobState.HELD)]
    if failed:
        lines += ["", f"Failed jobs ({len(failed)}):"]
        for job in failed[:max_failed]:
            if job.exit_code is not None:
                why = f"exit code {job.exit_code}"
            else:
                why = job.message or "no exit code"
            log = f"; log {job.stderr}" if job.stderr is not None else ""
            tries = f"{job.attempts} attempt(s)"
            lines.append(f"  {job.name} [{job.label}] {job.state.value}: {why}; {tries}{log}")
        if len(failed) > max_failed:
            lines.append(f"  ... and {len(failed) - max_failed} more")
    return "\n".join(lines)


def format_run_list(summaries: list[RunSummary]) -> str:
    """One line per run: id, state, submit time, payload, output run, submit directory.

    Runs whose state could not be read show UNKNOWN, with the reason listed under the table.
    """
    if not summaries:
        return "No runs recorded (runs index empty)."
    header = ["RUN ID", "STATE", "SUBMITTED", "PAYLOAD", "OUTPUT RUN", "SUBMIT DIRECTORY"]
    rows = []
    notes = []
    for s in summaries:
        r = s.record
        state = s.report.state.value if s.report is not None else "UNKNOWN"
        if s.error:
            notes.append(f"  {r.run_id}: {s.error}")
        rows.append([r.run_id, state, r.submit_time, r.payload_name, r.output_run, r.submit_dir])
    text = _table(header, rows, left=len(header))
    return text + ("\n\nCould not read:\n" + "\n".join(notes) if notes else "")

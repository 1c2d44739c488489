"""ParslService: the WMS plugin that runs a workflow on Parsl's local executors.

``submit`` runs the whole workflow in the foreground and returns when the final job has
finished: on a laptop or a single node there is no scheduler to hand the work to, and the
operator sees the run end (Ctrl-C or ``bps cancel`` stops it).  The run id is the submit
directory's absolute path; everything ``report``, ``cancel`` and ``restart`` need is there.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from bps import RunNotFoundError, WmsError
from bps.config import BpsConfig
from bps.wms import (
    TERMINAL_STATES,
    BaseWmsService,
    JobReport,
    JobState,
    JobStatus,
    PingResult,
    RunReport,
    RunState,
    WmsWorkflow,
    read_state,
    read_versioned_json,
    write_state,
    write_versioned_json,
)
from bps.workflow import WORKFLOW_FILENAME, WorkflowGraph, read_workflow

from ._journal import JobRecord, apply_journal, read_journal, stop_orphans
from ._site import ParslSiteSettings, site_settings
from ._submit_dir import ParslLayout

_LOG = logging.getLogger(__name__)
WMS_NAME = "parsl"
_SITE_FORMAT = "skybatch.parsl.site"
_SITE_MAJOR = 1


@dataclass(slots=True)
class ParslWorkflow(WmsWorkflow):
    """A workflow with the validated site settings it will run with."""

    settings: ParslSiteSettings = field(default_factory=ParslSiteSettings)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ended(record: JobRecord | None, state: JobState) -> str | None:
    """When a finished job's last attempt ended, from its journal (None while it is unfinished)."""
    if record is None or state not in TERMINAL_STATES:
        return None
    return record.ended


class ParslService(BaseWmsService):
    """Runs each job's command through a Parsl app on local threads or a local HighThroughputExecutor."""

    runs_in_foreground = True

    # -- prepare / submit -------------------------------------------------------------------------
    def prepare(self, config: BpsConfig, workflow: WorkflowGraph, submit_dir: Path) -> ParslWorkflow:
        settings = site_settings(config.site)  # validate now: `bps prepare` must catch a bad site
        layout = ParslLayout(submit_dir.resolve())
        write_versioned_json(layout.site_file, _SITE_FORMAT, _SITE_MAJOR, 0, settings.to_json())
        run_id = str(layout.submit_dir)
        write_state(layout.state_file, self._fresh_state(run_id, workflow))
        return ParslWorkflow(workflow.name, layout.submit_dir, workflow, run_id, settings)

    def submit(self, wms_workflow: WmsWorkflow) -> str:
        if not isinstance(wms_workflow, ParslWorkflow):
            raise TypeError(f"ParslService cannot submit a {type(wms_workflow).__name__}")
        layout = ParslLayout(wms_workflow.submit_dir)
        run_id = wms_workflow.run_id or str(layout.submit_dir)
        state = self._fresh_state(run_id, wms_workflow.workflow)
        self._run(wms_workflow.workflow, layout, wms_workflow.settings, state)
        return run_id

    def restart(self, run_id: str) -> str:
        """Run again every job that did not succeed, then the final job; SUCCEEDED jobs are kept."""
        layout = self._layout(run_id)
        state = read_state(layout.state_file)
        self._refuse_if_running(state)
        # A killed bps leaves its jobs running in their own sessions: stop those orphans first (so
        # nothing runs twice at once), then take every completion they journaled as final.
        stopped = stop_orphans(read_journal(layout.events_file))
        if stopped:
            _LOG.warning("stopped %d orphaned job(s) before restarting: %s", len(stopped), ", ".join(stopped))
        apply_journal(state, read_journal(layout.events_file), for_report=False)
        write_state(layout.state_file, state)
        workflow = read_workflow(layout.submit_dir / WORKFLOW_FILENAME)
        settings = ParslSiteSettings.from_json(
            read_versioned_json(layout.site_file, _SITE_FORMAT, _SITE_MAJOR)
        )
        self._run(workflow, layout, settings, state)
        return run_id

    def _run(
        self, workflow: WorkflowGraph, layout: ParslLayout, settings: ParslSiteSettings, state: RunState
    ) -> RunState:
        from ._runner import WorkflowRunner  # imports parsl: only when something actually runs

        return WorkflowRunner(workflow, layout, settings, state, self.progress).run()

    @staticmethod
    def _fresh_state(run_id: str, workflow: WorkflowGraph) -> RunState:
        jobs = {job.name: JobStatus(job.label, JobState.READY) for job in workflow}
        return RunState(run_id=run_id, wms=WMS_NAME, jobs=jobs, state=JobState.READY)

    # -- report / cancel -------------------------------------------------------------------------
    @staticmethod
    def _layout(run_id: str) -> ParslLayout:
        layout = ParslLayout(Path(run_id))
        if not layout.state_file.exists():
            raise RunNotFoundError(f"no Parsl run state in {run_id} (expected {layout.state_file})")
        return layout

    @staticmethod
    def _refuse_if_running(state: RunState) -> None:
        if state.pid is not None and state.host == socket.gethostname() and _pid_alive(state.pid):
            raise WmsError(f"run {state.run_id} is still being executed by process {state.pid}")

    def ping(self) -> PingResult:
        """Parsl runs its executors in-process: usable when the parsl package imports."""
        try:
            import parsl
        except ImportError as err:
            return PingResult(False, f"the parsl package cannot be imported: {err}")
        return PingResult(True, f"parsl {parsl.__version__} imports; its executors start with each run")

    def report(self, run_id: str | None = None) -> list[RunReport]:
        """The run's recorded states; without a run id, nothing (local Parsl keeps no run list)."""
        if run_id is None:
            return []
        layout = self._layout(run_id)
        state = read_state(layout.state_file)
        journal = read_journal(layout.events_file)
        overall, message = state.state, state.message
        if state.state not in TERMINAL_STATES and state.pid is not None:
            if state.host == socket.gethostname() and not _pid_alive(state.pid):
                apply_journal(state, journal, for_report=True)
                overall = JobState.FAILED
                message = (
                    f"the process running this workflow (pid {state.pid}) is gone; "
                    "`bps restart` runs what is left"
                )
                orphans = sum(1 for s in state.jobs.values() if s.message.startswith("orphaned"))
                if orphans:
                    message += f" (after stopping {orphans} orphaned job(s) still running)"
        jobs = tuple(
            JobReport(
                name=name,
                label=status.label,
                state=status.state,
                attempts=status.attempts,
                finished=_ended(journal.get(name), status.state),
                exit_code=status.exit_code,
                stdout=layout.stdout(status.label, name),
                stderr=layout.stderr(status.label, name),
                message=status.message,
            )
            for name, status in state.jobs.items()
        )
        return [
            RunReport(
                run_id=state.run_id,
                state=overall,
                submit_dir=layout.submit_dir,
                jobs=jobs,
                updated=state.updated,
                message=message,
                extra={"host": state.host},
            )
        ]

    def cancel(self, run_id: str) -> None:
        """Ask the process running the workflow to stop (SIGTERM); it records DELETED jobs itself."""
        state = read_state(self._layout(run_id).state_file)
        if state.pid is None or state.state in TERMINAL_STATES:
            raise WmsError(f"run {run_id} is not running (state {state.state.value})")
        if state.host != socket.gethostname():
            raise WmsError(f"run {run_id} is executed on host {state.host}; cancel it from there")
        try:
            os.kill(state.pid, 15)
        except ProcessLookupError:
            raise WmsError(f"run {run_id}: its process {state.pid} is already gone") from None

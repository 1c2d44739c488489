"""HTCondorService: the WMS plugin that runs a bps workflow as one HTCondor DAGMan DAG.

``prepare`` renders the DAG into the submit directory (nothing runs); ``submit`` hands it to the
schedd through the Python bindings and returns as soon as DAGMan is queued.  The run id is the
submit directory's absolute path (what bps records as the plugin's run id); the DAGMan cluster id
of every submission is kept in ``htcondor_run.json``.  ``report`` reads DAGMan's node status
file, the nodes log and dagman.out (and asks the schedd whether DAGMan still runs); ``cancel``
removes the DAGMan job; ``restart`` resubmits the DAG, and DAGMan continues from its rescue DAG.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bps import RunNotFoundError, WmsError, list_runs
from bps.config import BpsConfig
from bps.wms import (
    BaseWmsService,
    JobState,
    PingResult,
    RunReport,
    WmsWorkflow,
    read_versioned_json,
    write_versioned_json,
)
from bps.workflow import WorkflowGraph

from ._bindings import STATUS_REMOVED, DagmanJob, ping_schedd, query_dagman, remove_dag, submit_dag
from ._render import RenderedDag, render_dag
from ._report import DagFacts, build_run_report
from ._runfile import HTCondorRun, Submission, read_run_file, write_run_file
from ._site import HTCondorSiteSettings, lsst_site, site_settings
from ._status import read_dag_nodes, read_dagman_out, read_node_status, read_nodes_logs, read_rescue_done
from ._submit_dir import HTCondorLayout

WMS_NAME = "htcondor"
_SITE_FORMAT = "skybatch.htcondor.site"
_SITE_MAJOR = 1
_LOG = logging.getLogger(__name__)


@dataclass(slots=True)
class HTCondorWorkflow(WmsWorkflow):
    """A rendered DAG, ready for :meth:`HTCondorService.submit`."""

    settings: HTCondorSiteSettings = field(default_factory=HTCondorSiteSettings)
    dag: RenderedDag | None = None


class HTCondorService(BaseWmsService):
    """Runs each job as a node of one DAGMan DAG on an HTCondor pool."""

    runs_in_foreground = False

    # -- prepare / submit -------------------------------------------------------------------------
    def prepare(self, config: BpsConfig, workflow: WorkflowGraph, submit_dir: Path) -> HTCondorWorkflow:
        # Validate now: `bps prepare` must catch a bad site.  LSST's keys become ours first.
        settings = site_settings(lsst_site(config.site, config.resolved))
        layout = HTCondorLayout(submit_dir.resolve(), workflow.name)
        write_versioned_json(layout.site_file, _SITE_FORMAT, _SITE_MAJOR, 0, settings.to_json())
        rendered = render_dag(workflow, layout, settings)
        write_run_file(layout.run_file, HTCondorRun(workflow.name))
        _LOG.info("rendered %s: %d nodes, %d bytes", rendered.dag_file, rendered.nodes, rendered.size)
        return HTCondorWorkflow(
            workflow.name, layout.submit_dir, workflow, str(layout.submit_dir), settings, rendered
        )

    def submit(self, wms_workflow: WmsWorkflow) -> str:
        if not isinstance(wms_workflow, HTCondorWorkflow):
            raise TypeError(f"HTCondorService cannot submit a {type(wms_workflow).__name__}")
        layout = HTCondorLayout(wms_workflow.submit_dir, wms_workflow.name)
        run = read_run_file(layout.run_file)
        if run.submissions:
            raise WmsError(f"{layout.dag_file} was already submitted; use `bps restart` to run it again")
        settings = wms_workflow.settings
        cluster = submit_dag(
            layout.dag_file,
            batch_name=settings.batch_name or wms_workflow.name,
            schedd_name=settings.schedd,
            restart=False,
        )
        submission = Submission(cluster, "submit", schedd=settings.schedd)
        write_run_file(layout.run_file, run.with_submission(submission))
        _LOG.info("submitted DAG %s as DAGMan job %d", layout.dag_file, cluster)
        return wms_workflow.run_id or str(layout.submit_dir)

    def ping(self) -> PingResult:
        """Whether the local schedd (where ``bps submit`` queues DAGMan) answers a query."""
        try:
            ping_schedd("")
        except WmsError as err:
            return PingResult(False, str(err))
        return PingResult(True, "the local schedd answers")

    # -- finding a run ------------------------------------------------------------------------------
    @staticmethod
    def _load(run_id: str) -> tuple[HTCondorLayout, HTCondorRun, HTCondorSiteSettings]:
        submit_dir = Path(run_id).expanduser()
        run_file = submit_dir / "htcondor_run.json"
        if not run_file.exists():
            raise RunNotFoundError(f"no HTCondor run in {run_id} (expected {run_file})")
        run = read_run_file(run_file)
        layout = HTCondorLayout(submit_dir.resolve(), run.name)
        saved = read_versioned_json(layout.site_file, _SITE_FORMAT, _SITE_MAJOR)
        settings = HTCondorSiteSettings.from_json(saved)
        return layout, run, settings

    @staticmethod
    def _ask_schedd(run: HTCondorRun, settings: HTCondorSiteSettings) -> tuple[DagmanJob | None, str]:
        last = run.last
        if last is None:
            return None, ""
        try:
            return query_dagman(last.cluster, last.schedd or settings.schedd), ""
        except WmsError as err:
            _LOG.debug("schedd query failed", exc_info=True)
            return None, str(err)

    def _facts(self, run_id: str) -> tuple[DagFacts, HTCondorSiteSettings]:
        layout, run, settings = self._load(run_id)
        schedd, schedd_error = self._ask_schedd(run, settings)
        rescues = layout.rescue_dags()
        facts = DagFacts(
            layout=layout,
            run=run,
            nodes=read_dag_nodes(layout.dag_file),
            status=read_node_status(layout.node_status),
            jobs=read_nodes_logs(layout.nodes_logs()),
            dagman=read_dagman_out(layout.dagman_out),
            schedd=schedd,
            schedd_error=schedd_error,
            rescue_done=read_rescue_done(rescues[-1]) if rescues else None,
        )
        return facts, settings

    # -- report / cancel / restart ---------------------------------------------------------------
    def report(self, run_id: str | None = None) -> list[RunReport]:
        """One run with every node; without a run id, the recorded HTCondor runs (states only)."""
        if run_id is not None:
            facts, _ = self._facts(run_id)
            return [build_run_report(run_id, facts)]
        out = []
        for record in list_runs():
            if record.wms_service_class not in (WMS_NAME, f"{__package__}.HTCondorService"):
                continue
            try:
                facts, _ = self._facts(record.wms_run_id or record.submit_dir)
            except (RunNotFoundError, OSError, ValueError) as err:
                _LOG.warning("skipping run %s: %s", record.run_id, err)
                continue
            out.append(build_run_report(record.run_id, facts, with_jobs=False))
        return out

    def cancel(self, run_id: str) -> None:
        """Remove the DAGMan job; DAGMan removes its node jobs, which report then shows as DELETED."""
        layout, run, settings = self._load(run_id)
        last = run.last
        if last is None:
            raise WmsError(f"run {run_id} was prepared but never submitted")
        job = query_dagman(last.cluster, last.schedd or settings.schedd)
        if not job.in_queue or job.status == STATUS_REMOVED:
            raise WmsError(f"run {run_id} is not running (DAGMan job {last.cluster} is {job.status_name})")
        remove_dag(last.cluster, last.schedd or settings.schedd, "cancelled with bps cancel")
        write_run_file(layout.run_file, run.with_last_cancelled())

    def restart(self, run_id: str) -> str:
        """Resubmit the DAG; DAGMan reads the newest rescue DAG, so succeeded jobs do not run again."""
        layout, run, settings = self._load(run_id)
        last = run.last
        if last is None:
            raise WmsError(f"run {run_id} was never submitted; nothing to restart")
        job = query_dagman(last.cluster, last.schedd or settings.schedd)
        if job.in_queue and job.status != STATUS_REMOVED:
            raise WmsError(f"run {run_id} is still running (DAGMan job {last.cluster} is {job.status_name})")
        facts, _ = self._facts(run_id)
        if build_run_report(run_id, facts, with_jobs=False).state is JobState.SUCCEEDED:
            raise WmsError(f"run {run_id} succeeded; there is nothing to restart")
        if not layout.rescue_dags():
            raise WmsError(
                f"run {run_id}: DAGMan wrote no rescue DAG ({layout.dag_file}.rescueNNN), so a restart "
                "would rerun every job; check dagman.out"
            )
        if layout.nodes_log.exists():  # DAGMan truncates it on start; keep the earlier attempts' events
            shutil.copyfile(layout.nodes_log, layout.archived_nodes_log(last.cluster))
        cluster = submit_dag(
            layout.dag_file,
            batch_name=settings.batch_name or run.name,
            schedd_name=last.schedd or settings.schedd,
            restart=True,
        )
        submission = Submission(cluster, "restart", schedd=last.schedd)
        write_run_file(layout.run_file, run.with_submission(submission))
        rescue = layout.rescue_dags()[-1]
        _LOG.info("restarted DAG %s as DAGMan job %d from %s", layout.dag_file, cluster, rescue)
        return run_id

"""Turning DAGMan's files (and, when reachable, the schedd's word on the DAGMan job) into a RunReport.

A pure function of its inputs, so the golden tests feed it recorded files.  Node state mapping:

==================  ===========================================================================
DAGMan node status  bps JobState
==================  ===========================================================================
NOT_READY           UNREADY (waiting for parents)
READY               READY; PENDING if it already failed once (waiting to be retried)
PRERUN              PENDING
SUBMITTED           HELD if its job is held, RUNNING if its job is executing, else PENDING
POSTRUN             RUNNING
DONE                SUCCEEDED
ERROR               FAILED; DELETED if the operator cancelled the run and the job was removed
FUTILE              PRUNED (an ancestor failed)
==================  ===========================================================================

After a cancel, nodes whose job was removed, nodes that never ran (FUTILE, or the FINAL node,
which the DAG does not run when it is removed) are DELETED.  When DAGMan is gone (cancelled, or
exited) every node that had not finished becomes DELETED (cancelled) or FAILED (DAGMan died:
`bps restart` continues from the rescue DAG).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from bps.wms import TERMINAL_STATES, JobReport, JobState, RunReport, summarize_states

from ._bindings import STATUS_REMOVED, DagmanJob
from ._runfile import HTCondorRun
from ._status import DagmanRun, DagStatusFile, NodeJobs, NodeState, NodeStatus
from ._submit_dir import HTCondorLayout


@dataclass(frozen=True, slots=True)
class DagFacts:
    """Everything known about one run, gathered by the service (or loaded from golden files)."""

    layout: HTCondorLayout
    run: HTCondorRun
    nodes: dict[str, str]
    """Node name -> label, in DAG order."""
    status: DagStatusFile | None
    jobs: dict[str, NodeJobs]
    dagman: DagmanRun | None
    schedd: DagmanJob | None = None
    """None when the schedd could not be asked (then the files decide)."""
    schedd_error: str = ""
    rescue_done: frozenset[str] | None = None
    """Nodes the newest rescue DAG marks DONE (None: no rescue DAG)."""


def _dagman_gone(facts: DagFacts) -> bool:
    """True when no DAGMan process will update the nodes any more."""
    if facts.schedd is not None and facts.schedd.status is not None:
        return not facts.schedd.in_queue or facts.schedd.status == STATUS_REMOVED
    dagman = facts.dagman
    last = facts.run.last
    if dagman is None or last is None or dagman.cluster != last.cluster:
        return False  # this submission's DAGMan has not started logging yet
    return dagman.exited


def _cancelled(facts: DagFacts) -> bool:
    last = facts.run.last
    if last is not None and last.cancelled:
        return True
    return facts.schedd is not None and facts.schedd.status == STATUS_REMOVED


def _node_state(node: NodeState | None, job: NodeJobs | None, submitted: bool) -> JobState:
    if node is None:
        return JobState.UNREADY if submitted else JobState.READY
    status = node.status
    if status is NodeStatus.NOT_READY:
        return JobState.UNREADY
    if status is NodeStatus.READY:
        return JobState.PENDING if node.retries > 0 else JobState.READY
    if status is NodeStatus.PRERUN:
        return JobState.PENDING
    if status is NodeStatus.SUBMITTED:
        if node.held > 0 or (job is not None and job.hold_code is not None and not job.running):
            return JobState.HELD
        if job is not None and job.running:
            return JobState.RUNNING
        return JobState.PENDING
    if status is NodeStatus.POSTRUN:
        return JobState.RUNNING
    if status is NodeStatus.DONE:
        return JobState.SUCCEEDED
    if status is NodeStatus.FUTILE:
        return JobState.PRUNED
    return JobState.FAILED


def _message(state: JobState, node: NodeState | None, job: NodeJobs | None) -> str:
    if state is JobState.PRUNED:
        return "an ancestor job did not succeed"
    if job is not None and job.hold_reason and state in (JobState.HELD, JobState.FAILED, JobState.PENDING):
        prefix = "held" if state is JobState.HELD else "last attempt held and removed"
        return f"{prefix}: {job.hold_reason}"
    if state is JobState.FAILED and job is not None and job.exit_code is None and node is not None:
        return node.details
    return ""


def _epoch(iso: str) -> float | None:
    try:
        return datetime.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _current_nodes(facts: DagFacts) -> dict[str, NodeState]:
    """The node status file's nodes, minus what an earlier submission wrote about unfinished nodes.

    Right after ``bps restart`` the file is still the previous DAGMan's: its failed and pruned
    nodes (and the FINAL node, whatever it did) are about to run again, so until the new DAGMan
    rewrites the file only the nodes the rescue DAG marks DONE keep their state.
    """
    status = facts.status
    if status is None:
        return {}
    last = facts.run.last
    submitted_at = _epoch(last.time) if last is not None else None
    if status.timestamp is None or submitted_at is None or status.timestamp >= int(submitted_at):
        return status.nodes
    done = facts.rescue_done
    return {
        name: node
        for name, node in status.nodes.items()
        if node.status is NodeStatus.DONE and (done is None or name in done)
    }


def build_run_report(run_id: str, facts: DagFacts, *, with_jobs: bool = True) -> RunReport:
    """The run's state and (``with_jobs``) every node's, from ``facts``."""
    layout = facts.layout
    submitted = facts.run.last is not None
    nodes_status = _current_nodes(facts)
    gone = submitted and _dagman_gone(facts)
    cancelled = _cancelled(facts)
    reports = []
    for name, label in facts.nodes.items():
        node = nodes_status.get(name)
        job = facts.jobs.get(name)
        state = _node_state(node, job, submitted)
        message = _message(state, node, job)
        removed = job is None or (job.aborted and job.exit_code is None)
        if cancelled and (state is JobState.PRUNED or (state is JobState.FAILED and removed)):
            state, message = JobState.DELETED, "cancelled by the operator"
        if gone and state not in TERMINAL_STATES:
            if cancelled:
                state, message = JobState.DELETED, "cancelled by the operator"
            else:
                state, message = JobState.FAILED, "DAGMan exited before this job finished"
        cluster = job.last_cluster if job is not None else None
        reports.append(
            JobReport(
                name=name,
                label=label,
                state=state,
                attempts=job.starts if job is not None else 0,
                exit_code=job.exit_code if job is not None else None,
                stdout=layout.stdout(label, name, cluster) if cluster is not None else None,
                stderr=layout.stderr(label, name, cluster) if cluster is not None else None,
                message=message,
            )
        )
    overall = summarize_states(job.state for job in reports)
    if not submitted:
        overall = JobState.READY
    elif overall is JobState.READY and not gone:
        overall = JobState.PENDING  # DAGMan is queued but has not submitted a job yet
    elif overall in TERMINAL_STATES and not gone:
        # DAGMan is still in the queue: the run is not over, whatever the node status file says
        # (right after a restart it still describes the previous submission's failed nodes).
        overall = JobState.RUNNING
    return RunReport(
        run_id=run_id,
        state=overall,
        submit_dir=layout.submit_dir,
        jobs=tuple(reports) if with_jobs else (),
        updated=_updated(facts),
        message=_run_message(facts, gone, cancelled),
        extra=_extra(facts),
    )


def _updated(facts: DagFacts) -> str | None:
    if facts.status is None or facts.status.timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(facts.status.timestamp, datetime.UTC).isoformat(timespec="seconds")


def _run_message(facts: DagFacts, gone: bool, cancelled: bool) -> str:
    last = facts.run.last
    if last is None:
        return "prepared, not submitted"
    parts = []
    if cancelled:
        parts.append(f"cancelled: DAGMan job {last.cluster} was removed")
    elif gone:
        dagman = facts.dagman
        status = dagman.exit_status if dagman is not None else None
        if status not in (0, None) and dagman is not None and dagman.first_error:
            parts.append(f"DAGMan job {last.cluster} exited with status {status}: {dagman.first_error}")
    if facts.schedd_error:
        parts.append(f"schedd not reachable, state from the DAG's files ({facts.schedd_error})")
    return "; ".join(parts)


def _extra(facts: DagFacts) -> dict[str, str]:
    out = {"dag": str(facts.layout.dag_file)}
    last = facts.run.last
    if last is not None:
        out["dagman_cluster"] = str(last.cluster)
        out["submissions"] = str(len(facts.run.submissions))
    if facts.schedd is not None and facts.schedd.status is not None:
        out["dagman_status"] = facts.schedd.status_name
    rescues = facts.layout.rescue_dags()
    if rescues:
        out["rescue_dag"] = rescues[-1].name
    return out

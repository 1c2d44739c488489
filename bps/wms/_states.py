"""Job states every WMS plugin reports in, whatever its engine calls them."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class JobState(StrEnum):
    """The state of one job (and, summarised, of a whole run)."""

    UNREADY = "UNREADY"
    """Waiting for parent jobs to finish."""
    READY = "READY"
    """Every parent succeeded (or there are none); not yet handed to the engine."""
    PENDING = "PENDING"
    """Handed to the engine, waiting for a worker or slot (also: waiting to be retried)."""
    RUNNING = "RUNNING"
    """Executing now."""
    HELD = "HELD"
    """Stopped by the engine (e.g. an HTCondor hold) until an operator releases or removes it."""
    SUCCEEDED = "SUCCEEDED"
    """Finished with exit code 0."""
    FAILED = "FAILED"
    """Finished unsuccessfully and has no retries left."""
    PRUNED = "PRUNED"
    """Will never run because an ancestor failed (or, for the final job, a policy said so)."""
    DELETED = "DELETED"
    """Cancelled by the operator before it finished."""


#: States a job never leaves (``bps restart`` aside, which starts a new attempt of the run).
TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.PRUNED, JobState.DELETED})

#: Column order for reports: roughly the order a job moves through them.
STATE_ORDER = tuple(JobState)


def summarize_states(states: Iterable[JobState]) -> JobState:
    """One state for a whole run from its jobs' states.

    Any unfinished job makes the run RUNNING (HELD if a job is held and none runs); a finished
    run is DELETED if anything was cancelled, FAILED if anything failed or was pruned, else
    SUCCEEDED.  An empty run is READY (prepared, never started).
    """
    seen = set(states)
    if not seen:
        return JobState.READY
    unfinished = seen - TERMINAL_STATES
    if unfinished:
        if JobState.HELD in unfinished and JobState.RUNNING not in unfinished:
            return JobState.HELD
        if unfinished <= {JobState.READY, JobState.UNREADY}:
            return JobState.READY
        return JobState.RUNNING
    if JobState.DELETED in seen:
        return JobState.DELETED
    if seen & {JobState.FAILED, JobState.PRUNED}:
        return JobState.FAILED
    return JobState.SUCCEEDED

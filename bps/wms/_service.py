"""The WMS plugin interface: a few methods that take and return dataclasses.

A plugin renders an engine-neutral :class:`~bps.workflow.WorkflowGraph` for one workflow engine,
submits it, and later reports on, cancels or restarts the run from what it left in the submit
directory.  bps core only ever talks to this ABC, never to a named plugin.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ._states import JobState

if TYPE_CHECKING:
    from ..config._model import BpsConfig
    from ..workflow._graph import WorkflowGraph


@dataclass(slots=True)
class WmsWorkflow:
    """A workflow rendered for one engine, ready for :meth:`BaseWmsService.submit`.

    Plugins subclass it to carry what their ``submit`` needs.  ``run_id`` is filled by plugins
    that know the id before submitting (so bps can record and print it before a foreground run
    starts); others leave it None and return the id from ``submit``.
    """

    name: str
    submit_dir: Path
    workflow: WorkflowGraph
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class JobReport:
    """The state of one job, as the plugin last recorded or queried it."""

    name: str
    label: str
    state: JobState
    attempts: int = 0
    finished: str | None = None
    """ISO time its last attempt ended, if the engine recorded it (the dashboard plots these)."""
    exit_code: int | None = None
    stdout: Path | None = None
    stderr: Path | None = None
    quantum_ids: tuple[str, ...] = ()
    message: str = ""
    """Why it failed, when there is no exit code (lost worker, missing executable, ...)."""
    memory_used: int | None = None
    """Peak memory (MB) of the last attempt that ended, as the engine measured it; None: unknown."""
    memory_requested: int | None = None
    """Memory (MB) the last attempt was given, if the engine says (else the workflow's request counts)."""


@dataclass(frozen=True, slots=True)
class RunReport:
    """The state of one run and, when asked for a single run, of each of its jobs."""

    run_id: str
    state: JobState
    submit_dir: Path | None = None
    jobs: tuple[JobReport, ...] = ()
    updated: str | None = None
    """ISO time the plugin last recorded a change."""
    message: str = ""
    """Anything the operator should know about the run as a whole."""
    extra: dict[str, str] = field(default_factory=dict)

    def counts_by_label(self) -> dict[str, Counter[JobState]]:
        """Task label -> number of jobs in each state, labels in first-seen (workflow) order."""
        out: dict[str, Counter[JobState]] = {}
        for job in self.jobs:
            out.setdefault(job.label, Counter())[job.state] += 1
        return out


@dataclass(frozen=True, slots=True)
class PingResult:
    """Whether the engine's services a submit, report, cancel and restart need answer (``bps ping``)."""

    ok: bool
    message: str = ""


class BaseWmsService(ABC):
    """Base class of WMS plugins, found by name through the ``skybatch.wms`` entry-point group."""

    #: True if :meth:`submit` runs the workflow to completion before returning.
    runs_in_foreground: ClassVar[bool] = False

    def __init__(self, *, progress: bool = False) -> None:
        self.progress = progress
        """Whether long operations (a foreground run) may draw a progress bar on stderr."""

    @abstractmethod
    def prepare(self, config: BpsConfig, workflow: WorkflowGraph, submit_dir: Path) -> WmsWorkflow:
        """Render ``workflow`` for the engine into ``submit_dir`` (which exists); no jobs start."""

    @abstractmethod
    def submit(self, wms_workflow: WmsWorkflow) -> str:
        """Start the run (or, if :attr:`runs_in_foreground`, run it); return the run id."""

    @abstractmethod
    def report(self, run_id: str | None = None) -> list[RunReport]:
        """The given run with its jobs, or (``None``) a summary of every run the engine knows."""

    @abstractmethod
    def cancel(self, run_id: str) -> None:
        """Stop the run: unfinished jobs become DELETED."""

    @abstractmethod
    def restart(self, run_id: str) -> str:
        """Run again every job that did not succeed (and the final job); return the run id."""

    def ping(self) -> PingResult:
        """Check that the engine is reachable and usable, without submitting anything.

        The default has nothing to reach; plugins for engines with services override it.
        """
        return PingResult(True, f"{type(self).__name__}: nothing to contact")

"""Running a WorkflowGraph on Parsl executors in this process, recording job states as they change.

One thread (the caller's) owns the state: Parsl's callbacks and retry handler only put messages
on a queue, and worker ``start`` events arrive through an append-only file (they may come from
other processes with the HighThroughputExecutor).  The loop folds both into the state and
rewrites the state file at most once a second, and once more at the end.

Dependencies are Parsl futures: a job is handed to Parsl with its parents' futures as
``inputs``, so Parsl starts it when they succeed and fails it with a DependencyError (our
PRUNED) when one does not.  The final job is not given futures: it is submitted once every
other job has finished, whatever their states.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from bps import WmsError
from bps.config import FinalJobWhen
from bps.wms import TERMINAL_STATES, JobState, RunState, summarize_states, write_state
from bps.workflow import GenericJob, WorkflowGraph
from butler.progress import progress_bar

from ._execute import CANCELLED, JobCancelledError, JobExitError, JobSpec, run_job, terminate_running
from ._site import ParslSiteSettings
from ._submit_dir import ParslLayout

_LOG = logging.getLogger(__name__)
EXECUTOR_LABEL = "skybatch"
_POLL_SECONDS = 0.25


class _Cancelled(Exception):
    """Raised inside the runner loop when the operator cancels (SIGTERM, Ctrl-C)."""


def _parsl_config(
    settings: ParslSiteSettings, layout: ParslLayout, max_retries: int, retry_handler: Any
) -> Any:
    from parsl.config import Config

    if settings.executor == "htex":
        import sys

        from parsl.executors import HighThroughputExecutor

        worker_init = settings.worker_init or f'export PATH="{os.path.dirname(sys.executable)}:$PATH"'
        executor: Any = HighThroughputExecutor(
            label=EXECUTOR_LABEL,
            address=settings.address or None,
            max_workers_per_node=settings.max_workers,
            provider=_provider(settings, worker_init),
            worker_logdir_root=str(layout.parsl_dir),
        )
    else:
        from parsl.executors import ThreadPoolExecutor

        executor = ThreadPoolExecutor(label=EXECUTOR_LABEL, max_threads=settings.max_threads)
    return Config(
        executors=[executor],
        run_dir=str(layout.parsl_dir),
        retries=max_retries,
        retry_handler=retry_handler,
        usage_tracking=0,
        exit_mode="skip",  # we call cleanup ourselves, after recording the final states
        # Parsl starts htex's initial block at the first strategy pass; its 5 s default period
        # would make every local run wait 5 s before the first job.
        strategy_period=1,
    )


def _provider(settings: ParslSiteSettings, worker_init: str) -> Any:
    """Where htex's workers come from: this machine, or SLURM jobs (``provider: slurm``)."""
    slurm = settings.slurm
    if slurm is None:
        from parsl.providers import LocalProvider

        # parsl leaves LocalProvider.__init__ unannotated (SlurmProvider's is annotated).
        return LocalProvider(  # type: ignore[no-untyped-call]
            init_blocks=1, min_blocks=1, max_blocks=1, worker_init=worker_init
        )
    from parsl.launchers import SingleNodeLauncher, SrunLauncher
    from parsl.providers import SlurmProvider

    return SlurmProvider(
        partition=slurm.partition,
        account=slurm.account or None,
        qos=slurm.qos or None,
        nodes_per_block=slurm.nodes,
        init_blocks=1,
        min_blocks=0,
        max_blocks=slurm.max_blocks,
        walltime=slurm.walltime,
        scheduler_options=slurm.scheduler_options,
        exclusive=slurm.exclusive,
        worker_init=worker_init,
        launcher=SrunLauncher() if slurm.nodes > 1 else SingleNodeLauncher(),  # one worker pool per node
    )


class WorkflowRunner:
    """Runs one workflow to completion (or cancellation) and returns its final :class:`RunState`."""

    def __init__(
        self,
        workflow: WorkflowGraph,
        layout: ParslLayout,
        settings: ParslSiteSettings,
        state: RunState,
        progress: bool,
        write_interval: float = 1.0,
    ) -> None:
        self._workflow = workflow
        self._layout = layout
        self._settings = settings
        self._state = state
        self._progress = progress
        self._write_interval = write_interval
        self._messages: queue.SimpleQueue[tuple[str, str, BaseException | None]] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._cancelling = False
        self._starts: dict[str, int] = {}
        self._ended: dict[str, int] = {}
        self._remaining_parents: dict[str, int] = {}
        self._unfinished = 0
        self._events_offset = 0
        self._dirty = True
        self._last_write = 0.0
        self._max_retries = max((job.number_of_retries for job in workflow), default=0)
        self._advance: Callable[[int], None] | None = None

    # -- public ----------------------------------------------------------------------------------
    def request_cancel(self) -> None:
        self._cancel.set()

    def run(self) -> RunState:
        from parsl.dataflow.dflow import DataFlowKernel

        CANCELLED.clear()
        self._layout.events_file.touch()
        self._events_offset = self._layout.events_file.stat().st_size
        state = self._state
        state.pid, state.host, state.message = os.getpid(), socket.gethostname(), ""
        state.state = JobState.RUNNING
        order = self._workflow.topological_order()
        body = [job for job in order if not job.is_final]
        final = self._workflow.final_job
        self._initial_states(body, final)
        self._write(force=True)
        done_already = sum(1 for s in state.jobs.values() if s.state is JobState.SUCCEEDED)
        with (
            progress_bar(len(order), f"{self._workflow.name}: jobs finished", self._progress) as advance,
            self._signals(),
            self._quiet_parsl(),
        ):
            self._advance = advance
            if done_already:
                advance(done_already)
            try:
                dfk = DataFlowKernel(
                    _parsl_config(self._settings, self._layout, self._max_retries, self._retry_cost)
                )
            except Exception as err:
                raise WmsError(f"cannot start Parsl executors: {type(err).__name__}: {err}") from err
            try:
                self._submit_body(dfk, body)
                self._wait_until(lambda: self._unfinished == 0)
                if final is not None:
                    self._run_final(dfk, final)
            except (_Cancelled, KeyboardInterrupt):
                self._stop_everything()
            finally:
                self._shutdown(dfk)
        self._pump(0)
        if self._cancelling:
            self._mark_unfinished(JobState.DELETED, "cancelled by the operator")
        states = [s.state for s in state.jobs.values()]
        state.state = JobState.DELETED if self._cancelling else summarize_states(states)
        state.pid = None
        self._write(force=True)
        return state

    # -- setup -----------------------------------------------------------------------------------
    def _initial_states(self, body: list[GenericJob], final: GenericJob | None) -> None:
        jobs = self._state.jobs
        for job in body:
            status = jobs[job.name]
            if status.state is JobState.SUCCEEDED:
                continue
            status.exit_code, status.message = None, ""
            parents = [p for p in self._workflow.parents(job.name) if jobs[p].state is not JobState.SUCCEEDED]
            self._remaining_parents[job.name] = len(parents)
            status.state = JobState.UNREADY if parents else JobState.PENDING
            self._unfinished += 1
        if final is not None:
            status = jobs[final.name]
            status.state, status.exit_code, status.message = JobState.UNREADY, None, ""

    def _spec(self, job: GenericJob) -> JobSpec:
        return JobSpec(
            name=job.name,
            argv=tuple(job.command),
            cwd=str(self._layout.submit_dir),
            stdout=str(self._layout.stdout(job.label, job.name)),
            stderr=str(self._layout.stderr(job.label, job.name)),
            events=str(self._layout.events_file),
            number_of_retries=job.number_of_retries,
            retry_unless_exit=job.retry_unless_exit,
            environment=job.environment,
        )

    def _submit_body(self, dfk: Any, body: list[GenericJob]) -> None:
        from parsl import python_app

        app = python_app(run_job, data_flow_kernel=dfk, executors=[EXECUTOR_LABEL])
        futures: dict[str, concurrent.futures.Future[Any]] = {}
        for i, job in enumerate(body):
            if self._state.jobs[job.name].state is JobState.SUCCEEDED:
                done: concurrent.futures.Future[Any] = concurrent.futures.Future()
                done.set_result(0)
                futures[job.name] = done
                continue
            inputs = [futures[p] for p in self._workflow.parents(job.name)]
            future = app(job=self._spec(job), inputs=inputs)
            future.add_done_callback(partial(self._on_done, job.name))
            futures[job.name] = future
            if i % 500 == 499:
                self._pump(0)

    def _run_final(self, dfk: Any, final: GenericJob) -> None:
        status = self._state.jobs[final.name]
        all_succeeded = all(
            s.state is JobState.SUCCEEDED for name, s in self._state.jobs.items() if name != final.name
        )
        if self._workflow.final_job_when is FinalJobWhen.SUCCESS and not all_succeeded:
            status.state = JobState.PRUNED
            status.message = "finalJob.whenRun is SUCCESS and not every job succeeded"
            self._finished()
            return
        from parsl import python_app

        app = python_app(run_job, data_flow_kernel=dfk, executors=[EXECUTOR_LABEL])
        status.state = JobState.PENDING
        self._unfinished += 1
        self._dirty = True
        future = app(job=self._spec(final), inputs=[])
        future.add_done_callback(partial(self._on_done, final.name))
        self._wait_until(lambda: self._state.jobs[final.name].state in TERMINAL_STATES)

    # -- callbacks (Parsl threads: only enqueue) ----------------------------------------------------
    def _on_done(self, name: str, future: concurrent.futures.Future[Any]) -> None:
        try:
            exc = future.exception()
        except concurrent.futures.CancelledError as err:
            exc = err
        self._messages.put(("done", name, exc))

    def _retry_cost(self, exc: BaseException, task_record: Any) -> float:
        """Parsl's retry hook: retry a job while it has attempts left (per job, not per run)."""
        from parsl.dataflow.errors import DependencyError

        spec = task_record["kwargs"].get("job")
        give_up = float(self._max_retries + 1)
        if not isinstance(spec, JobSpec) or isinstance(exc, DependencyError | JobCancelledError):
            return give_up
        if CANCELLED.is_set() or task_record["fail_count"] > spec.number_of_retries:
            return give_up
        if isinstance(exc, JobExitError) and exc.exit_code in spec.retry_unless_exit:
            return give_up
        self._messages.put(("retry", spec.name, exc))
        return 1.0

    # -- the loop --------------------------------------------------------------------------------
    def _wait_until(self, finished: Any) -> None:
        while not finished():
            if self._cancel.is_set():
                raise _Cancelled()
            self._pump(_POLL_SECONDS)

    def _pump(self, timeout: float) -> None:
        """Fold worker events and queued messages into the state; write it if due."""
        self._read_events()
        try:
            message = self._messages.get(timeout=timeout) if timeout else self._messages.get_nowait()
        except queue.Empty:
            message = None
        while message is not None:
            self._apply(*message)
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                message = None
        self._write()

    def _read_events(self) -> None:
        try:
            with self._layout.events_file.open("rb") as stream:
                stream.seek(self._events_offset)
                data = stream.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self._events_offset += end + 1
        for line in data[:end].splitlines():
            try:
                event = json.loads(line)
                name = event["job"]
            except (ValueError, KeyError, TypeError):
                _LOG.warning("ignoring malformed line in %s: %r", self._layout.events_file, line[:200])
                continue
            if name in self._state.jobs and event.get("event") == "start":
                self._starts[name] = self._starts.get(name, 0) + 1
                self._state.jobs[name].attempts += 1
                self._refresh_running(name)

    def _refresh_running(self, name: str) -> None:
        status = self._state.jobs[name]
        if status.state in TERMINAL_STATES or status.state is JobState.UNREADY:
            return
        running = self._starts.get(name, 0) > self._ended.get(name, 0)
        new = JobState.RUNNING if running else JobState.PENDING
        if new is not status.state:
            status.state = new
            self._dirty = True

    def _apply(self, kind: str, name: str, exc: BaseException | None) -> None:
        status = self._state.jobs[name]
        if status.state in TERMINAL_STATES:
            return
        self._dirty = True
        if kind == "retry":
            self._ended[name] = self._ended.get(name, 0) + 1
            status.exit_code = exc.exit_code if isinstance(exc, JobExitError) else None
            status.message = f"attempt failed ({_describe(exc)}); retrying"
            self._refresh_running(name)
            return
        self._ended[name] = self._ended.get(name, 0) + 1
        from parsl.dataflow.errors import DependencyError

        if exc is None:
            status.state, status.exit_code, status.message = JobState.SUCCEEDED, 0, ""
            for child in self._workflow.children(name):
                left = self._remaining_parents.get(child, 0) - 1
                self._remaining_parents[child] = left
                if left == 0 and self._state.jobs[child].state is JobState.UNREADY:
                    self._state.jobs[child].state = JobState.PENDING
                    self._refresh_running(child)  # its start event may have been read already
        elif self._cancelling or isinstance(exc, JobCancelledError):
            status.state, status.message = JobState.DELETED, "cancelled by the operator"
        elif isinstance(exc, DependencyError):
            status.state, status.message = JobState.PRUNED, "a parent job did not succeed"
        elif isinstance(exc, JobExitError):
            status.state, status.exit_code, status.message = JobState.FAILED, exc.exit_code, ""
        else:
            status.state, status.exit_code, status.message = JobState.FAILED, None, _describe(exc)
        self._finished()

    def _finished(self) -> None:
        self._unfinished -= 1
        self._dirty = True
        if self._advance is not None:
            self._advance(1)

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or (self._dirty and now - self._last_write >= self._write_interval):
            write_state(self._layout.state_file, self._state)
            self._dirty = False
            self._last_write = now

    # -- stopping --------------------------------------------------------------------------------
    def _stop_everything(self) -> None:
        _LOG.warning("cancelling: stopping running jobs; unfinished jobs become DELETED")
        self._cancelling = True
        CANCELLED.set()
        terminate_running()

    def _mark_unfinished(self, state: JobState, message: str) -> None:
        for status in self._state.jobs.values():
            if status.state not in TERMINAL_STATES:
                status.state, status.message = state, message
        self._dirty = True

    def _shutdown(self, dfk: Any) -> None:
        parsl_handlers = list(logging.getLogger("parsl").handlers)
        try:
            dfk.cleanup()
        except Exception:  # cleanup problems must not hide the run's result
            _LOG.warning("Parsl cleanup failed", exc_info=True)
        # Parsl detaches its parsl.log handler without closing the file; close it, or every run
        # leaks an open file (a ResourceWarning, an error in our tests).
        remaining = logging.getLogger("parsl").handlers
        for handler in parsl_handlers:
            if handler not in remaining:
                handler.close()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM (``bps cancel``) asks the loop to cancel; only possible in the main thread."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: self._cancel.set())
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    @contextlib.contextmanager
    def _quiet_parsl(self) -> Iterator[None]:
        """Keep Parsl's chatter in its own log file (under the submit dir), off the operator's console."""
        parsl_logger = logging.getLogger("parsl")
        previous = parsl_logger.propagate
        parsl_logger.propagate = False
        try:
            yield
        finally:
            parsl_logger.propagate = previous


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, JobExitError):
        return f"exit code {exc.exit_code}"
    return f"{type(exc).__name__}: {exc}"

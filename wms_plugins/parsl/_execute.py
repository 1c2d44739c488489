"""What runs inside a Parsl worker for each job: one command line as a subprocess.

This module is imported by workers (threads in the submitting process, or HighThroughputExecutor
worker processes), so it uses only the standard library and everything passed in is a plain,
picklable value.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Set while a run is being cancelled: queued jobs return at once instead of starting.
CANCELLED = threading.Event()
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()
#: Runs the command and journals its launch and end (see ``_job_wrapper``); run as a script.
_WRAPPER = str(Path(__file__).with_name("_job_wrapper.py"))
#: Exit code recorded when the program cannot be started at all (as a shell would report it).
EXIT_NOT_FOUND = 127


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a worker needs to run one job (and the retry policy the submit side reads)."""

    name: str
    argv: tuple[str, ...]
    cwd: str
    stdout: str
    stderr: str
    events: str
    """The run's journal: the worker appends ``start`` when an attempt starts (how the submit side
    sees RUNNING); the job wrapper appends ``launch`` and ``end`` (how a restart or report after a
    killed ``bps`` learns what finished)."""
    number_of_retries: int
    retry_unless_exit: tuple[int, ...] = ()
    """Exit codes after which no retry is made (``retryUnlessExit``)."""
    environment: tuple[tuple[str, str], ...] = ()
    """Set on top of the worker's environment (the submit YAML's ``environment:``)."""


class JobExitError(Exception):
    """The job's command exited non-zero (or was killed: negative codes are signal numbers)."""

    def __init__(self, name: str, exit_code: int) -> None:
        super().__init__(name, exit_code)  # args round-trip through pickle to the submit side
        self.name = name
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"job {self.name} exited with code {self.exit_code}"


class JobCancelledError(Exception):
    """The run was cancelled before this job started."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _record_start(spec: JobSpec) -> None:
    line = (
        json.dumps(
            {
                "job": spec.name,
                "event": "start",
                "time": _now(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
        )
        + "\n"
    )
    # One short O_APPEND write per line: concurrent workers on a local disk never interleave.
    fd = os.open(spec.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def resolve_program(program: str) -> str | None:
    """``program`` on PATH, else next to this Python (a venv's console scripts, when not activated)."""
    found = shutil.which(program)
    if found is None and os.sep not in program:
        sibling = Path(sys.executable).parent / program
        if os.access(sibling, os.X_OK):
            found = str(sibling)
    return found


_SHELL_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def job_environment(job: JobSpec) -> dict[str, str] | None:
    """The worker's environment with the job's ``environment:`` over it (None: nothing to add).

    A ``${VAR}`` the submitting shell did not set is filled here, on the worker, from its own
    environment (left as written if unset there too).
    """
    if not job.environment:
        return None
    env = dict(os.environ)
    for name, value in job.environment:
        env[name] = _SHELL_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    return env


def expand_argv(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``${VAR}`` left in a command template, filled from the job's environment at run time."""
    return [_SHELL_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), a) if "${" in a else a for a in argv]


#: LSST's run-time placeholder for the attempt number: 0 on the first attempt, as DAGMan's $(RETRY).
ATTEMPT_PLACEHOLDER = "{wmsAttemptNum}"


def _next_attempt(stdout: Path) -> int:
    """This job's attempt number, counted in a small file beside its stdout (0, 1, 2...)."""
    counter = stdout.with_name(stdout.name + ".attempt")
    try:
        attempt = int(counter.read_text()) + 1
    except (OSError, ValueError):
        attempt = 0
    counter.write_text(str(attempt))
    return attempt


def run_job(job: JobSpec, inputs: Sequence[object] = ()) -> int:
    """Run one attempt of ``job``; return 0 or raise :class:`JobExitError`.

    ``inputs`` are the parent jobs' results: Parsl passes them only so it waits for the parents.
    """
    del inputs
    if CANCELLED.is_set():
        raise JobCancelledError(job.name)
    _record_start(job)
    Path(job.stdout).parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(job.argv)
    banner = f"# skybatch: {job.name} attempt started {_now()} on {socket.gethostname()}: {command}\n"
    with open(job.stdout, "ab") as out, open(job.stderr, "ab") as err:
        out.write(banner.encode())
        err.write(banner.encode())
        out.flush()
        err.flush()
        env = job_environment(job)
        argv = expand_argv(job.argv, os.environ if env is None else env)
        if any(ATTEMPT_PLACEHOLDER in a for a in argv):
            attempt = str(_next_attempt(Path(job.stdout)))
            argv = [a.replace(ATTEMPT_PLACEHOLDER, attempt) for a in argv]
        program = resolve_program(argv[0])
        if program is None:
            err.write(f"# skybatch: command not found: {argv[0]}\n".encode())
            raise JobExitError(job.name, EXIT_NOT_FOUND)
        try:
            proc = subprocess.Popen(
                [sys.executable, _WRAPPER, job.events, job.name, program, *argv[1:]],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=job.cwd,
                start_new_session=True,  # Ctrl-C reaches bps, which then stops jobs deliberately
            )
        except OSError as exc:
            err.write(f"# skybatch: cannot start {program}: {exc}\n".encode())
            raise JobExitError(job.name, EXIT_NOT_FOUND) from None
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            code = proc.wait()
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    if code != 0:
        raise JobExitError(job.name, code)
    return 0


def terminate_running(grace: float = 5.0) -> None:
    """Stop every command this process started (SIGTERM, then SIGKILL after ``grace`` seconds)."""
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

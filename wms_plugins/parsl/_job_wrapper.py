"""Run one job's command and record, durably, that it started and how it ended.

Executed as a script (``python _job_wrapper.py EVENTS JOB PROGRAM ARGS...``) in the job's own
session, so it outlives the ``bps`` process that launched it: if ``bps submit`` is killed, the
job still records its own completion, and ``bps report``/``bps restart`` read it from the journal
instead of rerunning finished work.  Journal lines (JSON, appended with one write each, then
fsync'ed):

    {"job": NAME, "event": "launch", "pgid": ..., "host": ..., "time": ...}   before the command
    {"job": NAME, "event": "end", "exit_code": N, "pgid": ..., ...}            after it exits

``pgid`` is this wrapper's process group (the job's whole process tree), which is how a restart
finds and stops orphans.  Standard library only: this runs once per job attempt, so it must
start fast and must not import skybatch.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
from types import FrameType
from typing import Any

#: Exit code when the command cannot be started at all (as a shell reports "not found").
EXIT_NOT_STARTED = 127


def append_event(path: str, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it: the line survives a crash of this machine too."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(events: str, job: str, event: str, **extra: Any) -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    base = {"job": job, "event": event, "pgid": os.getpgrp(), "host": socket.gethostname(), "time": now}
    append_event(events, {**base, **extra})


def main(argv: list[str]) -> int:
    events, job, *command = argv
    _record(events, job, "launch")
    try:
        child = subprocess.Popen(command)
    except OSError as err:
        print(f"# skybatch: cannot start {command[0]}: {err}", file=sys.stderr)
        _record(events, job, "end", exit_code=EXIT_NOT_STARTED)
        return EXIT_NOT_STARTED

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    code = child.wait()
    _record(events, job, "end", exit_code=code)
    if code < 0:  # killed by a signal: end the same way, so the launcher sees the same code
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

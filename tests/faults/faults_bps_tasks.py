"""Demo tasks that count their runs: each quantum appends ``start`` and ``done`` lines to its own file.

Batch jobs import this module through ``PYTHONPATH``; the counting file shows, after a kill and a
restart, how often each quantum really ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from quantumgraph.demo.tasks import Calibrate, Gather, Isr


def _mark(counter_dir: str, label: str, ident: str, what: str) -> None:
    path = Path(counter_dir) / f"{label}_{ident}.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


class CountingIsr(Isr):
    class Config(Isr.Config):
        counter_dir: str = ""
        sleep: float = 0.0

    def run(self, raw: dict[str, Any]) -> dict[str, Any]:
        ident = f"{raw['exposure']}_{raw['detector']}"
        _mark(self.config.counter_dir, "isr", ident, "start")
        time.sleep(self.config.sleep)
        out = super().run(raw)
        _mark(self.config.counter_dir, "isr", ident, "done")
        return out


class CountingCalibrate(Calibrate):
    class Config(Calibrate.Config):
        counter_dir: str = ""

    def run(self, post_isr: dict[str, Any]) -> dict[str, Any]:
        ident = f"{post_isr['exposure']}_{post_isr['detector']}"
        _mark(self.config.counter_dir, "calibrate", ident, "start")
        out = super().run(post_isr)
        _mark(self.config.counter_dir, "calibrate", ident, "done")
        return out


class CountingGather(Gather):
    class Config(Gather.Config):
        counter_dir: str = ""

    def run(self, calexps: list[dict[str, Any]]) -> dict[str, Any]:
        ident = str(calexps[0]["exposure"])
        _mark(self.config.counter_dir, "gather", ident, "start")
        out = super().run(calexps)
        _mark(self.config.counter_dir, "gather", ident, "done")
        return out

"""Demo-pipeline tasks for the real-pool tests: they leave evidence of every run, and misbehave on request.

Each task appends one line to ``<marker_dir>/<label>_<exposure>_<detector>.log`` whenever it runs
(so a test can count how often each quantum ran), then does what the demo task does.

* :class:`HungryCalibrate` holds ``hungry_mb`` MB of touched memory for ``hungry_seconds`` on the
  detectors in ``hungry_detectors``: more than a small ``requestMemory``.
* :class:`FlakyCalibrate` fails on ``flaky_detectors`` while the file ``fail_flag`` exists, so a test
  makes a run fail, removes the file, and restarts it.

The jobs import this module through ``PYTHONPATH`` (DAGMan passes it on to the jobs).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from quantumgraph.demo.tasks import Calibrate, Gather, Isr


def _mark(marker_dir: str, label: str, data: dict[str, Any]) -> None:
    if not marker_dir:
        return
    name = f"{label}_{data.get('exposure', 'x')}_{data.get('detector', 'x')}.log"
    with open(Path(marker_dir) / name, "a") as stream:
        stream.write(f"ran pid={os.getpid()}\n")


class MarkedIsr(Isr):
    class Config(Isr.Config):
        marker_dir: str = ""

    def run(self, raw: dict[str, Any]) -> dict[str, Any]:
        _mark(self.config.marker_dir, "isr", raw)
        return super().run(raw)


class FlakyCalibrate(Calibrate):
    class Config(Calibrate.Config):
        marker_dir: str = ""
        flaky_detectors: list[int] = []
        fail_flag: str = ""

    def run(self, post_isr: dict[str, Any]) -> dict[str, Any]:
        _mark(self.config.marker_dir, "calibrate", post_isr)
        flag = self.config.fail_flag
        if flag and os.path.exists(flag) and post_isr.get("detector") in self.config.flaky_detectors:
            raise RuntimeError(f"calibrate fails on detector {post_isr['detector']} while {flag} exists")
        return super().run(post_isr)


class HungryCalibrate(Calibrate):
    class Config(Calibrate.Config):
        marker_dir: str = ""
        hungry_detectors: list[int] = []
        hungry_mb: int = 300
        hungry_seconds: float = 20.0

    def run(self, post_isr: dict[str, Any]) -> dict[str, Any]:
        _mark(self.config.marker_dir, "calibrate", post_isr)
        if post_isr.get("detector") in self.config.hungry_detectors:
            block = b"\x01" * (self.config.hungry_mb * 1024 * 1024)  # touched, so it is resident
            time.sleep(self.config.hungry_seconds)
            del block
        return super().run(post_isr)


class MarkedGather(Gather):
    class Config(Gather.Config):
        marker_dir: str = ""

    def run(self, calexps: list[dict[str, Any]]) -> dict[str, Any]:
        _mark(self.config.marker_dir, "gather", {"exposure": calexps[0].get("exposure") if calexps else "x"})
        return super().run(calexps)

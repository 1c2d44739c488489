"""A demo task that holds its quanta until a gate file is removed, so a test can watch a run RUNNING.

Batch jobs import this module through ``PYTHONPATH``.  The first quantum to start touches
``<gate>.entered``; every quantum waits while ``<gate>`` exists (bounded, so a crashed test never
leaves a job hanging).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from quantumgraph.demo.tasks import Isr

GUARD_SECONDS = 300.0


class GatedIsr(Isr):
    class Config(Isr.Config):
        gate: str = ""

    def run(self, raw: dict[str, Any]) -> dict[str, Any]:
        gate = Path(self.config.gate)
        gate.with_name(gate.name + ".entered").touch()
        deadline = time.monotonic() + GUARD_SECONDS
        while gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return super().run(raw)

"""Helpers shared by the fault-injection tests (a module, not conftest, so tests import it by name)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

#: The demo pipeline (isr adds 1, calibrate multiplies by ``scale``, gather summarises).
DEMO_PIPELINE = """\
description: DemoCam ISR, calibration and a per-exposure summary
tasks:
  isr:
    class: quantumgraph.demo.tasks.Isr
    config:
      offset: 1.0
  calibrate:
    class: quantumgraph.demo.tasks.Calibrate
    config:
      scale: 2.0
  gather: quantumgraph.demo.tasks.Gather
"""


def script(name: str) -> str:
    """Path of an installed console script, for tests that start several at once with Popen."""
    exe = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if exe is None:
        pytest.skip(f"console script {name} is not installed")
    return exe

"""Helpers shared by the fault-injection tests (a module, not conftest, so tests import it by name)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: The demo pipeline (isr adds 1, calibrate multiplies by ``scale`` 2.0, gather summarises): the
#: quickstart's own file, so the fault tests exercise what users run.
DEMO_PIPELINE = (
    Path(__file__).resolve().parents[2] / "submit_configs" / "quickstart_pipeline.yaml"
).read_text(encoding="utf-8")


def script(name: str) -> str:
    """Path of an installed console script, for tests that start several at once with Popen."""
    exe = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    # The suite runs in an installed skybatch: a missing script is a packaging bug, not a skip.
    assert exe is not None, f"console script {name} is not installed next to {sys.executable}"
    return exe

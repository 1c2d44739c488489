"""The ``pipetask`` command: build, show and run QuantumGraphs; run quanta inside batch jobs."""

from __future__ import annotations

from ._main import main

__all__ = ["main"]

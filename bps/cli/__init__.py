"""The ``bps`` command line (console script ``bps = bps.cli:main``)."""

from __future__ import annotations

from ._main import main

__all__ = ["main"]

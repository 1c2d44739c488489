"""Pausing the cyclic garbage collector around bulk object creation.

Building or reading a 20,000-job workflow creates ~100,000 small objects; each allocation burst
triggers full collections that walk everything alive (a whole QuantumGraph, say).  Those passes
cost more than the work itself and vary from run to run.  The objects made in these sections
form no reference cycles, so pausing loses nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block (restoring its previous state after)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

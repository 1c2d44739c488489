"""Pausing the cyclic garbage collector around bulk object creation.

Loading a QuantumGraph or building a 20,000-job workflow creates hundreds of thousands of small
objects; each allocation burst triggers collections that walk everything alive (a whole graph,
say).  Those passes cost more than the work itself and vary from run to run.  The objects made in
these sections form no reference cycles, so pausing loses nothing: reference counting still
frees them.  Shared by quantumgraph (graph reading) and bps (workflow building).
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

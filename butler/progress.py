"""Progress reporting as a library concept: one helper every layer uses.

``progress_bar(total, label, enabled)`` yields a callable ``advance(n)``.  When ``enabled`` is
false (the default for every command unless ``--progress`` is given) it does nothing and costs
nothing; when true it draws a bar on stderr, so stdout stays clean for tables and pipes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[int], None]


def _noop(n: int = 1) -> None:
    return None


@contextmanager
def progress_bar(total: int, label: str, enabled: bool = False) -> Iterator[Advance]:
    """Show a bar for ``total`` steps while the block runs (only when ``enabled``)."""
    if not enabled or total <= 0:
        yield _noop
        return
    done = 0
    start = time.monotonic()
    last = 0.0
    stream = sys.stderr
    width = 30

    def draw(final: bool = False) -> None:
        frac = min(done / total, 1.0)
        filled = int(frac * width)
        elapsed = time.monotonic() - start
        stream.write(f"\r{label}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {elapsed:6.1f}s")
        if final:
            stream.write("\n")
        stream.flush()

    def advance(n: int = 1) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last > 0.1 or done >= total:
            last = now
            draw()

    try:
        yield advance
    finally:
        draw(final=True)

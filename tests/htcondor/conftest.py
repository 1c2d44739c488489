"""The ``condor_pool`` fixture: one real HTCondor pool (see :mod:`pool`) for the whole session.

It is started on first use and stopped at the end of the session.  Where this machine cannot have
a pool (not root, no cached chroot and no way to build one, a download failed, the pool is busy)
the tests that use it are skipped, and the skip message says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pool import Pool, PoolUnavailable, ensure_chroot, start_pool, why_unavailable

log = logging.getLogger("skybatch.htcondor_pool")


@pytest.fixture(scope="session")
def condor_pool() -> Iterator[Pool]:
    """A running one-machine pool in the cached trixie chroot."""
    reason = why_unavailable()
    if reason:
        pytest.skip(f"no HTCondor pool: {reason}")
    try:
        pool = start_pool(ensure_chroot())
    except PoolUnavailable as err:
        pytest.skip(f"no HTCondor pool: {err}")
    try:
        log.info("HTCondor pool versions: %s", pool.versions())
        yield pool
    finally:
        pool.stop()

"""The ``slurm_cluster`` fixture: one real one-machine Slurm cluster (see :mod:`slurm_cluster`).

Started on first use, stopped at the end of the session.  Where it cannot start (not root, the
packages cannot be installed, a daemon fails), the tests that use it skip and say why.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1] / "support"))  # host_packages

from slurm_cluster import SlurmCluster, SlurmUnavailable, start_cluster, why_unavailable


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    reason = why_unavailable()
    if reason:
        pytest.skip(f"no Slurm cluster: {reason}")
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as err:
        pytest.skip(f"no Slurm cluster: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()

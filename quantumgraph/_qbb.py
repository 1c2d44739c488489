"""Open a quantum-backed butler on a repository for a graph, without the registry.

The butler layer reads the repository's ``butler.yaml`` (datastore root and file template); the
dimension universe and dataset types come from the graph header, and input locations from the
records the graph carries.  Nothing here imports SQLAlchemy, so a batch job starts quickly.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from butler import DimensionUniverse, StoredFileInfo

from ._model import GraphHeader

if TYPE_CHECKING:
    from butler import QuantumBackedButler


def make_limited_butler(
    repo: Path | str,
    header: GraphHeader,
    records: Mapping[uuid.UUID, StoredFileInfo],
    *,
    clobber_outputs: bool = False,
) -> QuantumBackedButler:
    """A QuantumBackedButler over ``repo``'s datastore for the graph described by ``header``.

    ``clobber_outputs`` lets its puts replace existing output files (``--clobber-outputs``).
    """
    from butler import QuantumBackedButler

    return QuantumBackedButler.from_repo(
        repo,
        universe=DimensionUniverse(header.universe_config),
        dataset_types=header.dataset_types,
        records=records,
        clobber_outputs=clobber_outputs,
    )

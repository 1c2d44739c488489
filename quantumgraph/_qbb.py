"""Open a quantum-backed butler on a repository from a graph header, without the registry.

Only the repository's ``butler.yaml`` is read (for the datastore root and file template); the
dimension universe and dataset types come from the graph, and input locations from the records
the graph carries.  Nothing here imports SQLAlchemy, so a batch job starts quickly.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from butler._dimensions import DimensionUniverse
from butler._repo_config import CONFIG_NAME, RepoConfig
from butler._stored_file_info import StoredFileInfo

from ._model import GraphHeader

if TYPE_CHECKING:
    from butler._limited_butler import QuantumBackedButler


@functools.lru_cache(maxsize=8)
def read_datastore_config(repo: Path) -> tuple[Path, str | None]:
    """The datastore root (absolute) and template from ``REPO/butler.yaml`` (read once per process).

    ``repo`` may also be the path of the ``butler.yaml`` itself, as everywhere a Butler is opened.
    """
    if repo.name == CONFIG_NAME and repo.is_file():
        repo = repo.parent
    config = RepoConfig.read(repo)
    return config.resolved_root(repo), config.template


def make_limited_butler(
    repo: Path, header: GraphHeader, records: Mapping[uuid.UUID, StoredFileInfo]
) -> QuantumBackedButler:
    """A QuantumBackedButler over ``repo``'s datastore for the graph described by ``header``."""
    from butler._limited_butler import QuantumBackedButler

    root, template = read_datastore_config(Path(repo))
    universe = DimensionUniverse(header.universe_config)
    kwargs: dict[str, Any] = {}
    if template:
        kwargs["template"] = template
    return QuantumBackedButler(root, universe, header.dataset_types, records, **kwargs)

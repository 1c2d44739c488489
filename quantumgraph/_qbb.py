"""Open a quantum-backed butler on a repository from a graph header, without the registry.

Only the repository's ``butler.yaml`` is read (for the datastore root and file template); the
dimension universe and dataset types come from the graph, and input locations from the records
the graph carries.  Nothing here imports SQLAlchemy, so a batch job starts quickly.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from butler._dimensions import DimensionUniverse
from butler._exceptions import RepositoryError
from butler._stored_file_info import StoredFileInfo

from ._model import GraphHeader


def read_datastore_config(repo: Path) -> tuple[Path, str | None]:
    """The datastore root (absolute) and template from ``REPO/butler.yaml``."""
    import yaml

    config_path = repo / "butler.yaml"
    try:
        data = yaml.safe_load(config_path.read_text())
    except FileNotFoundError:
        raise RepositoryError(f"no butler repository at {repo} (missing {config_path.name})") from None
    except (OSError, yaml.YAMLError) as exc:
        raise RepositoryError(f"cannot read {config_path}: {exc}") from exc
    datastore: dict[str, Any] = (data or {}).get("datastore") or {}
    root = Path(datastore.get("root") or ".")
    if not root.is_absolute():
        root = repo / root
    return root.resolve(), datastore.get("template")


def make_limited_butler(repo: Path, header: GraphHeader, records: Mapping[uuid.UUID, StoredFileInfo]) -> Any:
    """A QuantumBackedButler over ``repo``'s datastore for the graph described by ``header``."""
    from butler._limited_butler import QuantumBackedButler

    root, template = read_datastore_config(Path(repo))
    universe = DimensionUniverse(header.universe_config)
    kwargs: dict[str, Any] = {}
    if template:
        kwargs["template"] = template
    return QuantumBackedButler(root, universe, header.dataset_types, records, **kwargs)

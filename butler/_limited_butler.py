"""The quantum-backed butler: dataset access inside a batch job, without a registry.

A batch job runs one or a few quanta from a QuantumGraph file.  Everything it needs is in that
file: the references of its inputs with their datastore records, and the predicted references
(with UUIDs) of its outputs.  So the job reads and writes files directly and never opens the
repository database -- thousands of jobs hitting one database at start-up is exactly what the
design avoids.  What was written is registered later by the merge job, which finds the files at
their predicted paths.

Inputs produced by an earlier quantum of the same graph have no record in the file (they did not
exist when it was built); they are found the same way the merge job finds them, at the path the
datastore predicts for their reference.

This module and everything it imports must stay light: no sqlalchemy, no numpy (until an .npy
file is read), so a job starts in well under half a second.  ``tests/butler/test_limited_butler.py``
checks that in a fresh interpreter.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ._dataset_type import DatasetRef, DatasetType
from ._dimensions import DimensionUniverse
from ._exceptions import DatasetFileMissingError, DatasetNotFoundError, MissingDatasetTypeError
from ._repo_config import CONFIG_NAME, RepoConfig
from ._stored_file_info import StoredFileInfo
from .datastore import DEFAULT_TEMPLATE, FileDatastore

__all__ = ["LimitedButler", "QuantumBackedButler"]


class LimitedButler(Protocol):
    """The three operations running a quantum needs: the quantum-backed butler provides them, and
    so do wrappers around it (quantumgraph's job-local butler) and tests."""

    def get(self, ref: DatasetRef) -> Any: ...

    def put(self, obj: Any, ref: DatasetRef, *, overwrite: bool | None = None) -> Any: ...

    def exists(self, ref: DatasetRef) -> bool: ...


@functools.lru_cache(maxsize=8)
def _datastore_config(repo: Path) -> tuple[Path, str | None, bool]:
    """Datastore root (absolute), template and verify_checksums from ``REPO/butler.yaml``, read once.

    ``repo`` may also be the path of the ``butler.yaml`` itself, as everywhere a Butler is opened.
    """
    if repo.name == CONFIG_NAME and repo.is_file():
        repo = repo.parent
    config = RepoConfig.read(repo)
    return config.resolved_root(repo), config.template, config.verify_checksums


class QuantumBackedButler:
    """Read inputs and write outputs of quanta through given references and datastore records.

    ``dataset_types`` are those of the graph; a put of any other dataset type, or of one whose
    definition differs from the graph's, is refused, since the merge job could not register it.
    ``records`` are not modified: the butler keeps its own copy, to which puts are added so a
    later quantum in the same job can read what an earlier one wrote.
    """

    def __init__(
        self,
        root: Path | str,
        universe: DimensionUniverse,
        dataset_types: Mapping[str, DatasetType],
        records: Mapping[uuid.UUID, StoredFileInfo],
        template: str = DEFAULT_TEMPLATE,
        *,
        verify_checksums: bool = False,
        clobber_outputs: bool = False,
    ) -> None:
        self.universe = universe
        self.dataset_types: Mapping[str, DatasetType] = dataset_types
        self.datastore = FileDatastore(root, template, verify_checksums=verify_checksums)
        self.clobber_outputs = clobber_outputs
        """Whether puts may replace an existing output file with different contents."""
        self.root = self.datastore.root
        self._records: dict[uuid.UUID, StoredFileInfo] = dict(records)
        self._written: dict[uuid.UUID, StoredFileInfo] = {}

    @classmethod
    def from_repo(
        cls,
        repo: Path | str,
        *,
        universe: DimensionUniverse,
        dataset_types: Mapping[str, DatasetType],
        records: Mapping[uuid.UUID, StoredFileInfo],
        clobber_outputs: bool = False,
    ) -> QuantumBackedButler:
        """A butler over the datastore of repository ``repo`` (its directory or its butler.yaml).

        Only ``butler.yaml`` is read (datastore root and file template), never the registry
        database: the universe, dataset types and input records come from the caller (a graph
        file, in a batch job).  The file is parsed once per process per repository; its
        ``datastore.verify_checksums`` decides whether reads compare checksums.
        """
        root, template, verify = _datastore_config(Path(repo))
        return cls(
            root,
            universe,
            dataset_types,
            records,
            template or DEFAULT_TEMPLATE,
            verify_checksums=verify,
            clobber_outputs=clobber_outputs,
        )

    def __repr__(self) -> str:
        return f"QuantumBackedButler({str(self.root)!r})"

    @property
    def written(self) -> Mapping[uuid.UUID, StoredFileInfo]:
        """Records of the datasets put through this butler, in the order they were put."""
        return self._written

    def add_records(self, records: Mapping[uuid.UUID, StoredFileInfo]) -> None:
        """Make more inputs readable: a job running several quanta adds each one's records."""
        self._records.update(records)

    def _info(self, ref: DatasetRef) -> StoredFileInfo | None:
        info = self._records.get(ref.id)
        if info is None:
            info = self.datastore.info_for_existing(ref)
        return info

    def get(self, ref: DatasetRef) -> object:
        """Read ``ref``, from its record if it has one, else from the file at its predicted path.

        DatasetNotFoundError if there is neither; DatasetFileMissingError if a record names a file
        that is gone.
        """
        info = self._info(ref)
        if info is None:
            raise DatasetNotFoundError(
                f"dataset {ref} has no datastore record and no file at its predicted path "
                f"{self.datastore.predict_path(ref)} under {self.root}; was the quantum that "
                "produces it run, and did it succeed?"
            )
        try:
            return self.datastore.read(info, ref.dataset_type.storage_class)
        except DatasetFileMissingError as exc:
            raise DatasetFileMissingError(
                f"dataset {ref} has a datastore record but its file is missing: "
                f"{self.datastore.abspath(info)}"
            ) from exc

    def put(self, obj: object, ref: DatasetRef, *, overwrite: bool | None = None) -> StoredFileInfo:
        """Write ``obj`` as ``ref`` (a predicted output) and return its datastore record.

        ``overwrite`` (default: this butler's ``clobber_outputs``) replaces a file already at the
        path; otherwise only an identical one is accepted.  Provenance that describes the latest
        attempt of a quantum (its log and metadata) is written with ``overwrite=True``.
        """
        known = self.dataset_types.get(ref.dataset_type.name)
        if known is None:
            raise MissingDatasetTypeError(
                f"dataset type {ref.dataset_type.name} is not one of this graph's dataset types "
                f"({', '.join(sorted(self.dataset_types)) or 'none'}); cannot put {ref}"
            )
        known.check_compatible(ref.dataset_type)
        # Never replace a file that may already be registered, unless the user asked to.
        info = self.datastore.write(
            obj, ref, overwrite=self.clobber_outputs if overwrite is None else overwrite
        )
        self._records[ref.id] = info
        self._written[ref.id] = info
        return info

    def exists(self, ref: DatasetRef) -> bool:
        """Whether ``ref``'s file is there, by its record or at its predicted path."""
        info = self._records.get(ref.id)
        if info is not None:
            return self.datastore.exists(info)
        return self.datastore.info_for_existing(ref) is not None

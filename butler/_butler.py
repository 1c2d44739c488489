"""The Butler: one object that finds datasets by meaning and reads or writes them as Python objects.

It joins a :class:`~butler.registry.Registry` (what exists, under which data IDs, in which
collections) to a :class:`~butler.datastore.FileDatastore` (where the bytes are) through
:class:`~butler.DatasetRef`.  Both share one database: the datastore's records live beside the
registry tables, so a put commits the dataset row and its file record together.

A put is: insert the dataset row, write the file (to a temporary name, then rename), insert the
file record, commit.  If anything fails the transaction rolls back and the file is removed, so a
reader never sees a registered dataset without its file or a file no one will ever find.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from ._dataset_type import DatasetRef, DatasetType
from ._dimensions import DataCoordinate, DimensionUniverse
from ._exceptions import (
    DatasetNotFoundError,
    DimensionValueError,
    MissingCollectionError,
    RepositoryError,
)
from ._repo_config import CONFIG_NAME, REGISTRY_FILE, RepoConfig
from ._storage_class import get_storage_class
from ._stored_file_info import StoredFileInfo
from .datastore import DEFAULT_TEMPLATE, FileDatastore, TransferMode
from .datastore._record_store import DatastoreRecordStore
from .registry import Registry

__all__ = ["Butler"]


def _as_names(collections: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if collections is None:
        return None
    if isinstance(collections, str):
        return (collections,)
    return tuple(collections)


class Butler:
    """Read and write datasets in a repository directory.

    ``run`` is where puts go by default; ``collections`` is what gets searched by default (the run
    alone when only ``run`` is given).  A Butler opened with ``writeable=False`` refuses writes.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        run: str | None = None,
        collections: str | Iterable[str] | None = None,
        writeable: bool = True,
    ) -> None:
        root = Path(path).absolute()
        if root.name == CONFIG_NAME and root.is_file():
            root = root.parent
        self.root = root
        self.config = RepoConfig.read(root)
        self.registry = Registry.open(self.config.resolved_db(root))
        self.datastore = FileDatastore(
            self.config.resolved_root(root),
            self.config.template or DEFAULT_TEMPLATE,
            verify_checksums=self.config.verify_checksums,
        )
        self._records = DatastoreRecordStore(
            self.registry.metadata, self.registry.transaction, dataset_fk="dataset.id"
        )
        if self.registry.schema_version == "1.0":
            self._upgrade_from_1_0()
        self.run = run
        default = _as_names(collections)
        self.collections: tuple[str, ...] = default if default is not None else ((run,) if run else ())
        self.writeable = writeable

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        universe: DimensionUniverse | None = None,
        db_url: str | None = None,
        config: RepoConfig | None = None,
    ) -> Butler:
        """Create a new repository at ``path`` (which must not exist or be an empty directory).

        ``config`` (e.g. from :meth:`RepoConfig.from_seed`) gives the database, datastore root and
        template; ``db_url``, when given, wins over its database.
        """
        root = Path(path).absolute()
        if root.exists():
            if not root.is_dir():
                raise RepositoryError(
                    f"cannot create a repository at {root}: it exists and is not a directory"
                )
            if (root / CONFIG_NAME).exists():
                raise RepositoryError(f"cannot create a repository at {root}: one already exists there")
            if any(root.iterdir()):
                raise RepositoryError(f"cannot create a repository at {root}: the directory is not empty")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RepositoryError(f"cannot create a repository at {root}: {err.strerror}") from err
        if config is None:
            config = RepoConfig(db=f"sqlite:///{root / REGISTRY_FILE}", template=DEFAULT_TEMPLATE)
        elif config.template is None:
            config = replace(config, template=DEFAULT_TEMPLATE)
        if db_url is not None:
            config = replace(config, db=db_url)
        registry = Registry.create(config.resolved_db(root), universe or DimensionUniverse.default())
        try:
            records = DatastoreRecordStore(registry.metadata, registry.transaction, dataset_fk="dataset.id")
            records.create()
        finally:
            registry.close()
        config.write(root)  # last: a directory without butler.yaml is not a repository
        return cls(root)

    def _upgrade_from_1_0(self) -> None:
        """Add the records' checksum column to a repository made before schema 1.1.

        Old records keep a NULL checksum (their sizes are still checked).  The version row is
        locked and re-read first, so two processes opening an old repository at once upgrade
        it exactly once.
        """
        registry = self.registry
        with registry.transaction() as conn:
            if registry.lock_schema_version(conn) == "1.0":
                self._records.add_checksum_column(conn)
                registry.set_schema_version(conn, "1.1")

    def close(self) -> None:
        """Release the database connections."""
        self.registry.close()

    def __enter__(self) -> Butler:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Butler({str(self.root)!r}, run={self.run!r}, collections={list(self.collections)!r})"

    @property
    def universe(self) -> DimensionUniverse:
        return self.registry.universe

    # -- helpers ----------------------------------------------------------------------------------

    def _check_writeable(self) -> None:
        if not self.writeable:
            raise RepositoryError(f"the butler for {self.root} was opened read-only (writeable=False)")

    def _search(self, collections: str | Iterable[str] | None) -> tuple[str, ...]:
        names = _as_names(collections)
        if names is None:
            names = self.collections
        if not names:
            raise MissingCollectionError(
                "no collections to search: pass collections=... or create the Butler with collections or run"
            )
        return names

    def _dataset_type(self, dataset_type: str | DatasetType) -> DatasetType:
        registered = self.registry.get_dataset_type(
            dataset_type if isinstance(dataset_type, str) else dataset_type.name
        )
        if isinstance(dataset_type, DatasetType) and dataset_type != registered:
            registered.check_compatible(
                DatasetType.build(
                    dataset_type.name, dataset_type.dimensions, dataset_type.storage_class, self.universe
                )
            )
        return registered

    def _find(
        self,
        dataset_type: str | DatasetType,
        data_id: Mapping[str, Any] | None,
        collections: str | Iterable[str] | None,
        kwargs: Mapping[str, Any],
    ) -> tuple[DatasetRef | None, DatasetType, DataCoordinate, tuple[str, ...]]:
        dt = self._dataset_type(dataset_type)
        coord = self.registry.expand_data_id(data_id, dt.dimensions, **kwargs)
        search = self._search(collections)
        return self.registry.find_dataset(dt, coord, search), dt, coord, search

    def _ref(
        self,
        dataset_type_or_ref: str | DatasetType | DatasetRef,
        data_id: Mapping[str, Any] | None,
        collections: str | Iterable[str] | None,
        kwargs: Mapping[str, Any],
    ) -> DatasetRef:
        if isinstance(dataset_type_or_ref, DatasetRef):
            if data_id is not None or kwargs:
                raise TypeError("a DatasetRef identifies the dataset by itself; do not pass a data ID too")
            return dataset_type_or_ref
        ref, dt, coord, search = self._find(dataset_type_or_ref, data_id, collections, kwargs)
        if ref is None:
            raise DatasetNotFoundError(
                f"no dataset {dt.name} with data ID {{{coord}}} in collections {', '.join(search)}"
            )
        return ref

    # -- writing ----------------------------------------------------------------------------------

    def register_dataset_type(self, name: str, dimensions: Sequence[str], storage_class: str) -> bool:
        """Register a dataset type, checking the storage class exists; False if already identical."""
        self._check_writeable()
        get_storage_class(storage_class)
        return self.registry.register_dataset_type(
            DatasetType.build(name, tuple(dimensions), storage_class, self.universe)
        )

    def put(
        self,
        obj: object,
        dataset_type: str | DatasetType,
        data_id: Mapping[str, Any] | None = None,
        *,
        run: str | None = None,
        **kwargs: Any,
    ) -> DatasetRef:
        """Store ``obj`` as a new dataset in ``run`` (default: the Butler's run, created if new)."""
        self._check_writeable()
        run = run or self.run
        if not run:
            raise MissingCollectionError("no run to put into: pass run=... or create the Butler with run=...")
        dt = self._dataset_type(dataset_type)
        coord = self.registry.expand_data_id(data_id, dt.dimensions, **kwargs)
        info: StoredFileInfo | None = None
        try:
            with self.registry.transaction() as conn:
                self.registry.register_run(run)
                (ref,) = self.registry.insert_datasets(dt, [coord], run)
                info = self.datastore.write(obj, ref)
                self._records.insert([info], connection=conn)
        except BaseException:
            if info is not None:
                self.datastore.remove(info)
            raise
        return ref

    def ingest(
        self,
        refs_and_paths: Iterable[tuple[DatasetRef, str | Path]],
        transfer: TransferMode = "copy",
        formatter: str | None = None,
    ) -> list[DatasetRef]:
        """Register existing files as datasets (runs created as needed), all or nothing.

        Each ref carries its UUID (make one with ``uuid.uuid4()``); its data ID is checked against
        the dimension records.  ``copy``/``symlink`` place the file at the datastore's path;
        ``direct`` records it where it is and never deletes it.  ``formatter`` names the
        formatter that reads the files (default: the storage class's).
        """
        self._check_writeable()
        items = list(refs_and_paths)
        groups: dict[tuple[str, str], list[DatasetRef]] = {}
        for ref, _ in items:
            groups.setdefault((ref.dataset_type.name, ref.run), []).append(ref)
        infos: list[StoredFileInfo] = []
        out: list[DatasetRef] = []
        try:
            with self.registry.transaction() as conn:
                for (_, run), refs in groups.items():
                    self.registry.register_run(run)
                    dt = self._dataset_type(refs[0].dataset_type)
                    out.extend(
                        self.registry.insert_datasets(
                            dt, [r.data_id for r in refs], run, [r.id for r in refs]
                        )
                    )
                by_id = {ref.id: ref for ref in out}
                for ref, path in items:
                    infos.append(self.datastore.ingest(path, by_id[ref.id], transfer, formatter))
                self._records.insert(infos, connection=conn)
        except BaseException:
            for info in infos:
                self.datastore.remove(info)
            raise
        return out

    def insert_datastore_records(self, infos: Iterable[StoredFileInfo]) -> None:
        """Record files already in the datastore (the merge job); records that exist are kept."""
        self._check_writeable()
        with self.registry.transaction() as conn:
            self._records.insert_ignore_existing(infos, connection=conn)

    def replace_datastore_records(self, infos: Iterable[StoredFileInfo]) -> None:
        """Replace the records of registered datasets whose files were deliberately rewritten.

        Only for an explicit clobber (``transfer-from-graph --clobber-outputs``): the record must
        describe the file that is there now, or every read would report it as damaged.
        """
        self._check_writeable()
        infos = list(infos)
        with self.registry.transaction() as conn:
            self._records.delete([i.dataset_id for i in infos], connection=conn)
            self._records.insert(infos, connection=conn)

    def remove_datasets(self, refs: Iterable[DatasetRef]) -> None:
        """Delete datasets: their registry rows, file records and (non-direct) files."""
        self._check_writeable()
        refs = list(refs)
        with self.registry.transaction() as conn:
            infos = self._records.fetch([r.id for r in refs], connection=conn)
            self._records.delete(list(infos), connection=conn)
            self.registry.remove_datasets(refs)
        for info in infos.values():
            self.datastore.remove(info)

    def unstore_datasets(self, refs: Iterable[DatasetRef]) -> int:
        """Delete the files and file records of datasets but keep them registered; returns how many
        had a file record.  What LSST calls "unstore": the run's history stays queryable, its
        storage is freed (``pipetask run --replace-run --prune-replaced unstore``)."""
        self._check_writeable()
        refs = list(refs)
        with self.registry.transaction() as conn:
            infos = self._records.fetch([r.id for r in refs], connection=conn)
            self._records.delete(list(infos), connection=conn)
        for info in infos.values():
            self.datastore.remove(info)
        return len(infos)

    # -- reading ----------------------------------------------------------------------------------

    def get_records(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, StoredFileInfo]:
        """Datastore records of those of ``ids`` that have one."""
        with self.registry.database.connection() as conn:
            return self._records.fetch(ids, connection=conn)

    def get(
        self,
        dataset_type_or_ref: str | DatasetType | DatasetRef,
        data_id: Mapping[str, Any] | None = None,
        *,
        collections: str | Iterable[str] | None = None,
        **kwargs: Any,
    ) -> object:
        """Read a dataset, given a DatasetRef or a dataset type and data ID (mapping and/or kwargs)."""
        ref = self._ref(dataset_type_or_ref, data_id, collections, kwargs)
        info = self.get_records([ref.id]).get(ref.id)
        if info is None:
            raise DatasetNotFoundError(f"dataset {ref} has no file in the datastore (no datastore record)")
        return self.datastore.read(info, ref.dataset_type.storage_class)

    def find_dataset(
        self,
        dataset_type: str | DatasetType,
        data_id: Mapping[str, Any] | None = None,
        *,
        collections: str | Iterable[str] | None = None,
        **kwargs: Any,
    ) -> DatasetRef | None:
        """The dataset found first in ``collections``, or None; unknown data ID values are an error."""
        return self._find(dataset_type, data_id, collections, kwargs)[0]

    def exists(
        self,
        dataset_type_or_ref: str | DatasetType | DatasetRef,
        data_id: Mapping[str, Any] | None = None,
        *,
        collections: str | Iterable[str] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Whether the dataset is registered and its file is present.

        An unknown data ID value or collection also means "no": this is the question a caller
        asks before deciding to produce the dataset.  A missing dataset type is still an error.
        """
        try:
            ref = self._ref(dataset_type_or_ref, data_id, collections, kwargs)
        except (DatasetNotFoundError, DimensionValueError, MissingCollectionError):
            return False
        info = self.get_records([ref.id]).get(ref.id)
        return info is not None and self.datastore.exists(info)

    def query_datasets(
        self,
        dataset_type: str | DatasetType,
        collections: str | Iterable[str] | None = None,
        where: str | None = None,
        data_id: Mapping[str, Any] | None = None,
        find_first: bool = True,
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[DatasetRef]:
        """Registry query over the Butler's default collections unless others are given."""
        return self.registry.query_datasets(
            dataset_type, self._search(collections), where, data_id, find_first, order_by, limit
        )

    def uris(self, refs: Iterable[DatasetRef]) -> dict[uuid.UUID, str]:
        """The ``file://`` URIs of the files of those of ``refs`` that have one (one query)."""
        infos = self.get_records(ref.id for ref in refs)
        return {dataset_id: self.datastore.abspath(info).as_uri() for dataset_id, info in infos.items()}

"""Dataset rows: insertion, import with fixed UUIDs, find-first lookup and queries.

A dataset is (dataset type, data ID, RUN); the table enforces that with a unique key on
``(dataset_type_id, run_id, data_id_key)`` where ``data_id_key`` is a canonical string of the
data ID values.  One string column keeps that key the same width for every dataset type, while
the per-dimension columns beside it serve joins and ``where`` filters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .._dataset_type import DatasetRef, DatasetType
from .._dimensions import DataCoordinate, DataIdValue, DimensionUniverse
from .._exceptions import (
    ConflictingDefinitionError,
    DimensionValueError,
    InvalidDataIdError,
    QueryError,
    UnknownDimensionError,
)
from ._collections import CollectionManager
from ._database import Database, chunks
from ._dataset_types import DatasetTypeManager
from ._dimension_records import DimensionRecordManager
from ._resolver import DatasetQueryResolver


def data_id_key(values: Sequence[DataIdValue]) -> str:
    """Canonical, unambiguous string for data ID values (the dimensions are fixed by the type)."""
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


class DatasetManager:
    """Inserts, finds, queries and removes dataset rows."""

    def __init__(
        self,
        db: Database,
        universe: DimensionUniverse,
        table: sa.Table,
        dataset_types: DatasetTypeManager,
        collections: CollectionManager,
        records: DimensionRecordManager,
    ) -> None:
        self._db = db
        self._universe = universe
        self._table = table
        self._types = dataset_types
        self._collections = collections
        self._records = records
        t = table
        self._insert_stmt = sa.insert(t)
        self._find_stmt = sa.select(t.c.id, t.c.run_id).where(
            t.c.dataset_type_id == sa.bindparam("dt"),
            t.c.data_id_key == sa.bindparam("key"),
            t.c.run_id.in_(sa.bindparam("runs", expanding=True)),
        )
        self._by_id_stmt = sa.select(t).where(t.c.id == sa.bindparam("id"))
        self._key_types: dict[str, type] = {d.name: d.key_type for d in universe}

    # -- helpers ------------------------------------------------------------------------------

    def coerce_data_id(
        self, dataset_type: DatasetType, data_id: Mapping[str, Any] | None, **kw: Any
    ) -> DataCoordinate:
        """A DataCoordinate with exactly the dataset type's dimensions (no record check)."""
        if not kw and isinstance(data_id, DataCoordinate):
            # Trust a DataCoordinate only if its values have the key types: the canonical key
            # string (and so duplicate detection) depends on 1 and "1" never being mixed.
            if data_id.dimensions == dataset_type.dimensions and self._well_typed(data_id):
                return data_id
            if set(dataset_type.dimensions) <= set(data_id.dimensions):
                subset = data_id.subset(dataset_type.dimensions)
                if self._well_typed(subset):
                    return subset
        try:
            return self._universe.data_id(dataset_type.dimensions, data_id, **kw)
        except InvalidDataIdError as err:
            raise InvalidDataIdError(f"data ID for dataset type {dataset_type.name}: {err}") from None

    def _well_typed(self, data_id: DataCoordinate) -> bool:
        key_types = self._key_types
        return all(
            type(v) is key_types[d] for d, v in zip(data_id.dimensions, data_id.values_tuple, strict=True)
        )

    def _row(
        self, ref_id: uuid.UUID, dataset_type_id: int, run_id: int, coord: DataCoordinate
    ) -> dict[str, Any]:
        row: dict[str, Any] = dict(zip(coord.dimensions, coord.values_tuple, strict=True))
        row["id"] = ref_id
        row["dataset_type_id"] = dataset_type_id
        row["run_id"] = run_id
        row["data_id_key"] = data_id_key(coord.values_tuple)
        return row

    def _integrity(
        self,
        err: sa.exc.IntegrityError,
        dataset_type: DatasetType,
        coords: Sequence[DataCoordinate],
        run: str,
    ) -> Exception:
        """Translate a failed dataset insert into the butler error a user can act on."""
        text = str(err.orig)
        which = f"{{{coords[0]}}}" if len(coords) == 1 else f"one of {len(coords)} data IDs"
        if "FOREIGN KEY" in text.upper():
            return DimensionValueError(
                f"dataset {dataset_type.name} {which}: a data ID value has no dimension record ({text})"
            )
        if "data_id_key" in text:
            return ConflictingDefinitionError(
                f"dataset {dataset_type.name} with data ID {which} already exists in run {run!r}"
            )
        return ConflictingDefinitionError(
            f"dataset {dataset_type.name} {which} in run {run!r}: "
            f"a dataset with that id already exists ({text})"
        )

    # -- writes -------------------------------------------------------------------------------

    def insert(
        self,
        dataset_type: str | DatasetType,
        data_ids: Iterable[Mapping[str, Any]],
        run: str,
        ids: Iterable[uuid.UUID] | None = None,
    ) -> list[DatasetRef]:
        """Insert new datasets into RUN ``run``; ConflictingDefinitionError if one already exists."""
        with self._db.transaction() as conn:
            dt_id, dt = self._types.resolve(conn, dataset_type)
            run_id = self._collections.run_id(conn, run)
            coords = [self.coerce_data_id(dt, d) for d in data_ids]
            id_list = [uuid.uuid4() for _ in coords] if ids is None else list(ids)
            if len(id_list) != len(coords):
                raise ValueError(f"got {len(id_list)} ids for {len(coords)} data IDs")
            if len(coords) == 1:
                self._records.check_data_id(conn, coords[0])
            else:
                self._records.check_data_ids(conn, coords)
            rows = []
            keys: dict[str, DataCoordinate] = {}
            for ref_id, coord in zip(id_list, coords, strict=True):
                row = self._row(ref_id, dt_id, run_id, coord)
                if row["data_id_key"] in keys:
                    raise ConflictingDefinitionError(
                        f"dataset {dt.name} with data ID {{{coord}}} given twice for run {run!r}"
                    )
                keys[row["data_id_key"]] = coord
                rows.append(row)
            if not rows:
                return []
            if len(rows) > 1:
                self._check_absent(conn, dt, dt_id, run, run_id, keys)
            try:
                conn.execute(self._insert_stmt, rows)
            except sa.exc.IntegrityError as err:
                raise self._integrity(err, dt, coords, run) from err
        return [DatasetRef(i, dt, c, run) for i, c in zip(id_list, coords, strict=True)]

    def _check_absent(
        self,
        conn: sa.Connection,
        dt: DatasetType,
        dt_id: int,
        run: str,
        run_id: int,
        keys: Mapping[str, DataCoordinate],
    ) -> None:
        """Name the first already-present data ID of a batch, which an IntegrityError cannot do."""
        t = self._table
        for part in chunks(list(keys)):
            row = conn.execute(
                sa.select(t.c.data_id_key)
                .where(t.c.dataset_type_id == dt_id, t.c.run_id == run_id, t.c.data_id_key.in_(part))
                .limit(1)
            ).first()
            if row is not None:
                raise ConflictingDefinitionError(
                    f"dataset {dt.name} with data ID {{{keys[row[0]]}}} already exists in run {run!r}"
                )

    def import_refs(self, refs: Iterable[DatasetRef]) -> list[DatasetRef]:
        """Insert ``refs`` with their own UUIDs, skipping UUIDs already present with the same meaning."""
        pending: dict[uuid.UUID, DatasetRef] = {}
        for ref in refs:
            previous = pending.get(ref.id)
            if previous is not None and previous != ref:
                raise ConflictingDefinitionError(f"dataset id {ref.id} given for both {previous} and {ref}")
            pending[ref.id] = ref
        if not pending:
            return []
        inserted: list[DatasetRef] = []
        with self._db.transaction() as conn:
            existing = self._fetch_refs(conn, list(pending))
            for ref_id, old in existing.items():
                new = pending.pop(ref_id)
                if (old.dataset_type.name, old.data_id, old.run) != (
                    new.dataset_type.name,
                    new.data_id,
                    new.run,
                ):
                    raise ConflictingDefinitionError(
                        f"dataset id {ref_id} already exists as {old}, not {new}"
                    )
            groups: dict[tuple[str, str], list[DatasetRef]] = {}
            for ref in pending.values():
                groups.setdefault((ref.dataset_type.name, ref.run), []).append(ref)
            resolved = []
            distinct: set[DataCoordinate] = set()
            for (_, run), group in groups.items():
                dt_id, dt = self._types.resolve(conn, group[0].dataset_type)
                coords = [self.coerce_data_id(dt, ref.data_id) for ref in group]
                distinct.update(coords)
                resolved.append((run, group, dt_id, dt, coords))
            # Once over the distinct data IDs: a merge's dataset types share most of theirs (an
            # output and its quantum's log and metadata), and the cache only fills at commit.
            self._records.check_data_ids(conn, distinct)
            for run, group, dt_id, dt, coords in resolved:
                self._collections.register_run(run)
                run_id = self._collections.run_id(conn, run)
                rows = []
                for ref, coord in zip(group, coords, strict=True):
                    rows.append(self._row(ref.id, dt_id, run_id, coord))
                    inserted.append(DatasetRef(ref.id, dt, coord, run))
                stmt = self._db.insert_ignore(self._table, ["id"])
                try:
                    for part in chunks(rows, 5000):
                        conn.execute(stmt, list(part))
                except sa.exc.IntegrityError as err:
                    raise self._integrity(err, dt, coords, run) from err
        return inserted

    def remove(self, refs: Iterable[DatasetRef]) -> None:
        ids = [ref.id for ref in refs]
        with self._db.transaction() as conn:
            for part in chunks(ids):
                conn.execute(sa.delete(self._table).where(self._table.c.id.in_(part)))

    # -- reads --------------------------------------------------------------------------------

    def _ref_from_row(self, conn: sa.Connection, row: sa.RowMapping) -> DatasetRef:
        dt = self._types.by_id(conn, row["dataset_type_id"])
        coord = DataCoordinate(dt.dimensions, tuple(row[d] for d in dt.dimensions))
        return DatasetRef(row["id"], dt, coord, self._collections.name_of(conn, row["run_id"]))

    def _fetch_refs(self, conn: sa.Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, DatasetRef]:
        out: dict[uuid.UUID, DatasetRef] = {}
        t = self._table
        for part in chunks(ids):
            for row in conn.execute(sa.select(t).where(t.c.id.in_(part))).mappings():
                ref = self._ref_from_row(conn, row)
                out[ref.id] = ref
        return out

    def get(self, ref_id: uuid.UUID) -> DatasetRef | None:
        with self._db.connection() as conn:
            row = conn.execute(self._by_id_stmt, {"id": ref_id}).mappings().first()
            return None if row is None else self._ref_from_row(conn, row)

    def find(
        self, dataset_type: str | DatasetType, data_id: Mapping[str, Any], collections: str | Iterable[str]
    ) -> DatasetRef | None:
        """The dataset in the first of ``collections`` (flattened to runs) that has one."""
        with self._db.connection() as conn:
            dt_id, dt = self._types.resolve(conn, dataset_type)
            coord = self.coerce_data_id(dt, data_id)
            runs = self._collections.resolve(conn, collections)
            if not runs:
                return None
            rows = conn.execute(
                self._find_stmt,
                {"dt": dt_id, "key": data_id_key(coord.values_tuple), "runs": [rid for _, rid in runs]},
            ).all()
        if not rows:
            return None
        by_run = {int(run_id): ref_id for ref_id, run_id in rows}
        for name, rid in runs:
            if rid in by_run:
                return DatasetRef(by_run[rid], dt, coord, name)
        return None

    def query(
        self,
        dataset_type: str | DatasetType,
        collections: str | Iterable[str],
        where: str | None = None,
        data_id: Mapping[str, Any] | None = None,
        find_first: bool = True,
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[DatasetRef]:
        """Datasets of one type in ``collections`` matching ``data_id`` and the ``where`` expression.

        Without ``order_by`` or ``limit`` the result is sorted by data ID.  ``order_by`` names
        dimensions (``detector``) or dimension fields (``exposure.exposure_time``), each with a
        leading ``-`` for descending order; the database sorts by them, then by data ID, and
        ``limit`` keeps the first rows of that order.
        """
        with self._db.connection() as conn:
            dt_id, dt = self._types.resolve(conn, dataset_type)
            runs = self._collections.resolve(conn, collections)
            if not runs:
                return []
            t = self._table
            resolver = DatasetQueryResolver(self._universe, dt, t, self._records.layouts)
            run_ids = [rid for _, rid in runs]
            conds: list[sa.ColumnElement[bool]] = [t.c.dataset_type_id == dt_id, t.c.run_id.in_(run_ids)]
            for name, value in (data_id or {}).items():
                try:
                    dim = self._universe[name]
                except UnknownDimensionError as err:
                    raise QueryError(str(err)) from None
                try:
                    conds.append(resolver.dimension_key(name) == dim.coerce_key(value))
                except InvalidDataIdError as err:
                    raise QueryError(str(err)) from None
            if where is not None and where.strip():
                from ..query import compile_where, parse

                conds.append(compile_where(parse(where), resolver))
            sorted_in_sql = bool(order_by) or limit is not None
            sort_by: list[tuple[sa.ColumnElement[Any], bool]]
            rank = sa.case({rid: i for i, rid in enumerate(run_ids)}, value=t.c.run_id)
            # Sort keys as labelled columns, so the find-first query can sort its outer select.
            keys = [
                (column.label(f"_order{i}"), descending)
                for i, (column, descending) in enumerate(_order_columns(resolver, order_by))
            ]
            keys += [(t.c[d].label(f"_order_{d}"), False) for d in dt.dimensions]
            keys.append((rank.label("_order_rank"), False))
            cols = [t.c.id, t.c.run_id, *(t.c[d] for d in dt.dimensions)]
            extra = [key for key, _ in keys] if sorted_in_sql else []
            if find_first and len(run_ids) > 1:
                row_number = sa.func.row_number().over(partition_by=t.c.data_id_key, order_by=rank)
                inner = (
                    sa.select(*cols, *extra, row_number.label("_rn"))
                    .select_from(resolver.from_clause)
                    .where(*conds)
                )
                sub = inner.subquery("found")
                stmt = sa.select(*(sub.c[c.name] for c in cols)).where(sub.c["_rn"] == 1)
                sort_by = [(sub.c[key.name], descending) for key, descending in keys] if extra else []
            else:
                stmt = sa.select(*cols).select_from(resolver.from_clause).where(*conds)
                sort_by = [(key.element, descending) for key, descending in keys]
            if sorted_in_sql:
                stmt = stmt.order_by(*(c.desc() if descending else c.asc() for c, descending in sort_by))
                if limit is not None:
                    stmt = stmt.limit(limit)
            try:
                rows = list(conn.execute(stmt).all())
            except sa.exc.StatementError as err:
                raise QueryError(f"query on {dt.name} could not be evaluated: {err.orig}") from err
        names = {rid: name for name, rid in runs}
        order = {rid: i for i, rid in enumerate(run_ids)}
        if not sorted_in_sql:
            rows.sort(key=lambda r: (tuple(r[2:]), order[r[1]]))
        return [
            DatasetRef(row[0], dt, DataCoordinate(dt.dimensions, tuple(row[2:])), names[row[1]])
            for row in rows
        ]


def _order_columns(
    resolver: DatasetQueryResolver, order_by: Sequence[str]
) -> list[tuple[sa.ColumnElement[Any], bool]]:
    """(column, descending) for each ``[-]dimension`` or ``[-]dimension.field`` of ``order_by``."""
    out = []
    for term in order_by:
        name = term.strip()
        descending = name.startswith("-")
        name = name.removeprefix("-").strip()
        element, dot, field = name.partition(".")
        if not element or (dot and not field):
            raise QueryError(
                f"order by {term!r}: expected DIMENSION or DIMENSION.FIELD, optionally after '-'"
            )
        try:
            column = resolver.dimension_field(element, field) if dot else resolver.dimension_key(element)
        except QueryError as err:
            raise QueryError(f"order by {term!r}: {err}") from None
        out.append((column, descending))
    return out

"""Dimension records: validation, insertion, lookup and the in-memory cache of known keys.

Every data ID a dataset is stored under must name registered records, so this check sits on the
hot path of ``Butler.put``.  Records are never updated or deleted, which makes two caches safe:
the set of keys known to exist per element, and each record's implied values.  Both are filled
only after the transaction that saw the rows commits, so a rolled-back insert can never leave a
key that does not exist in the cache.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .._dimensions import INT64_MAX, INT64_MIN, INT64_RANGE, DataCoordinate, DataIdValue, DimensionUniverse
from .._exceptions import (
    ConflictingDefinitionError,
    DimensionRecordError,
    DimensionValueError,
    InvalidDataIdError,
    UnknownDimensionError,
)
from ._database import Database, chunks
from ._tables import metadata_columns

Key = tuple[DataIdValue, ...]


@dataclass(frozen=True, slots=True)
class ElementLayout:
    """How one dimension's records map onto its table; computed once per element."""

    name: str
    table: sa.Table
    required: tuple[str, ...]
    """Required dimensions other than the element itself, in universe order."""
    key_name: str
    implies: tuple[str, ...]
    metadata: Mapping[str, str]
    """Metadata field -> type name."""
    metadata_cols: Mapping[str, tuple[str, ...]]
    pk_cols: tuple[str, ...]
    pk_dims: tuple[str, ...]
    """``required`` plus the element itself: the dimensions whose values form its key."""
    dependencies: tuple[tuple[str, tuple[str, ...]], ...]
    """(dimension, columns of this table forming its key) for each directly required/implied one."""

    @property
    def accepted(self) -> frozenset[str]:
        return frozenset(self.required + (self.key_name,) + self.implies + tuple(self.metadata))

    def key_of(self, row: Mapping[str, Any]) -> Key:
        return tuple(row[c] for c in self.pk_cols)


def describe_key(element: str, required: tuple[str, ...], key: Key) -> str:
    """Human wording for a record key: ``detector=99 ... for instrument=Cam``."""
    own = f"{element}={key[-1]}"
    if not required:
        return f"{own} is not a registered value"
    context = ", ".join(f"{r}={v}" for r, v in zip(required, key[:-1], strict=True))
    return f"{own} is not a registered value for {context}"


class DimensionRecordManager:
    """Owns the dimension tables and answers "does this record exist" cheaply."""

    def __init__(self, db: Database, universe: DimensionUniverse, tables: Mapping[str, sa.Table]) -> None:
        self._db = db
        self._universe = universe
        self._layouts: dict[str, ElementLayout] = {}
        for dim in universe:
            required = tuple(d for d in universe.required_closure([dim.name]) if d != dim.name)
            deps = []
            for other in dim.requires + dim.implies:
                other_required = tuple(d for d in universe.required_closure([other]) if d != other)
                if set(other_required) <= set(required):
                    deps.append((other, other_required + (other,)))
            self._layouts[dim.name] = ElementLayout(
                name=dim.name,
                table=tables[dim.name],
                required=required,
                key_name=dim.key_name,
                implies=dim.implies,
                metadata=dict(dim.metadata),
                metadata_cols=metadata_columns(dim),
                pk_cols=required + (dim.key_name,),
                pk_dims=required + (dim.name,),
                dependencies=tuple(deps),
            )
        self._known: dict[str, set[Key]] = {name: set() for name in self._layouts}
        self._implied: dict[str, dict[Key, tuple[DataIdValue, ...]]] = {name: {} for name in self._layouts}
        self._lookup_stmts: dict[str, sa.Select[Any]] = {}

    @property
    def layouts(self) -> Mapping[str, ElementLayout]:
        return self._layouts

    def layout(self, element: str) -> ElementLayout:
        try:
            return self._layouts[element]
        except KeyError:
            raise UnknownDimensionError(
                f"unknown dimension element {element!r}; known: {', '.join(self._layouts)}"
            ) from None

    # -- validation -------------------------------------------------------------------------

    def _coerce_key(self, element: str, dim_name: str, value: Any) -> DataIdValue:
        try:
            return self._universe[dim_name].coerce_key(value)
        except InvalidDataIdError as err:
            raise DimensionRecordError(f"{element} record: {err}") from None

    def _coerce_metadata(self, element: str, field: str, mtype: str, value: Any) -> tuple[Any, ...]:
        """Check a metadata value's type and return the value(s) for its column(s)."""
        bad = DimensionRecordError(f"{element} record: field {field} must be {mtype}, got {value!r}")
        if mtype == "timespan":
            if value is None:
                return (None, None)
            if isinstance(value, Mapping):
                extra = set(value) - {"begin", "end"}
                if extra:
                    raise DimensionRecordError(
                        f"{element} record: timespan {field} has unknown keys {', '.join(sorted(extra))}"
                    )
                parts = (value.get("begin"), value.get("end"))
            elif isinstance(value, list | tuple) and len(value) == 2:
                parts = (value[0], value[1])
            else:
                raise bad
            out: list[str | None] = []
            for part in parts:
                if isinstance(part, datetime.date):
                    out.append(part.isoformat())
                elif part is None or isinstance(part, str):
                    out.append(part)
                else:
                    raise bad
            return tuple(out)
        if value is None:
            return (None,)
        if mtype == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
            if not INT64_MIN <= value <= INT64_MAX:
                raise DimensionRecordError(
                    f"{element} record: field {field}={value} is out of range: {INT64_RANGE}"
                )
            return (value,)
        if mtype == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad
            return (float(value),)
        if not isinstance(value, str):
            raise bad
        return (value,)

    def normalize(self, element: str, record: Any) -> dict[str, Any]:
        """Validate one record and return the row to insert."""
        layout = self.layout(element)
        if not isinstance(record, Mapping):
            raise DimensionRecordError(f"{element} record must be a mapping, got {record!r}")
        unknown = set(record) - layout.accepted
        if unknown:
            raise DimensionRecordError(
                f"{element} record has unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                f"allowed: {', '.join(sorted(layout.accepted))}"
            )
        mandatory = layout.required + (layout.key_name,) + layout.implies
        missing = [f for f in mandatory if record.get(f) is None]
        if missing:
            raise DimensionRecordError(
                f"{element} record {dict(record)} lacks required field(s) {', '.join(missing)}"
            )
        row: dict[str, Any] = {}
        for name in layout.required + layout.implies:
            row[name] = self._coerce_key(element, name, record[name])
        row[layout.key_name] = self._coerce_key(element, element, record[layout.key_name])
        for field, mtype in layout.metadata.items():
            values = self._coerce_metadata(element, field, mtype, record.get(field))
            row.update(zip(layout.metadata_cols[field], values, strict=True))
        return row

    # -- existence ----------------------------------------------------------------------------

    def missing(self, conn: sa.Connection, element: str, keys: Iterable[Key]) -> set[Key]:
        """The subset of ``keys`` with no record of ``element`` (cache first, then one query)."""
        known = self._known[element]
        todo = [k for k in set(keys) if k not in known]
        if not todo:
            return set()
        layout = self._layouts[element]
        table = layout.table
        cols = [table.c[c] for c in layout.pk_cols]
        found: set[Key] = set()
        for part in chunks(todo):
            if len(cols) == 1:
                cond = cols[0].in_([k[0] for k in part])
            else:
                cond = sa.tuple_(*cols).in_(list(part))
            found.update(tuple(r) for r in conn.execute(sa.select(*cols).where(cond)))
        self._db.on_commit(lambda: known.update(found))
        return set(todo) - found

    def all_known(self, data_id: DataCoordinate) -> bool:
        """Whether every value of ``data_id`` is already known to have a record (no query)."""
        layouts, known = self._layouts, self._known
        for dim in data_id.dimensions:
            if tuple(data_id[d] for d in layouts[dim].pk_dims) not in known[dim]:
                return False
        return True

    def check_data_id(self, conn: sa.Connection, data_id: DataCoordinate) -> None:
        """Raise DimensionValueError for the first value of ``data_id`` without a record."""
        for dim in data_id.dimensions:
            key = tuple(data_id[d] for d in self._layouts[dim].pk_dims)
            if key in self._known[dim]:
                continue
            if self.missing(conn, dim, [key]):
                raise DimensionValueError(describe_key(dim, self._layouts[dim].required, key))

    def check_data_ids(self, conn: sa.Connection, data_ids: Iterable[DataCoordinate]) -> None:
        """Like :meth:`check_data_id` for many data IDs, with one query per element, not per value."""
        wanted: dict[str, set[Key]] = {}
        for data_id in data_ids:
            for dim in data_id.dimensions:
                key = tuple(data_id[d] for d in self._layouts[dim].pk_dims)
                if key not in self._known[dim]:
                    wanted.setdefault(dim, set()).add(key)
        for dim in self._universe.sort(wanted):
            absent = self.missing(conn, dim, wanted[dim])
            if absent:
                key = sorted(absent, key=str)[0]
                raise DimensionValueError(describe_key(dim, self._layouts[dim].required, key))

    # -- writes -------------------------------------------------------------------------------

    def insert(
        self, element: str, records: Iterable[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> int:
        """Validate and insert records; returns how many rows were actually inserted."""
        layout = self.layout(element)
        rows: dict[Key, dict[str, Any]] = {}
        for record in records:
            row = self.normalize(element, record)
            key = layout.key_of(row)
            previous = rows.get(key)
            if previous is not None and previous != row:
                raise DimensionRecordError(
                    f"{element} records given twice with different values for key "
                    f"{dict(zip(layout.pk_cols, key, strict=True))}"
                )
            rows[key] = row
        if not rows:
            return 0
        with self._db.transaction() as conn:
            for dep, cols in layout.dependencies:
                wanted = {tuple(row[c] for c in cols): row for row in rows.values()}
                absent = self.missing(conn, dep, wanted)
                if absent:
                    bad_key = sorted(absent, key=str)[0]
                    row = wanted[bad_key]
                    raise DimensionValueError(
                        f"{element} record {dict(zip(layout.pk_cols, layout.key_of(row), strict=True))} "
                        f"refers to {describe_key(dep, self._layouts[dep].required, bad_key)}"
                    )
            existing = set(rows) - self.missing(conn, element, rows)
            if existing and not skip_existing:
                shown = ", ".join(
                    str(dict(zip(layout.pk_cols, k, strict=True))) for k in sorted(existing, key=str)[:5]
                )
                raise ConflictingDefinitionError(
                    f"{len(existing)} {element} record(s) already exist ({shown}); "
                    "use skip_existing (--skip-existing) to ignore them"
                )
            new = [row for key, row in rows.items() if key not in existing]
            if new:
                try:
                    conn.execute(sa.insert(layout.table), new)
                except sa.exc.IntegrityError as err:
                    raise ConflictingDefinitionError(
                        f"could not insert {element} records (inserted concurrently?): {err.orig}"
                    ) from err
            known = self._known[element]
            new_keys = [layout.key_of(row) for row in new]
            self._db.on_commit(lambda: known.update(new_keys))
        return len(new)

    # -- reads --------------------------------------------------------------------------------

    def fetch(self, element: str) -> list[dict[str, Any]]:
        """All records of ``element`` as dicts (timespans folded back into ``{begin, end}``)."""
        layout = self.layout(element)
        table = layout.table
        stmt = sa.select(table).order_by(*(table.c[c] for c in layout.pk_cols))
        with self._db.connection() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for row in rows:
            rec: dict[str, Any] = {c: row[c] for c in layout.required + (layout.key_name,) + layout.implies}
            for field, cols in layout.metadata_cols.items():
                if layout.metadata[field] == "timespan":
                    begin, end = row[cols[0]], row[cols[1]]
                    rec[field] = None if begin is None and end is None else {"begin": begin, "end": end}
                else:
                    rec[field] = row[cols[0]]
            out.append(rec)
        return out

    def _implied_of(self, conn: sa.Connection, element: str, key: Key) -> tuple[DataIdValue, ...] | None:
        """Implied-dimension values of one record (cached), or None if there is no such record."""
        cache = self._implied[element]
        cached = cache.get(key)
        if cached is not None:
            return cached
        layout = self._layouts[element]
        stmt = self._lookup_stmts.get(element)
        if stmt is None:
            table = layout.table
            stmt = sa.select(*(table.c[i] for i in layout.implies)).where(
                *(table.c[c] == sa.bindparam(f"k_{c}") for c in layout.pk_cols)
            )
            self._lookup_stmts[element] = stmt
        row = conn.execute(stmt, {f"k_{c}": v for c, v in zip(layout.pk_cols, key, strict=True)}).first()
        if row is None:
            return None
        values = tuple(row)
        self._db.on_commit(lambda: cache.__setitem__(key, values))
        return values

    def implied_values(
        self, conn: sa.Connection, data_id: Mapping[str, DataIdValue]
    ) -> dict[str, DataIdValue]:
        """Values of every dimension implied (transitively) by ``data_id``, read from records."""
        universe = self._universe
        values: dict[str, DataIdValue] = dict(data_id)
        pending = [d for d in universe.sort(values) if universe[d].implies]
        while pending:
            dim = pending.pop(0)
            layout = self._layouts[dim]
            try:
                key = tuple(values[d] for d in layout.pk_cols[:-1]) + (values[dim],)
            except KeyError:
                continue  # an implied dimension whose required keys are not known here
            implied = self._implied_of(conn, dim, key)
            if implied is None:
                raise DimensionValueError(describe_key(dim, layout.required, key))
            for name, value in zip(layout.implies, implied, strict=True):
                if name not in values:
                    values[name] = value
                    if universe[name].implies:
                        pending.append(name)
        return {k: v for k, v in values.items() if k not in data_id}

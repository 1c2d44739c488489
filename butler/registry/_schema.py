"""Schema as data: table specifications and the one function that turns them into SQLAlchemy tables.

Keeping the schema as plain dataclasses means the dimension tables and the dataset table can be
*generated* from the dimension universe, the whole schema can be inspected without a database,
and exactly one place (:func:`build_table`) decides how a logical field type maps onto a column
type that works on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

FieldType = Literal["int", "bigint", "float", "string", "text", "uuid"]
"""Logical column types.

``int`` is for small surrogate ids (autoincrement works on SQLite only with INTEGER);
``bigint`` for dimension keys, which can exceed 2**31 (exposure ids built from dates do).
"""

#: Constraint names are generated, never written by hand, and stay short enough for PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One column: its name, logical type and constraints."""

    name: str
    dtype: FieldType
    nullable: bool = True
    primary_key: bool = False
    autoincrement: bool = False
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ForeignKeySpec:
    """A (possibly composite) foreign key from ``source`` columns to ``target`` columns of ``table``."""

    table: str
    source: tuple[str, ...]
    target: tuple[str, ...]
    on_delete: Literal["CASCADE", "SET NULL"] | None = None


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A whole table: fields (primary key marked on the fields), unique sets, indexes and foreign keys."""

    name: str
    fields: tuple[FieldSpec, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    foreign_keys: tuple[ForeignKeySpec, ...] = field(default_factory=tuple)
    doc: str = ""

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def __post_init__(self) -> None:
        names = self.field_names
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"table {self.name}: duplicate column names {', '.join(dups)}")
        for group in self.unique + self.indexes + tuple(fk.source for fk in self.foreign_keys):
            for col in group:
                if col not in names:
                    raise ValueError(f"table {self.name}: constraint refers to unknown column {col}")


def _column_type(dtype: FieldType) -> sa.types.TypeEngine[Any]:
    """Map a logical type onto a portable SQLAlchemy type."""
    if dtype == "int":
        return sa.Integer()
    if dtype == "bigint":
        # SQLite only makes INTEGER PRIMARY KEY an alias of the rowid; BIGINT behaves the same
        # for storage, so keep BIGINT everywhere for PostgreSQL's sake.
        return sa.BigInteger()
    if dtype == "float":
        return sa.Float()
    if dtype == "string":
        return sa.String()
    if dtype == "text":
        return sa.Text()
    if dtype == "uuid":
        return sa.Uuid(as_uuid=True)
    raise ValueError(f"unknown field type {dtype!r}")


def build_table(metadata: sa.MetaData, spec: TableSpec) -> sa.Table:
    """Create the SQLAlchemy Core table for ``spec`` inside ``metadata``.

    This is the only function that turns specifications into SQLAlchemy objects, so portability
    decisions (types, constraint naming) live in one place.
    """
    items: list[Any] = []
    for f in spec.fields:
        items.append(
            sa.Column(
                f.name,
                _column_type(f.dtype),
                primary_key=f.primary_key,
                nullable=f.nullable and not f.primary_key,
                autoincrement=f.autoincrement if f.primary_key else False,
                comment=f.doc or None,
            )
        )
    for group in spec.unique:
        items.append(sa.UniqueConstraint(*group))
    for fk in spec.foreign_keys:
        items.append(
            sa.ForeignKeyConstraint(
                list(fk.source),
                [f"{fk.table}.{col}" for col in fk.target],
                ondelete=fk.on_delete,
            )
        )
    table = sa.Table(spec.name, metadata, *items, comment=spec.doc or None)
    for group in spec.indexes:
        sa.Index(f"ix_{spec.name}_{'_'.join(group)}", *(table.c[col] for col in group))
    return table

"""The registry schema: fixed tables plus tables generated from the dimension universe.

Dimension tables and the dataset table's dimension columns are derived from the universe, so a
repository created with a custom universe gets matching tables with no code change.  Column
naming follows docs/contracts.md: a dimension's key column in *other* tables is named by the
dimension (``detector``), inside its own table by its key name (``id``/``name``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .._dimensions import Dimension, DimensionUniverse
from .._exceptions import DimensionRecordError
from ._schema import NAMING_CONVENTION, FieldSpec, FieldType, ForeignKeySpec, TableSpec, build_table

ATTRIBUTES = TableSpec(
    "butler_attributes",
    (FieldSpec("name", "string", primary_key=True), FieldSpec("value", "text", nullable=False)),
    doc="Repository-wide key/value settings (schema version, dimension universe YAML).",
)

DATASET_TYPE = TableSpec(
    "dataset_type",
    (
        FieldSpec("id", "int", primary_key=True, autoincrement=True),
        FieldSpec("name", "string", nullable=False),
        FieldSpec("dimensions", "text", nullable=False, doc="space-separated required dimensions"),
        FieldSpec("storage_class", "string", nullable=False),
    ),
    unique=(("name",),),
)

COLLECTION = TableSpec(
    "collection",
    (
        FieldSpec("id", "int", primary_key=True, autoincrement=True),
        FieldSpec("name", "string", nullable=False),
        FieldSpec("type", "string", nullable=False, doc="RUN or CHAINED"),
        FieldSpec("doc", "text", nullable=False),
    ),
    unique=(("name",),),
)

COLLECTION_CHAIN = TableSpec(
    "collection_chain",
    (
        FieldSpec("parent", "int", primary_key=True),
        FieldSpec("position", "int", primary_key=True),
        FieldSpec("child", "int", nullable=False),
    ),
    foreign_keys=(
        ForeignKeySpec("collection", ("parent",), ("id",), on_delete="CASCADE"),
        ForeignKeySpec("collection", ("child",), ("id",)),
    ),
)

#: Columns of the dataset table that are not dimensions; a universe may not use these names.
DATASET_FIXED_COLUMNS = ("id", "dataset_type_id", "run_id", "data_id_key")

#: Tables a dimension may not shadow (the datastore's records table lives in the same database).
RESERVED_TABLE_NAMES = frozenset(
    {
        "butler_attributes",
        "dataset_type",
        "collection",
        "collection_chain",
        "dataset",
        "file_datastore_records",
    }
)

_METADATA_TYPES: dict[str, FieldType] = {"int": "bigint", "float": "float", "string": "string"}


def key_dtype(dim: Dimension) -> FieldType:
    return "bigint" if dim.key_type is int else "string"


def metadata_columns(dim: Dimension) -> dict[str, tuple[str, ...]]:
    """Map each metadata field to its column(s): a timespan becomes ``<f>_begin`` and ``<f>_end``."""
    return {
        name: (f"{name}_begin", f"{name}_end") if mtype == "timespan" else (name,)
        for name, mtype in dim.metadata.items()
    }


def dimension_table_spec(universe: DimensionUniverse, dim: Dimension) -> TableSpec:
    """The table holding records of ``dim``: required keys, own key, implied keys, metadata."""
    required = tuple(d for d in universe.required_closure([dim.name]) if d != dim.name)
    fields: list[FieldSpec] = [FieldSpec(r, key_dtype(universe[r]), primary_key=True) for r in required]
    fields.append(FieldSpec(dim.key_name, key_dtype(dim), primary_key=True))
    fields.extend(FieldSpec(i, key_dtype(universe[i]), nullable=False) for i in dim.implies)
    for mname, mtype in dim.metadata.items():
        for col in metadata_columns(dim)[mname]:
            fields.append(FieldSpec(col, _METADATA_TYPES.get(mtype, "string")))
    fks: list[ForeignKeySpec] = []
    for other in dim.requires + dim.implies:
        other_dim = universe[other]
        other_required = tuple(d for d in universe.required_closure([other]) if d != other)
        if not set(other_required) <= set(required):
            # Cannot express the link as a foreign key; records are still checked in Python.
            continue
        fks.append(ForeignKeySpec(other, other_required + (other,), other_required + (other_dim.key_name,)))
    try:
        return TableSpec(dim.name, tuple(fields), foreign_keys=tuple(fks))
    except ValueError as err:
        raise DimensionRecordError(f"dimension {dim.name} cannot be stored: {err}") from None


def dataset_table_spec(universe: DimensionUniverse) -> TableSpec:
    """The dataset table: one nullable column per dimension plus the canonical data ID string."""
    fields = [
        FieldSpec("id", "uuid", primary_key=True),
        FieldSpec("dataset_type_id", "int", nullable=False),
        FieldSpec("run_id", "int", nullable=False),
    ]
    fks = [
        ForeignKeySpec("dataset_type", ("dataset_type_id",), ("id",)),
        ForeignKeySpec("collection", ("run_id",), ("id",)),
    ]
    for dim in universe:
        fields.append(FieldSpec(dim.name, key_dtype(dim)))
        required = universe.required_closure([dim.name])
        fks.append(
            ForeignKeySpec(dim.name, required, tuple(r for r in required if r != dim.name) + (dim.key_name,))
        )
    fields.append(FieldSpec("data_id_key", "string", nullable=False))
    return TableSpec(
        "dataset",
        tuple(fields),
        unique=(("dataset_type_id", "run_id", "data_id_key"),),
        foreign_keys=tuple(fks),
    )


@dataclass(frozen=True, slots=True)
class RegistryTables:
    """Every registry table, built once per universe."""

    metadata: sa.MetaData
    attributes: sa.Table
    dataset_type: sa.Table
    collection: sa.Table
    collection_chain: sa.Table
    dataset: sa.Table
    dimensions: dict[str, sa.Table]


def build_registry_tables(universe: DimensionUniverse, metadata: sa.MetaData | None = None) -> RegistryTables:
    """Build all registry tables for ``universe`` into ``metadata`` (a new one by default)."""
    for dim in universe:
        if dim.name in RESERVED_TABLE_NAMES or dim.name in DATASET_FIXED_COLUMNS:
            raise DimensionRecordError(f"dimension name {dim.name!r} is reserved by the registry schema")
    if metadata is None:
        metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    fixed = {
        spec.name: build_table(metadata, spec)
        for spec in (ATTRIBUTES, DATASET_TYPE, COLLECTION, COLLECTION_CHAIN)
    }
    dims = {dim.name: build_table(metadata, dimension_table_spec(universe, dim)) for dim in universe}
    dataset = build_table(metadata, dataset_table_spec(universe))
    return RegistryTables(
        metadata=metadata,
        attributes=fixed["butler_attributes"],
        dataset_type=fixed["dataset_type"],
        collection=fixed["collection"],
        collection_chain=fixed["collection_chain"],
        dataset=dataset,
        dimensions=dims,
    )

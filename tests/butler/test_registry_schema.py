"""The schema as data: table specifications and the tables generated from the universe."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from butler import DimensionRecordError, DimensionUniverse
from butler.registry import FieldSpec, ForeignKeySpec, TableSpec, build_registry_tables, build_table


def test_build_table_from_spec() -> None:
    metadata = sa.MetaData()
    build_table(
        metadata, TableSpec("parent", (FieldSpec("id", "int", primary_key=True, autoincrement=True),))
    )
    spec = TableSpec(
        "child",
        (
            FieldSpec("id", "uuid", primary_key=True),
            FieldSpec("parent_id", "int", nullable=False),
            FieldSpec("value", "float"),
            FieldSpec("label", "string"),
        ),
        unique=(("parent_id", "label"),),
        indexes=(("value",),),
        foreign_keys=(ForeignKeySpec("parent", ("parent_id",), ("id",), on_delete="CASCADE"),),
    )
    table = build_table(metadata, spec)
    assert [c.name for c in table.primary_key] == ["id"]
    assert isinstance(table.c.id.type, sa.Uuid)
    assert table.c.parent_id.nullable is False and table.c.value.nullable is True
    (fk,) = table.foreign_key_constraints
    assert fk.referred_table.name == "parent" and fk.ondelete == "CASCADE"
    assert any(isinstance(c, sa.UniqueConstraint) for c in table.constraints)
    assert [i.name for i in table.indexes] == ["ix_child_value"]
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)  # the generated DDL is valid


def test_table_spec_validates_columns() -> None:
    with pytest.raises(ValueError, match="duplicate column"):
        TableSpec("t", (FieldSpec("a", "int"), FieldSpec("a", "string")))
    with pytest.raises(ValueError, match="unknown column b"):
        TableSpec("t", (FieldSpec("a", "int"),), unique=(("b",),))


def test_generated_tables_follow_the_universe() -> None:
    universe = DimensionUniverse.default()
    tables = build_registry_tables(universe)
    dataset = tables.dataset
    assert {d.name for d in universe} <= set(dataset.c.keys())
    assert all(dataset.c[d.name].nullable for d in universe)
    assert "data_id_key" in dataset.c
    uniques = [c for c in dataset.constraints if isinstance(c, sa.UniqueConstraint)]
    assert [[col.name for col in u.columns] for u in uniques] == [
        ["dataset_type_id", "run_id", "data_id_key"]
    ]

    exposure = tables.dimensions["exposure"]
    assert [c.name for c in exposure.primary_key] == ["instrument", "id"]
    assert {"physical_filter", "day_obs", "timespan_begin", "timespan_end", "exposure_time"} <= set(
        exposure.c.keys()
    )
    assert exposure.c.physical_filter.nullable is False
    referred = {
        fk.referred_table.name: [c.name for c in fk.columns] for fk in exposure.foreign_key_constraints
    }
    assert referred == {
        "instrument": ["instrument"],
        "physical_filter": ["instrument", "physical_filter"],
        "day_obs": ["instrument", "day_obs"],
    }
    patch = tables.dimensions["patch"]
    assert [c.name for c in patch.primary_key] == ["skymap", "tract", "id"]


def test_reserved_dimension_names_are_refused() -> None:
    config = dict(DimensionUniverse.default().config)
    config["dimensions"] = {**config["dimensions"], "dataset": {"key": {"name": "name", "type": "string"}}}
    with pytest.raises(DimensionRecordError, match="reserved"):
        build_registry_tables(DimensionUniverse(config))

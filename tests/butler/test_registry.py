"""Registry contract tests: run against every database backend through the ``db_url`` fixture."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from butler_testdata import DETECTORS, EXPOSURES, dimension_data

from butler import (
    CollectionTypeError,
    ConflictingDefinitionError,
    DatasetRef,
    DatasetType,
    DimensionRecordError,
    DimensionUniverse,
    DimensionValueError,
    InvalidDataIdError,
    MissingCollectionError,
    MissingDatasetTypeError,
    RepositoryError,
    UnknownDimensionError,
)
from butler.registry import Registry


def raw_type(universe: DimensionUniverse) -> DatasetType:
    return DatasetType.build("raw", ("exposure", "detector"), "StructuredDataDict", universe)


# -- creation and opening ---------------------------------------------------------------------


def test_create_then_open_keeps_universe_and_contents(db_url: str, universe: DimensionUniverse) -> None:
    reg = Registry.create(db_url, universe)
    reg.insert_dimension_data(dimension_data())
    reg.register_dataset_type(raw_type(universe))
    reg.close()
    reopened = Registry.open(db_url)
    try:
        assert reopened.universe.names == universe.names
        assert reopened.get_dataset_type("raw") == raw_type(universe)
        assert [r["id"] for r in reopened.fetch_dimension_records("detector")] == list(DETECTORS)
    finally:
        reopened.close()


def test_create_refuses_existing_registry(db_url: str, universe: DimensionUniverse) -> None:
    Registry.create(db_url, universe).close()
    with pytest.raises(RepositoryError, match="already exists"):
        Registry.create(db_url, universe)


def test_open_missing_sqlite_file_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sqlite3"
    with pytest.raises(RepositoryError, match="no registry"):
        Registry.open(f"sqlite:///{path}")
    assert not path.exists()


def test_open_empty_database_is_repository_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    sa.create_engine(f"sqlite:///{path}").connect().close()
    path.touch()
    with pytest.raises(RepositoryError, match="no registry found"):
        Registry.open(f"sqlite:///{path}")


def test_sqlite_connections_have_pragmas(tmp_path: Path, universe: DimensionUniverse) -> None:
    reg = Registry.create(f"sqlite:///{tmp_path / 'r.sqlite3'}", universe)
    with reg.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    reg.close()


def test_unsupported_database_url() -> None:
    with pytest.raises(RepositoryError, match="unsupported database"):
        Registry.create("mysql://localhost/x", DimensionUniverse.default())


# -- dimension records ------------------------------------------------------------------------


def test_fetch_dimension_records_folds_timespans(registry: Registry) -> None:
    (day,) = registry.fetch_dimension_records("day_obs")
    assert day == {
        "instrument": "Cam",
        "id": 20260101,
        "timespan": {"begin": "2026-01-01", "end": "2026-01-02"},
    }
    exposures = registry.fetch_dimension_records("exposure")
    assert [e["id"] for e in exposures] == list(EXPOSURES)
    assert exposures[0]["physical_filter"] == "r_01"
    assert exposures[0]["exposure_time"] == 5.0
    assert exposures[0]["timespan"] is None
    assert exposures[0]["obs_id"] is None


@pytest.mark.parametrize(
    ("element", "record", "match"),
    [
        ("detector", {"instrument": "Cam", "full_name": "x"}, "lacks required field.*id"),
        ("detector", {"id": 9}, "lacks required field.*instrument"),
        ("detector", {"instrument": "Cam", "id": 9, "colour": "red"}, "unknown field.*colour"),
        ("detector", {"instrument": "Cam", "id": "nine"}, "detector must be an integer"),
        ("detector", {"instrument": "Cam", "id": 9, "full_name": 12}, "full_name must be string"),
        (
            "exposure",
            {"instrument": "Cam", "id": 9, "day_obs": 20260101},
            "lacks required field.*physical_filter",
        ),
        (
            "exposure",
            {
                "instrument": "Cam",
                "id": 9,
                "physical_filter": "r_01",
                "day_obs": 20260101,
                "exposure_time": "long",
            },
            "exposure_time must be float",
        ),
        ("day_obs", {"instrument": "Cam", "id": 1, "timespan": {"start": "x"}}, "unknown keys start"),
        ("instrument", "Cam", "must be a mapping"),
    ],
)
def test_malformed_dimension_records_are_refused(
    registry: Registry, element: str, record: object, match: str
) -> None:
    with pytest.raises(DimensionRecordError, match=match):
        registry.insert_dimension_records(element, [record])  # type: ignore[list-item]


def test_unknown_implied_value_is_dimension_value_error(registry: Registry) -> None:
    record = {"instrument": "Cam", "id": 9, "physical_filter": "zz", "day_obs": 20260101}
    with pytest.raises(
        DimensionValueError, match="physical_filter=zz is not a registered value for instrument=Cam"
    ):
        registry.insert_dimension_records("exposure", [record])


def test_unknown_required_value_is_dimension_value_error(registry: Registry) -> None:
    with pytest.raises(DimensionValueError, match="instrument=Nope is not a registered value"):
        registry.insert_dimension_records("detector", [{"instrument": "Nope", "id": 1}])


def test_unknown_element(registry: Registry) -> None:
    with pytest.raises(UnknownDimensionError, match="visitor"):
        registry.insert_dimension_records("visitor", [{"id": 1}])


def test_duplicate_records_conflict_unless_skipped(registry: Registry) -> None:
    with pytest.raises(ConflictingDefinitionError, match="already exist"):
        registry.insert_dimension_records("detector", [{"instrument": "Cam", "id": 1}])
    records = [{"instrument": "Cam", "id": 1}, {"instrument": "Cam", "id": 7}]
    assert registry.insert_dimension_records("detector", records, skip_existing=True) == 1
    assert [r["id"] for r in registry.fetch_dimension_records("detector")] == [1, 2, 3, 7]


def test_insert_dimension_data_is_all_or_nothing(db_url: str, universe: DimensionUniverse) -> None:
    reg = Registry.create(db_url, universe)
    data = dimension_data()
    data["detector"].append({"instrument": "Cam", "id": 99, "nonsense": 1})
    with pytest.raises(DimensionRecordError):
        reg.insert_dimension_data(data)
    assert reg.fetch_dimension_records("instrument") == []
    reg.close()


def test_expand_data_id(registry: Registry, universe: DimensionUniverse) -> None:
    coord = registry.expand_data_id(
        {"instrument": "Cam", "exposure": "3"}, ["exposure", "detector"], detector=2
    )
    assert dict(coord) == {"instrument": "Cam", "detector": 2, "exposure": 3}
    with pytest.raises(
        DimensionValueError, match="^detector=99 is not a registered value for instrument=Cam$"
    ):
        registry.expand_data_id(
            {"instrument": "Cam", "exposure": 1, "detector": 99}, ["exposure", "detector"]
        )
    with pytest.raises(InvalidDataIdError, match="lacks detector"):
        registry.expand_data_id({"instrument": "Cam", "exposure": 1}, ["exposure", "detector"])
    # Implied values given with the data ID must agree with the records.
    ok = registry.expand_data_id({"instrument": "Cam", "exposure": 1, "band": "r"}, ["exposure"])
    assert dict(ok) == {"instrument": "Cam", "exposure": 1}
    with pytest.raises(InvalidDataIdError, match="band=r in its records, but band=g"):
        registry.expand_data_id({"instrument": "Cam", "exposure": 1, "band": "g"}, ["exposure"])


def test_implied_values_are_transitive(registry: Registry, universe: DimensionUniverse) -> None:
    coord = universe.data_id(["exposure", "detector"], instrument="Cam", exposure=2, detector=1)
    assert registry.implied_values(coord) == {"physical_filter": "g_01", "day_obs": 20260101, "band": "g"}
    missing = universe.data_id(["exposure"], instrument="Cam", exposure=42)
    with pytest.raises(DimensionValueError, match="exposure=42"):
        registry.implied_values(missing)


# -- dataset types --------------------------------------------------------------------------


def test_register_dataset_type(registry: Registry, universe: DimensionUniverse) -> None:
    assert registry.register_dataset_type(raw_type(universe)) is True
    assert registry.register_dataset_type(raw_type(universe)) is False
    # Dimensions are normalised to the required closure, so this is the same definition.
    assert (
        registry.register_dataset_type(DatasetType("raw", ("detector", "exposure"), "StructuredDataDict"))
        is False
    )
    with pytest.raises(ConflictingDefinitionError, match="storage class: Json"):
        registry.register_dataset_type(DatasetType.build("raw", ("exposure", "detector"), "Json", universe))
    with pytest.raises(ConflictingDefinitionError):
        registry.register_dataset_type(
            DatasetType.build("raw", ("exposure",), "StructuredDataDict", universe)
        )
    assert registry.get_dataset_type("raw").dimensions == universe.required_closure(["exposure", "detector"])


def test_missing_dataset_type(registry: Registry) -> None:
    with pytest.raises(MissingDatasetTypeError, match="'calexp' is not registered"):
        registry.get_dataset_type("calexp")


def test_query_dataset_types_glob(registry: Registry, universe: DimensionUniverse) -> None:
    for name in ("raw", "calexp", "calexp_background"):
        registry.register_dataset_type(DatasetType.build(name, ("exposure", "detector"), "Json", universe))
    assert [t.name for t in registry.query_dataset_types()] == ["calexp", "calexp_background", "raw"]
    assert [t.name for t in registry.query_dataset_types("calexp*")] == ["calexp", "calexp_background"]


def test_dataset_type_bad_name(registry: Registry) -> None:
    with pytest.raises(ValueError, match="invalid"):
        registry.register_dataset_type(DatasetType("1raw", (), "Json"))


# -- collections ------------------------------------------------------------------------------


def test_runs_and_chains(registry: Registry) -> None:
    assert registry.register_run("a") is True
    assert registry.register_run("a") is False
    registry.register_run("b")
    registry.register_run("c")
    registry.register_chain("inner", ["b", "a"])
    registry.register_chain("outer", ["c", "inner", "a"])
    assert registry.get_collection_type("a") == "RUN"
    assert registry.get_collection_type("outer") == "CHAINED"
    assert registry.get_chain("outer") == ["c", "inner", "a"]
    assert registry.resolve_collections(["outer"]) == ["c", "b", "a"]
    assert registry.resolve_collections(["a", "outer"]) == ["a", "c", "b"]
    assert registry.resolve_collections("b") == ["b"]
    assert registry.query_collections() == [
        ("a", "RUN"),
        ("b", "RUN"),
        ("c", "RUN"),
        ("inner", "CHAINED"),
        ("outer", "CHAINED"),
    ]
    assert registry.query_collections("?") == [("a", "RUN"), ("b", "RUN"), ("c", "RUN")]


def test_chain_redefinition_and_prepend(registry: Registry) -> None:
    for run in ("a", "b", "c"):
        registry.register_run(run)
    registry.register_chain("ch", ["a", "b"])
    registry.register_chain("ch", ["c", "b"], prepend=True)
    assert registry.get_chain("ch") == ["c", "b", "a"]
    registry.register_chain("ch", ["a"])
    assert registry.get_chain("ch") == ["a"]
    registry.register_chain("ch", [])
    assert registry.resolve_collections("ch") == []


def test_chain_cycles_are_refused(registry: Registry) -> None:
    registry.register_run("r")
    registry.register_chain("x", ["r"])
    registry.register_chain("y", ["x"])
    with pytest.raises(ConflictingDefinitionError, match="cycle: x -> y -> x"):
        registry.register_chain("x", ["y"])
    with pytest.raises(ConflictingDefinitionError, match="cycle"):
        registry.register_chain("x", ["x"])
    assert registry.get_chain("x") == ["r"]


def test_collection_type_errors(registry: Registry) -> None:
    registry.register_run("r")
    registry.register_chain("ch", ["r"])
    with pytest.raises(CollectionTypeError, match="not CHAINED"):
        registry.register_chain("r", [])
    with pytest.raises(CollectionTypeError, match="not a RUN"):
        registry.register_run("ch")
    with pytest.raises(CollectionTypeError):
        registry.get_chain("r")
    with pytest.raises(MissingCollectionError, match="'nope'"):
        registry.register_chain("ch2", ["nope"])
    with pytest.raises(MissingCollectionError, match="'nope'"):
        registry.resolve_collections(["r", "nope"])
    with pytest.raises(MissingCollectionError):
        registry.get_collection_type("nope")
    with pytest.raises(ValueError, match="invalid"):
        registry.register_run("a,b")


def test_chain_changes_are_seen_by_other_registry_instances(registry: Registry, db_url: str) -> None:
    registry.register_run("a")
    registry.register_run("b")
    registry.register_chain("ch", ["a"])
    other = Registry.open(db_url)
    try:
        assert other.resolve_collections("ch") == ["a"]
        registry.register_chain("ch", ["b"], prepend=True)
        assert other.resolve_collections("ch") == ["b", "a"]
    finally:
        other.close()


# -- datasets ---------------------------------------------------------------------------------


def test_insert_and_find(registry: Registry, universe: DimensionUniverse) -> None:
    registry.register_dataset_type(raw_type(universe))
    registry.register_run("run1")
    data_ids = [{"instrument": "Cam", "exposure": e, "detector": d} for e in EXPOSURES for d in DETECTORS]
    refs = registry.insert_datasets("raw", data_ids, "run1")
    assert len(refs) == len(data_ids)
    assert all(r.run == "run1" and r.dataset_type.name == "raw" for r in refs)
    found = registry.find_dataset("raw", {"instrument": "Cam", "exposure": 2, "detector": 3}, ["run1"])
    assert found is not None and found == refs[5]
    assert registry.get_dataset(found.id) == found
    assert registry.find_dataset("raw", {"instrument": "Cam", "exposure": 2, "detector": 3}, []) is None


def test_insert_conflicts_name_the_dataset(registry: Registry, universe: DimensionUniverse) -> None:
    registry.register_dataset_type(raw_type(universe))
    registry.register_run("run1")
    data_id = {"instrument": "Cam", "exposure": 1, "detector": 1}
    registry.insert_datasets("raw", [data_id], "run1")
    pattern = (
        r"dataset raw with data ID \{instrument=Cam, detector=1, exposure=1\} already exists in run 'run1'"
    )
    with pytest.raises(ConflictingDefinitionError, match=pattern):
        registry.insert_datasets("raw", [data_id], "run1")
    batch = [{"instrument": "Cam", "exposure": 2, "detector": 1}, data_id]
    with pytest.raises(ConflictingDefinitionError, match=pattern):
        registry.insert_datasets("raw", batch, "run1")
    with pytest.raises(ConflictingDefinitionError, match="given twice"):
        registry.insert_datasets("raw", [batch[0], batch[0]], "run1")
    # Nothing of the failed batches was inserted.
    assert registry.find_dataset("raw", batch[0], "run1") is None


def test_insert_errors(registry: Registry, universe: DimensionUniverse) -> None:
    registry.register_dataset_type(raw_type(universe))
    registry.register_run("run1")
    registry.register_chain("chain", ["run1"])
    data_id = {"instrument": "Cam", "exposure": 1, "detector": 1}
    with pytest.raises(CollectionTypeError):
        registry.insert_datasets("raw", [data_id], "chain")
    with pytest.raises(MissingCollectionError):
        registry.insert_datasets("raw", [data_id], "nope")
    with pytest.raises(MissingDatasetTypeError):
        registry.insert_datasets("calexp", [data_id], "run1")
    with pytest.raises(DimensionValueError, match="detector=9 is not a registered value for instrument=Cam"):
        registry.insert_datasets("raw", [{**data_id, "detector": 9}], "run1")
    with pytest.raises(DimensionValueError, match="exposure=9"):
        registry.insert_datasets("raw", [data_id, {**data_id, "exposure": 9}], "run1")
    with pytest.raises(InvalidDataIdError, match="lacks detector"):
        registry.insert_datasets("raw", [{"instrument": "Cam", "exposure": 1}], "run1")


def test_insert_with_given_ids(registry: Registry, universe: DimensionUniverse) -> None:
    registry.register_dataset_type(raw_type(universe))
    registry.register_run("run1")
    ids = [uuid.uuid4(), uuid.uuid4()]
    data_ids = [{"instrument": "Cam", "exposure": 1, "detector": d} for d in (1, 2)]
    refs = registry.insert_datasets("raw", data_ids, "run1", ids=ids)
    assert [r.id for r in refs] == ids
    with pytest.raises(ConflictingDefinitionError, match="id already exists"):
        registry.insert_datasets(
            "raw", [{"instrument": "Cam", "exposure": 1, "detector": 3}], "run1", ids=ids[:1]
        )


def test_import_datasets_is_idempotent(registry: Registry, universe: DimensionUniverse) -> None:
    dt = raw_type(universe)
    registry.register_dataset_type(dt)
    refs = [
        DatasetRef(
            uuid.uuid4(), dt, universe.data_id(dt.dimensions, instrument="Cam", exposure=e, detector=1), run
        )
        for e, run in ((1, "out/a"), (2, "out/a"), (3, "out/b"))
    ]
    assert registry.import_datasets(refs) == refs
    assert registry.get_collection_type("out/b") == "RUN"
    assert registry.import_datasets(refs) == []
    assert registry.get_dataset(refs[2].id) == refs[2]
    moved = DatasetRef(refs[0].id, dt, refs[0].data_id, "out/b")
    with pytest.raises(ConflictingDefinitionError, match="already exists as"):
        registry.import_datasets([moved])
    clash = DatasetRef(uuid.uuid4(), dt, refs[0].data_id, "out/a")
    with pytest.raises(ConflictingDefinitionError, match="already exists in run 'out/a'"):
        registry.import_datasets([clash])


def test_find_first_follows_search_order(registry: Registry, universe: DimensionUniverse) -> None:
    registry.register_dataset_type(raw_type(universe))
    for run in ("old", "new"):
        registry.register_run(run)
    data_id = {"instrument": "Cam", "exposure": 1, "detector": 1}
    (old,) = registry.insert_datasets("raw", [data_id], "old")
    (new,) = registry.insert_datasets("raw", [data_id], "new")
    registry.register_chain("defaults", ["new", "old"])
    assert registry.find_dataset("raw", data_id, "defaults") == new
    assert registry.find_dataset("raw", data_id, ["old", "defaults"]) == old
    assert registry.find_dataset("raw", {**data_id, "detector": 2}, "defaults") is None


def test_remove_datasets(registry: Registry, universe: DimensionUniverse) -> None:
    registry.register_dataset_type(raw_type(universe))
    registry.register_run("run1")
    refs = registry.insert_datasets(
        "raw", [{"instrument": "Cam", "exposure": 1, "detector": d} for d in (1, 2)], "run1"
    )
    registry.remove_datasets(refs[:1])
    assert registry.get_dataset(refs[0].id) is None
    assert registry.get_dataset(refs[1].id) == refs[1]


def test_dataset_type_without_dimensions(registry: Registry) -> None:
    registry.register_dataset_type(DatasetType("packages", (), "Json"))
    registry.register_run("run1")
    (ref,) = registry.insert_datasets("packages", [{}], "run1")
    assert registry.find_dataset("packages", {}, "run1") == ref
    with pytest.raises(ConflictingDefinitionError):
        registry.insert_datasets("packages", [{}], "run1")


def test_transaction_rollback_leaves_no_trace(registry: Registry, universe: DimensionUniverse) -> None:
    registry.register_dataset_type(raw_type(universe))
    with pytest.raises(RuntimeError):
        with registry.transaction():
            registry.register_run("ghost")
            registry.insert_datasets("raw", [{"instrument": "Cam", "exposure": 1, "detector": 1}], "ghost")
            registry.insert_dimension_records("detector", [{"instrument": "Cam", "id": 50}])
            raise RuntimeError("abort")
    # Neither the database nor the in-memory caches remember the rolled-back writes.
    with pytest.raises(MissingCollectionError):
        registry.get_collection_type("ghost")
    with pytest.raises(DimensionValueError):
        registry.expand_data_id({"instrument": "Cam", "detector": 50}, ["detector"])
    assert registry.register_run("ghost") is True


def test_nested_transactions_commit_together(registry: Registry, universe: DimensionUniverse) -> None:
    registry.register_dataset_type(raw_type(universe))
    with registry.transaction() as outer:
        registry.register_run("r")
        with registry.transaction() as inner:
            assert inner is outer
            registry.insert_datasets("raw", [{"instrument": "Cam", "exposure": 1, "detector": 1}], "r")
    assert registry.find_dataset("raw", {"instrument": "Cam", "exposure": 1, "detector": 1}, "r") is not None


def test_plain_postgresql_url_uses_the_installed_driver(postgresql_server: Any) -> None:
    name = postgresql_server.create_database()
    url = postgresql_server.url(name).replace("postgresql+psycopg://", "postgresql://")
    try:
        Registry.create(url, DimensionUniverse.default()).close()
        reg = Registry.open(url)
        assert reg.engine.dialect.name == "postgresql"
        reg.close()
    finally:
        postgresql_server.drop_database(name)


def test_badly_typed_data_coordinates_are_normalised(registry: Registry, universe: DimensionUniverse) -> None:
    """1 and "1" must give the same canonical key, or duplicates would slip through."""
    from butler import DataCoordinate

    dt = raw_type(universe)
    registry.register_dataset_type(dt)
    registry.register_run("r")
    registry.insert_datasets(
        "raw", [universe.data_id(dt.dimensions, instrument="Cam", exposure=1, detector=1)], "r"
    )
    sloppy = DataCoordinate(dt.dimensions, tuple("1" if v == 1 else v for v in ("Cam", 1, 1)))
    with pytest.raises(ConflictingDefinitionError):
        registry.insert_datasets("raw", [sloppy], "r")
    assert registry.find_dataset("raw", sloppy, "r") is not None

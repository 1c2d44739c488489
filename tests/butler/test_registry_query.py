"""``Registry.query_datasets``: where expressions, implied dimensions, data ID constraints, find-first."""

from __future__ import annotations

import pytest
from butler_testdata import DETECTORS, EXPOSURES

from butler import DatasetRef, DatasetType, DimensionUniverse, QueryError, QuerySyntaxError
from butler.registry import Registry


@pytest.fixture
def populated(registry: Registry, universe: DimensionUniverse) -> Registry:
    """raw for every exposure x detector in run1; exposure 1 again in run2; a coadd type in run1."""
    registry.register_dataset_type(
        DatasetType.build("raw", ("exposure", "detector"), "StructuredDataDict", universe)
    )
    registry.register_dataset_type(DatasetType.build("deepCoadd", ("tract", "patch"), "Json", universe))
    registry.register_run("run1")
    registry.register_run("run2")
    registry.insert_datasets(
        "raw",
        [{"instrument": "Cam", "exposure": e, "detector": d} for e in EXPOSURES for d in DETECTORS],
        "run1",
    )
    registry.insert_datasets(
        "raw", [{"instrument": "Cam", "exposure": 1, "detector": d} for d in DETECTORS], "run2"
    )
    registry.insert_datasets("deepCoadd", [{"skymap": "sky", "tract": 0, "patch": p} for p in (0, 1)], "run1")
    registry.register_chain("both", ["run2", "run1"])
    return registry


def keys(refs: list[DatasetRef]) -> set[tuple[int, int]]:
    return {(int(r.data_id["exposure"]), int(r.data_id["detector"])) for r in refs}


def exposures(refs: list[DatasetRef]) -> set[int]:
    return {int(r.data_id["exposure"]) for r in refs}


@pytest.mark.parametrize(
    ("where", "expected_exposures"),
    [
        ("exposure.exposure_time > 10", {3, 4, 5, 6}),
        ("band = 'r'", {1, 3, 5}),
        ("band = 'g' AND exposure.exposure_time >= 20", {4, 6}),
        ("physical_filter = 'g_01'", {2, 4, 6}),
        ("exposure.physical_filter = 'r_01'", {1, 3, 5}),
        ("physical_filter.band = 'g'", {2, 4, 6}),
        ("exposure = 1 OR exposure = 2", {1, 2}),
        ("NOT exposure IN (1, 2, 3)", {4, 5, 6}),
        ("exposure NOT IN (1, 2, 3)", {4, 5, 6}),
        ("NOT (band = 'r' OR exposure = 2)", {4, 6}),
        ("exposure.observation_type = 'flat'", {6}),
        ("exposure.id <= 2", {1, 2}),
        ("instrument = 'Cam'", set(EXPOSURES)),
        ("instrument = 'Other'", set()),
        ("day_obs = 20260101", set(EXPOSURES)),
        ("exposure.seq_num > 4", {5, 6}),
        ("", set(EXPOSURES)),
    ],
)
def test_where_selects_exposures(populated: Registry, where: str, expected_exposures: set[int]) -> None:
    refs = populated.query_datasets("raw", ["run1"], where=where)
    assert exposures(refs) == expected_exposures
    assert len(refs) == len(expected_exposures) * len(DETECTORS)


def test_in_list_on_detector(populated: Registry) -> None:
    refs = populated.query_datasets("raw", "run1", where="detector IN (1, 2) AND exposure = 4")
    assert keys(refs) == {(4, 1), (4, 2)}


def test_data_id_constraint_including_implied(populated: Registry) -> None:
    refs = populated.query_datasets("raw", "run1", data_id={"band": "g", "detector": 2})
    assert keys(refs) == {(2, 2), (4, 2), (6, 2)}
    refs = populated.query_datasets("raw", "run1", data_id={"exposure": "3"}, where="detector > 1")
    assert keys(refs) == {(3, 2), (3, 3)}


def test_find_first_across_runs(populated: Registry) -> None:
    first = populated.query_datasets("raw", "both")
    assert len(first) == len(EXPOSURES) * len(DETECTORS)
    assert {r.run for r in first if r.data_id["exposure"] == 1} == {"run2"}
    assert {r.run for r in first if r.data_id["exposure"] != 1} == {"run1"}
    reversed_order = populated.query_datasets("raw", ["run1", "run2"], where="exposure = 1")
    assert {r.run for r in reversed_order} == {"run1"}
    everything = populated.query_datasets("raw", "both", where="exposure = 1", find_first=False)
    assert [(r.data_id["detector"], r.run) for r in everything] == [
        (d, run) for d in DETECTORS for run in ("run2", "run1")
    ]
    # The results agree with find_dataset, one data ID at a time.
    for ref in first:
        assert populated.find_dataset("raw", ref.data_id, "both") == ref


def test_find_first_with_where(populated: Registry) -> None:
    refs = populated.query_datasets("raw", "both", where="band = 'r' AND detector = 1")
    assert sorted((r.data_id["exposure"], r.run) for r in refs) == [(1, "run2"), (3, "run1"), (5, "run1")]


def test_results_are_sorted_by_data_id(populated: Registry) -> None:
    refs = populated.query_datasets("raw", "run1", where="detector = 2")
    assert [r.data_id["exposure"] for r in refs] == sorted(EXPOSURES)


def test_skymap_dimensions(populated: Registry) -> None:
    refs = populated.query_datasets("deepCoadd", "run1", where="skymap = 'sky' AND patch IN (1)")
    assert [(r.data_id["tract"], r.data_id["patch"]) for r in refs] == [(0, 1)]
    assert populated.query_datasets("deepCoadd", "run1", where="tract.ra > 0") == []


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("tract = 0", "'tract' is not among the dimensions of dataset type raw"),
        ("visit = 3", "'visit' is not among the dimensions"),
        ("colour = 'red'", "'colour'.*expected a dimension or dimension.field"),
        ("exposure.nope > 1", "exposure has no field 'nope'"),
        ("detector = 'one'", "cannot compare"),
        ("band = 3", "cannot compare"),
        ("exposure.timespan > 'x'", "timespan"),
    ],
)
def test_bad_where_is_query_error(populated: Registry, where: str, match: str) -> None:
    with pytest.raises(QueryError, match=match):
        populated.query_datasets("raw", "run1", where=where)


@pytest.mark.parametrize("where", ["detector =", "detector IN 1, 2)", "band = 'r", "exposure > 1 AND"])
def test_where_syntax_error(populated: Registry, where: str) -> None:
    with pytest.raises(QuerySyntaxError):
        populated.query_datasets("raw", "run1", where=where)


def test_data_id_with_unknown_dimension_is_query_error(populated: Registry) -> None:
    with pytest.raises(QueryError, match="colour"):
        populated.query_datasets("raw", "run1", data_id={"colour": 1})
    with pytest.raises(QueryError, match="patch"):
        populated.query_datasets("raw", "run1", data_id={"patch": 1})


def test_literals_are_bound_parameters(populated: Registry) -> None:
    assert populated.query_datasets("raw", "run1", where='band = "r\'; DROP TABLE dataset; --"') == []
    assert len(populated.query_datasets("raw", "run1")) == len(EXPOSURES) * len(DETECTORS)

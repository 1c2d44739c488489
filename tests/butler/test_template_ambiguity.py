"""File templates whose fields could run into each other are refused: two datasets, one file.

With ``{run}{datasetType}/{dataId}``, run ``amb/ab`` + type ``c`` and run ``amb/a`` + type ``bc``
both become ``amb/abc/...``: the second write replaces the first dataset's file.  A template is
accepted only if each field ends at a character its values cannot contain (docs/guarantees.md).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from butler import Butler, DatasetRef, DatasetType, DatastorePathError, DimensionUniverse, RepositoryError
from butler.datastore import DEFAULT_TEMPLATE, FileDatastore, FileTemplate

UNIVERSE = DimensionUniverse.default()


def ref(
    type_name: str, run: str, dims: tuple[str, ...] = ("exposure", "detector"), **data_id: object
) -> DatasetRef:
    dt = DatasetType.build(type_name, dims, "StructuredDataDict", UNIVERSE)
    values = data_id or {"instrument": "HSC", "exposure": 42, "detector": 7}
    return DatasetRef(uuid.uuid4(), dt, UNIVERSE.data_id(dt.dimensions, values), run)


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ("{run}{datasetType}/{dataId}", "run"),
        ("{run}-{datasetType}/{dataId}", "run"),
        ("{run}/{datasetType}{dataId}", "datasetType"),
        ("{run}/{datasetType}_{dataId}", "datasetType"),
        ("{run}/{datasetType}/{dataId}_{detector}", "dataId"),
        ("{run}/{datasetType}/{dataId}{detector}", "dataId"),
    ],
)
def test_ambiguous_templates_are_refused(template: str, field: str) -> None:
    with pytest.raises(
        DatastorePathError, match=rf"file template '.*' is ambiguous: \{{{field}\}} is followed by"
    ):
        FileTemplate(template)


def test_the_reported_collision_cannot_happen(tmp_path: Path) -> None:
    with pytest.raises(DatastorePathError, match="ambiguous"):
        FileDatastore(tmp_path, "{run}{datasetType}/{dataId}")


@pytest.mark.parametrize(
    "template",
    [
        DEFAULT_TEMPLATE,  # the second {datasetType} is fixed by the first, so its '_' is fine
        "{run}/{datasetType}/{dataId}",
        "{run}#{datasetType}/{dataId}",  # '#' never occurs in a run name
        "{run}/{datasetType}.{dataId}",  # '.' never occurs in a dataset type name
        "{datasetType}/{run}/{instrument}/{exposure}-{detector}",  # integers end at a non-digit
        "{run}/{instrument}/{datasetType}/{detector}/{datasetType}_{dataId}",
    ],
)
def test_unambiguous_templates_are_accepted(template: str) -> None:
    FileTemplate(template)


def test_string_dimension_needs_a_path_separator(tmp_path: Path) -> None:
    """Whether a dimension's values are strings is known only from a data ID, so it is checked then."""
    store = FileDatastore(tmp_path, "{run}/{datasetType}/{instrument}-{exposure}-{detector}")
    with pytest.raises(DatastorePathError, match=r"ambiguous: \{instrument\} .* string values"):
        store.predict_path(ref("raw", "r"))
    ints = FileDatastore(tmp_path, "{run}/{datasetType}/{instrument}/{exposure}-{detector}")
    assert ints.predict_path(ref("raw", "r")) == "r/raw/HSC/42-7.yaml"


def test_repository_with_an_ambiguous_template_does_not_open(tmp_path: Path) -> None:
    Butler.create(tmp_path / "repo").close()
    config = tmp_path / "repo" / "butler.yaml"
    data = yaml.safe_load(config.read_text())
    data["datastore"]["template"] = "{run}{datasetType}/{dataId}"
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(
        RepositoryError, match=rf"{config}: datastore.template: file template .* is ambiguous"
    ):
        Butler(tmp_path / "repo")

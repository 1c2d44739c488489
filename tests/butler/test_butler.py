"""The Butler facade: repository creation, put/get round trips, lookups and their errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from butler_testdata import dimension_data

from butler import (
    Butler,
    CollectionTypeError,
    ConflictingDefinitionError,
    DatasetNotFoundError,
    DatasetRef,
    DimensionValueError,
    MissingCollectionError,
    MissingDatasetTypeError,
    RepositoryError,
    StorageClassError,
)

CAM = {"instrument": "Cam"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the test dimension records and raw/array/summary dataset types."""
    root = tmp_path / "repo"
    with Butler.create(root) as butler:
        butler.registry.insert_dimension_data(dimension_data())
        butler.register_dataset_type("raw", ["exposure", "detector"], "StructuredDataDict")
        butler.register_dataset_type("image", ["exposure", "detector"], "NumpyArray")
        butler.register_dataset_type("summary", ["exposure"], "Json")
    return root


@pytest.fixture
def butler(repo: Path) -> Iterator[Butler]:
    with Butler(repo, run="run1") as b:
        yield b


# -- creating and opening ---------------------------------------------------------------------


def test_create_writes_layout(tmp_path: Path) -> None:
    root = tmp_path / "new"
    Butler.create(root).close()
    config = yaml.safe_load((root / "butler.yaml").read_text())
    assert config["version"] == 1
    assert config["registry"]["db"] == f"sqlite:///{root / 'registry.sqlite3'}"
    assert config["datastore"]["root"] == "."
    assert "{run}" in config["datastore"]["template"]
    assert (root / "registry.sqlite3").is_file()


def test_create_refuses_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("x")
    with pytest.raises(RepositoryError, match="not empty"):
        Butler.create(tmp_path)
    Butler.create(tmp_path / "fine").close()
    with pytest.raises(RepositoryError, match="one already exists"):
        Butler.create(tmp_path / "fine")


def test_open_missing_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="no butler repository"):
        Butler(tmp_path / "nowhere")


def test_open_refuses_unknown_config_version(repo: Path) -> None:
    (repo / "butler.yaml").write_text("version: 7\nregistry: {db: 'sqlite:///x'}\n")
    with pytest.raises(RepositoryError, match="version 7"):
        Butler(repo)


# -- put / get round trips --------------------------------------------------------------------


def test_put_get_dict(butler: Butler) -> None:
    ref = butler.put({"a": 1, "b": [1, 2]}, "raw", instrument="Cam", exposure=1, detector=2)
    assert isinstance(ref, DatasetRef) and ref.run == "run1"
    assert butler.get("raw", instrument="Cam", exposure=1, detector=2) == {"a": 1, "b": [1, 2]}
    assert butler.get("raw", {"instrument": "Cam", "exposure": 1}, detector=2) == {"a": 1, "b": [1, 2]}
    assert butler.get(ref) == {"a": 1, "b": [1, 2]}
    assert (butler.root / butler.get_records([ref.id])[ref.id].path).is_file()


def test_put_get_numpy_array(butler: Butler) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    butler.put(array, "image", instrument="Cam", exposure=1, detector=1)
    back = butler.get("image", instrument="Cam", exposure=1, detector=1)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, array)


def test_put_get_json(butler: Butler) -> None:
    value = {"counts": [1, 2, 3], "ok": True, "name": "x"}
    butler.put(value, "summary", {"instrument": "Cam", "exposure": 4})
    assert butler.get("summary", instrument="Cam", exposure=4) == value


def test_put_registers_run_and_respects_explicit_run(repo: Path) -> None:
    with Butler(repo) as butler:
        with pytest.raises(MissingCollectionError, match="no run"):
            butler.put({}, "raw", instrument="Cam", exposure=1, detector=1)
        ref = butler.put({"v": 2}, "raw", instrument="Cam", exposure=1, detector=1, run="u/me/new")
        assert butler.registry.get_collection_type("u/me/new") == "RUN"
        assert butler.get("raw", collections="u/me/new", instrument="Cam", exposure=1, detector=1) == {"v": 2}
        assert butler.find_dataset("raw", collections=["u/me/new"], **CAM, exposure=1, detector=1) == ref


def test_put_into_chain_is_refused(butler: Butler) -> None:
    butler.registry.register_run("run1")
    butler.registry.register_chain("chain", ["run1"])
    with pytest.raises(CollectionTypeError):
        butler.put({}, "raw", instrument="Cam", exposure=1, detector=1, run="chain")


def test_get_searches_collections_in_order(repo: Path) -> None:
    with Butler(repo) as butler:
        butler.put({"v": "old"}, "raw", **CAM, exposure=1, detector=1, run="old")
        butler.put({"v": "new"}, "raw", **CAM, exposure=1, detector=1, run="new")
        butler.registry.register_chain("defaults", ["new", "old"])
    with Butler(repo, collections="defaults") as butler:
        assert butler.get("raw", **CAM, exposure=1, detector=1) == {"v": "new"}
        assert butler.get("raw", **CAM, exposure=1, detector=1, collections=["old", "new"]) == {"v": "old"}
        assert len(butler.query_datasets("raw")) == 1
        assert len(butler.query_datasets("raw", find_first=False)) == 2


# -- lookups and their errors -----------------------------------------------------------------


def test_exists_and_find_dataset(butler: Butler) -> None:
    assert not butler.exists("raw", **CAM, exposure=1, detector=1)
    with pytest.raises(MissingCollectionError, match="run1"):
        butler.find_dataset("raw", **CAM, exposure=1, detector=1)
    butler.registry.register_run("run1")
    assert butler.find_dataset("raw", **CAM, exposure=1, detector=1) is None
    ref = butler.put({}, "raw", **CAM, exposure=1, detector=1)
    assert butler.exists("raw", **CAM, exposure=1, detector=1)
    assert butler.exists(ref)
    assert butler.find_dataset("raw", {**CAM, "exposure": 1, "detector": 1}) == ref
    assert not butler.exists("raw", **CAM, exposure=1, detector=99)
    (butler.root / butler.get_records([ref.id])[ref.id].path).unlink()
    assert not butler.exists(ref)


def test_missing_dataset_error_names_everything(butler: Butler) -> None:
    butler.registry.register_run("run1")
    with pytest.raises(DatasetNotFoundError) as info:
        butler.get("raw", **CAM, exposure=2, detector=3)
    message = str(info.value)
    assert "raw" in message and "detector=3" in message and "exposure=2" in message and "run1" in message


def test_unknown_dimension_value(butler: Butler) -> None:
    with pytest.raises(
        DimensionValueError, match="^detector=99 is not a registered value for instrument=Cam$"
    ):
        butler.put({}, "raw", **CAM, exposure=1, detector=99)
    with pytest.raises(DimensionValueError, match="detector=99 is not a registered value for instrument=Cam"):
        butler.get("raw", **CAM, exposure=1, detector=99)
    with pytest.raises(DimensionValueError, match="instrument=Nope is not a registered value"):
        butler.get("raw", instrument="Nope", exposure=1, detector=1)


def test_missing_dataset_type(butler: Butler) -> None:
    with pytest.raises(MissingDatasetTypeError, match="calexp"):
        butler.put({}, "calexp", **CAM, exposure=1, detector=1)
    with pytest.raises(MissingDatasetTypeError, match="calexp"):
        butler.get("calexp", **CAM, exposure=1, detector=1)


def test_no_collections_to_search(repo: Path) -> None:
    with Butler(repo) as butler, pytest.raises(MissingCollectionError, match="no collections"):
        butler.get("raw", **CAM, exposure=1, detector=1)


# -- failures leave nothing behind ------------------------------------------------------------


def test_duplicate_put_keeps_the_original(butler: Butler) -> None:
    butler.put({"v": 1}, "raw", **CAM, exposure=1, detector=1)
    with pytest.raises(ConflictingDefinitionError, match="already exists in run 'run1'"):
        butler.put({"v": 2}, "raw", **CAM, exposure=1, detector=1)
    assert butler.get("raw", **CAM, exposure=1, detector=1) == {"v": 1}


def test_wrong_python_type_writes_nothing(butler: Butler) -> None:
    with pytest.raises(StorageClassError):
        butler.put([1, 2], "raw", **CAM, exposure=1, detector=1)
    assert not butler.exists("raw", **CAM, exposure=1, detector=1)
    with pytest.raises(MissingCollectionError):  # the run registration was rolled back too
        butler.registry.get_collection_type("run1")
    assert not list((butler.root).glob("run1/**/*.yaml"))


def test_failed_record_insert_removes_file_and_row(butler: Butler, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(butler._records, "insert", fail)
    with pytest.raises(OSError, match="disk on fire"):
        butler.put({"v": 1}, "raw", **CAM, exposure=1, detector=1)
    assert not butler.exists("raw", **CAM, exposure=1, detector=1)
    assert not [
        p for p in butler.root.rglob("*") if p.is_file() and p.suffix == ".yaml" and p.name != "butler.yaml"
    ]


def test_read_only_butler_refuses_writes(repo: Path) -> None:
    with (
        Butler(repo, run="run1", writeable=False) as butler,
        pytest.raises(RepositoryError, match="read-only"),
    ):
        butler.put({}, "raw", **CAM, exposure=1, detector=1)


# -- ingest, records, removal -----------------------------------------------------------------


def test_ingest_copy_and_direct(butler: Butler, tmp_path: Path) -> None:
    import uuid

    dt = butler.registry.get_dataset_type("raw")
    files = []
    for d in (1, 2):
        path = tmp_path / f"raw_{d}.yaml"
        path.write_text(yaml.safe_dump({"detector": d}))
        files.append(path)
    refs = [
        DatasetRef(
            uuid.uuid4(),
            dt,
            butler.registry.expand_data_id({**CAM, "exposure": 5, "detector": d}, dt.dimensions),
            "ingested",
        )
        for d in (1, 2)
    ]
    butler.ingest([(refs[0], files[0])], transfer="copy")
    butler.ingest([(refs[1], files[1])], transfer="direct")
    assert butler.get(refs[0]) == {"detector": 1}
    assert butler.get("raw", **CAM, exposure=5, detector=2, collections="ingested") == {"detector": 2}
    assert butler.get_records([refs[1].id])[refs[1].id].path == str(files[1])
    butler.remove_datasets(refs)
    assert files[1].exists(), "direct-ingested files belong to their owner"
    assert butler.find_dataset("raw", **CAM, exposure=5, detector=1, collections="ingested") is None
    assert butler.get_records([r.id for r in refs]) == {}


def test_failed_ingest_is_all_or_nothing(butler: Butler, tmp_path: Path) -> None:
    import uuid

    dt = butler.registry.get_dataset_type("raw")
    good = tmp_path / "good.yaml"
    good.write_text("{}")
    refs = [
        DatasetRef(
            uuid.uuid4(),
            dt,
            butler.registry.expand_data_id({**CAM, "exposure": 1, "detector": d}, dt.dimensions),
            "ing",
        )
        for d in (1, 2)
    ]
    with pytest.raises(Exception, match="missing.yaml"):
        butler.ingest([(refs[0], good), (refs[1], tmp_path / "missing.yaml")])
    assert not butler.exists("raw", **CAM, exposure=1, detector=1, collections="ing")
    assert not (butler.root / "ing").exists() or not any((butler.root / "ing").rglob("*.yaml"))


def test_insert_datastore_records_is_idempotent(butler: Butler) -> None:
    ref = butler.put({"v": 1}, "raw", **CAM, exposure=1, detector=1)
    info = butler.get_records([ref.id])[ref.id]
    butler.insert_datastore_records([info])
    assert butler.get_records([ref.id]) == {ref.id: info}


# -- other databases --------------------------------------------------------------------------


def test_round_trip_on_every_database(tmp_path: Path, db_url: str) -> None:
    """The same put/get/query flow with the registry in each backend's database."""
    with Butler.create(tmp_path / "repo", db_url=db_url) as butler:
        butler.registry.insert_dimension_data(dimension_data())
        butler.register_dataset_type("raw", ["exposure", "detector"], "StructuredDataDict")
    with Butler(tmp_path / "repo", run="run1") as butler:
        assert yaml.safe_load((butler.root / "butler.yaml").read_text())["registry"]["db"] == db_url
        refs = [butler.put({"d": d}, "raw", **CAM, exposure=3, detector=d) for d in (1, 2, 3)]
        with pytest.raises(ConflictingDefinitionError):
            butler.put({}, "raw", **CAM, exposure=3, detector=1)
        assert butler.get("raw", **CAM, exposure=3, detector=2) == {"d": 2}
        assert butler.query_datasets("raw", where="band = 'r' AND detector > 1") == refs[1:]
        butler.remove_datasets(refs[:1])
        assert not butler.exists("raw", **CAM, exposure=3, detector=1)

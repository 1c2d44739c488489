"""The quantum-backed butler: get/put/exists without a registry, and its light import path."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from butler._dataset_type import DatasetRef, DatasetType
from butler._dimensions import DimensionUniverse
from butler._exceptions import (
    ConflictingDefinitionError,
    DatasetFileMissingError,
    DatasetNotFoundError,
    MissingDatasetTypeError,
    RepositoryError,
    StorageClassError,
)
from butler._limited_butler import QuantumBackedButler
from butler._repo_config import RepoConfig
from butler.datastore import FileDatastore

UNIVERSE = DimensionUniverse.default()
RUN = "u/alice/isr/20261126T040000Z"
RAW = DatasetType.build("raw", ("exposure", "detector"), "StructuredDataDict", UNIVERSE)
POST_ISR = DatasetType.build("postISR", ("exposure", "detector"), "NumpyArray", UNIVERSE)
CALEXP = DatasetType.build("calexp", ("exposure", "detector"), "StructuredDataDict", UNIVERSE)
DATASET_TYPES = {dt.name: dt for dt in (RAW, POST_ISR, CALEXP)}


def make_ref(dt: DatasetType, run: str = RUN, exposure: int = 1, detector: int = 2) -> DatasetRef:
    data_id: dict[str, Any] = {"instrument": "HSC", "exposure": exposure, "detector": detector}
    return DatasetRef(uuid.uuid4(), dt, UNIVERSE.data_id(dt.dimensions, data_id), run)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repo"


def test_get_uses_the_given_records(repo: Path) -> None:
    raw = make_ref(RAW, run="HSC/raw/all")
    info = FileDatastore(repo).write({"pixels": [1, 2, 3]}, raw)
    records = {raw.id: info}
    qbb = QuantumBackedButler(repo, UNIVERSE, DATASET_TYPES, records)
    assert qbb.get(raw) == {"pixels": [1, 2, 3]}
    assert qbb.exists(raw)
    assert records == {raw.id: info}  # the caller's mapping is not changed
    assert qbb.root == repo.absolute()


def test_get_of_a_direct_ingested_input(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "raw.yaml"
    src.write_text("a: 1\n")
    raw = make_ref(RAW, run="HSC/raw/all")
    info = FileDatastore(repo).ingest(src, raw, "direct")
    assert QuantumBackedButler(repo, UNIVERSE, DATASET_TYPES, {raw.id: info}).get(raw) == {"a": 1}


def test_put_then_get_in_another_job(repo: Path) -> None:
    post_isr = make_ref(POST_ISR)
    first_job = QuantumBackedButler(repo, UNIVERSE, DATASET_TYPES, {})
    array = np.arange(6.0).reshape(2, 3)
    info = first_job.put(array, post_isr)
    assert info.path == f"{RUN}/postISR/postISR_HSC_2_1.npy" and info.formatter == "npy"
    assert (repo / info.path).is_file()
    assert first_job.written == {post_isr.id: info}
    np.testing.assert_array_equal(first_job.get(post_isr), array)
    # A later job gets the same reference from the graph, with no record: found at its predicted path.
    second_job = QuantumBackedButler(repo, UNIVERSE, DATASET_TYPES, {})
    assert second_job.exists(post_isr)
    np.testing.assert_array_equal(second_job.get(post_isr), array)
    assert second_job.written == {}


def test_get_without_record_or_file(repo: Path) -> None:
    qbb = QuantumBackedButler(repo, UNIVERSE, DATASET_TYPES, {})
    ref = make_ref(CALEXP)
    assert not qbb.exists(ref)
    predicted = re.escape(f"{RUN}/calexp/calexp_HSC_2_1.yaml")
    with pytest.raises(DatasetNotFoundError, match=rf"calexp.*no datastore record.*{predicted}"):
        qbb.get(ref)


def test_get_with_record_but_missing_file(repo: Path) -> None:
    raw = make_ref(RAW, run="HSC/raw/all")
    info = FileDatastore(repo).write({"a": 1}, raw)
    (repo / info.path).unlink()
    qbb = QuantumBackedButler(repo, UNIVERSE, DATASET_TYPES, {raw.id: info})
    assert not qbb.exists(raw)
    missing = re.escape(str(repo.absolute() / info.path))
    with pytest.raises(DatasetFileMissingError, match=rf"raw@.*{raw.id}.*file is missing: {missing}"):
        qbb.get(raw)


def test_put_refusals(repo: Path) -> None:
    qbb = QuantumBackedButler(repo, UNIVERSE, DATASET_TYPES, {})
    unknown = DatasetType.build("deepCoadd", ("exposure",), "StructuredDataDict", UNIVERSE)
    with pytest.raises(MissingDatasetTypeError, match="deepCoadd is not one of this graph's dataset types"):
        data_id = UNIVERSE.data_id(("exposure",), instrument="HSC", exposure=1)
        qbb.put({}, DatasetRef(uuid.uuid4(), unknown, data_id, RUN))
    redefined = DatasetType.build("calexp", ("exposure", "detector"), "Json", UNIVERSE)
    with pytest.raises(ConflictingDefinitionError, match="storage class: StructuredDataDict"):
        qbb.put({}, make_ref(redefined))
    with pytest.raises(StorageClassError, match=r"dataset type calexp \(storage class StructuredDataDict\)"):
        qbb.put([1, 2], make_ref(CALEXP))
    assert qbb.written == {}
    assert not repo.exists() or not any(p.is_file() for p in repo.rglob("*"))


def test_custom_template(repo: Path) -> None:
    qbb = QuantumBackedButler(
        repo, UNIVERSE, DATASET_TYPES, {}, template="{run}/{datasetType}/{exposure}/{datasetType}_{dataId}"
    )
    info = qbb.put({"a": 1}, make_ref(CALEXP))
    assert info.path == f"{RUN}/calexp/1/calexp_HSC_2_1.yaml"


@pytest.mark.parametrize("via_config_file", [False, True], ids=["repo-dir", "butler.yaml"])
def test_from_repo_reads_only_butler_yaml(tmp_path: Path, via_config_file: bool) -> None:
    # A repository whose registry database does not exist: from_repo must never need it.
    repo = tmp_path / "repo"
    repo.mkdir()
    template = "{run}/{datasetType}/{exposure}/{datasetType}_{dataId}"
    RepoConfig(db="sqlite:///nowhere/registry.sqlite3", datastore_root="store", template=template).write(repo)
    target = repo / "butler.yaml" if via_config_file else repo
    qbb = QuantumBackedButler.from_repo(target, universe=UNIVERSE, dataset_types=DATASET_TYPES, records={})
    assert qbb.root == (repo / "store").absolute()
    info = qbb.put({"a": 1}, make_ref(CALEXP))
    assert info.path == f"{RUN}/calexp/1/calexp_HSC_2_1.yaml"
    assert (repo / "store" / info.path).is_file()
    assert not (repo / "nowhere").exists()


def test_from_repo_without_a_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="no butler repository"):
        QuantumBackedButler.from_repo(tmp_path, universe=UNIVERSE, dataset_types=DATASET_TYPES, records={})


def test_import_path_stays_light() -> None:
    """A batch job must not pay for sqlalchemy (or numpy, networkx, parsl) just to read YAML."""
    code = textwrap.dedent(
        """
        import sys, tempfile, uuid
        import butler._limited_butler
        heavy = [m for m in ("sqlalchemy", "numpy", "networkx", "parsl") if m in sys.modules]
        assert not heavy, f"imported on the QBB path: {heavy}"

        from butler._dataset_type import DatasetRef, DatasetType
        from butler._dimensions import DimensionUniverse
        from butler._limited_butler import QuantumBackedButler

        universe = DimensionUniverse.default()
        dt = DatasetType.build("calexp", ("exposure", "detector"), "StructuredDataDict", universe)
        ref = DatasetRef(uuid.uuid4(), dt, universe.data_id(dt.dimensions, instrument="HSC", exposure=1,
                                                            detector=2), "run")
        qbb = QuantumBackedButler(tempfile.mkdtemp(), universe, {dt.name: dt}, {})
        qbb.put({"a": 1}, ref)
        assert qbb.get(ref) == {"a": 1}
        heavy = [m for m in ("sqlalchemy", "numpy", "networkx", "parsl") if m in sys.modules]
        assert not heavy, f"imported by a YAML put/get: {heavy}"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)

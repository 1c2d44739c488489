"""FileDatastore on real files: paths, atomic writes, reads, ingest and speed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from butler._dataset_type import DatasetRef, DatasetType
from butler._dimensions import DimensionUniverse
from butler._exceptions import (
    DatasetFileMissingError,
    DatastoreError,
    DatastorePathError,
    StorageClassError,
)
from butler._storage_class import StorageClass, register_storage_class
from butler._stored_file_info import StoredFileInfo
from butler.datastore import DEFAULT_TEMPLATE, FileDatastore, FileTemplate
from butler.formatters import Formatter, StrPath, register_formatter

UNIVERSE = DimensionUniverse.default()
RUN = "u/alice/run1/20261126T040000Z"


def dataset_type(name: str, dims: tuple[str, ...], storage_class: str = "StructuredDataDict") -> DatasetType:
    return DatasetType.build(name, dims, storage_class, UNIVERSE)


RAW = dataset_type("raw", ("exposure", "detector"))
CONFIG = dataset_type("isr_config", (), "TaskConfig")
FILTERED = dataset_type("flat", ("physical_filter",))


def make_ref(dt: DatasetType = RAW, run: str = RUN, **data_id: Any) -> DatasetRef:
    if not data_id and dt is RAW:
        data_id = {"instrument": "HSC", "exposure": 42, "detector": 7}
    return DatasetRef(uuid.uuid4(), dt, UNIVERSE.data_id(dt.dimensions, data_id), run)


@pytest.fixture
def store(tmp_path: Path) -> FileDatastore:
    return FileDatastore(tmp_path / "repo")


def visible_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


# -- paths -----------------------------------------------------------------------------------------


def test_default_template_and_run_directories(store: FileDatastore) -> None:
    assert DEFAULT_TEMPLATE == "{run}/{datasetType}/{datasetType}_{dataId}"
    ref = make_ref()
    # Universe order: instrument, detector, exposure.
    assert store.predict_path(ref) == f"{RUN}/raw/raw_HSC_7_42.yaml"
    info = store.write({"x": 1}, ref)
    assert info.path == store.predict_path(ref)
    assert (store.root / "u" / "alice" / "run1" / "20261126T040000Z" / "raw" / "raw_HSC_7_42.yaml").is_file()


def test_extension_follows_the_formatter(store: FileDatastore) -> None:
    arr = dataset_type("calexp", ("exposure", "detector"), "NumpyArray")
    js = dataset_type("summary", ("exposure",), "Json")
    array_ref = make_ref(arr, instrument="HSC", exposure=1, detector=2)
    assert store.predict_path(array_ref) == f"{RUN}/calexp/calexp_HSC_2_1.npy"
    json_ref = make_ref(js, instrument="HSC", exposure=1)
    assert store.predict_path(json_ref) == f"{RUN}/summary/summary_HSC_1.json"


def test_dimensionless_dataset_drops_the_separator(store: FileDatastore) -> None:
    assert store.predict_path(make_ref(CONFIG)) == f"{RUN}/isr_config/isr_config.yaml"


def test_custom_template_with_dimension_fields(tmp_path: Path) -> None:
    store = FileDatastore(tmp_path, "{run}/{instrument}/{datasetType}/{detector}/{datasetType}_{dataId}")
    assert store.predict_path(make_ref()) == f"{RUN}/HSC/raw/7/raw_HSC_7_42.yaml"
    named = FileDatastore(tmp_path, "{datasetType}/{run}/{instrument}/{exposure}-{detector}")
    assert named.predict_path(make_ref()) == f"raw/{RUN}/HSC/42-7.yaml"


def test_custom_template_needing_an_absent_dimension_is_refused(tmp_path: Path) -> None:
    store = FileDatastore(tmp_path, "{run}/{datasetType}/{band}/{datasetType}_{dataId}")
    with pytest.raises(DatastorePathError, match=r"uses band, which dataset type raw does not have"):
        store.predict_path(make_ref())


def test_template_that_does_not_identify_datasets_is_refused(tmp_path: Path) -> None:
    store = FileDatastore(tmp_path, "{run}/{datasetType}/{exposure}")
    with pytest.raises(DatastorePathError, match=r"lacks \{dataId\} and \{detector\}, \{instrument\}"):
        store.predict_path(make_ref())


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{datasetType}/{dataId}", r"lacks \{run\}"),
        ("{run}/{dataId}", r"lacks \{datasetType\}"),
        ("{run}/{datasetType}/{dataId", "malformed"),
        ("{run}/{datasetType}/{dataId:>10}", "not allowed"),
        ("{run}/{datasetType}/{dataId!r}", "not allowed"),
        ("{run}/{datasetType}/{0}", "not allowed"),
        ("{run}/{datasetType}/{data.id}", "not allowed"),
        ("/{run}/{datasetType}_{dataId}", "absolute"),
        ("{run}/../{datasetType}_{dataId}", r"'\.\.' component"),
        ("{run}//{datasetType}_{dataId}", "empty component"),
        ("{run}\\{datasetType}_{dataId}", "backslash"),
        ("{run}/{datasetType}_{dataId}/", "empty component"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(DatastorePathError, match=message):
        FileTemplate(template)


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ("../outside", r"'\.\.' component and could escape the datastore root"),
        ("u/alice/../../../etc", r"'\.\.' component"),
        ("..", r"'\.\.' component"),
        ("/abs/run", "absolute"),
        ("u//alice", "empty component"),
        ("u/alice/", "empty component"),
        ("", "empty"),
        ("u/./alice", r"'\.' component"),
        ("u\\alice", "backslash"),
        ("u/ali\x00ce", "NUL"),
        ("u/ali\nce", "control character"),
        ("u/" + "x" * 256, "longer than 255 bytes"),
        ("u/" + "é" * 128, "longer than 255 bytes"),
    ],
)
def test_escaping_run_names_are_refused(store: FileDatastore, tmp_path: Path, run: str, message: str) -> None:
    ref = make_ref(run=run)
    with pytest.raises(DatastorePathError, match=message) as info:
        store.predict_path(ref)
    assert "run name" in str(info.value)
    with pytest.raises(DatastorePathError):
        store.write({"x": 1}, ref)
    with pytest.raises(DatastorePathError):
        store.info_for_existing(ref)
    assert visible_files(tmp_path) == []


@pytest.mark.parametrize("name", ["..", "a/b", "x\\y", "bad\x00name", ""])
def test_escaping_dataset_type_names_are_refused(store: FileDatastore, name: str) -> None:
    dt = DatasetType(name, RAW.dimensions, "StructuredDataDict")  # bypasses DatasetType.build's checks
    with pytest.raises(DatastorePathError, match="dataset type name"):
        store.predict_path(make_ref(dt, instrument="HSC", exposure=1, detector=1))


def test_run_names_with_dots_inside_components_are_fine(store: FileDatastore) -> None:
    ref = make_ref(run="u/alice/v1.2..3/.hidden")
    assert store.predict_path(ref).startswith("u/alice/v1.2..3/.hidden/raw/")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("g/ND", "g%2FND"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("50%", "50%25"),
        ("a\\b", "a%5Cb"),
        ("tab\there", "tab%09here"),
        ("SDSSg_65mm~empty", "SDSSg_65mm~empty"),
    ],
)
def test_data_id_strings_are_escaped_not_refused(store: FileDatastore, value: str, expected: str) -> None:
    ref = make_ref(FILTERED, instrument="HSC", physical_filter=value)
    path = store.predict_path(ref)
    assert path == f"{RUN}/flat/flat_HSC_{expected}.yaml"
    store.write({"v": value}, ref)
    assert visible_files(store.root) == [path]
    assert store.read(store.info_for_existing(ref) or pytest.fail("no file")) == {"v": value}


def test_data_id_escaping_is_injective(store: FileDatastore) -> None:
    # Joined naively with '_', these two data IDs would both give "flat_a_b_c".
    first = make_ref(FILTERED, instrument="a_b", physical_filter="c")
    second = make_ref(FILTERED, instrument="a", physical_filter="b_c")
    assert store.predict_path(first) != store.predict_path(second)
    assert store.predict_path(first).endswith("flat_a%5Fb_c.yaml")
    assert store.predict_path(second).endswith("flat_a_b_c.yaml")
    third = make_ref(FILTERED, instrument="a%5Fb", physical_filter="c")
    assert len({store.predict_path(r) for r in (first, second, third)}) == 3


def test_dimension_field_values_are_escaped(tmp_path: Path) -> None:
    store = FileDatastore(tmp_path, "{run}/{datasetType}/{physical_filter}/{instrument}")
    ref = make_ref(FILTERED, instrument="HSC", physical_filter="..")
    assert store.predict_path(ref) == f"{RUN}/flat/%2E%2E/HSC.yaml"


# -- write / read ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage_class", "obj"),
    [
        ("StructuredDataDict", {"a": 1, "b": [1.5, "x"], "c": {"d": None}}),
        ("TaskConfig", {"doWrite": True, "threshold": 5.0, "bands": ["g", "r"]}),
        ("Json", {"counts": [1, 2, 3], "ok": True}),
        ("Json", [1, "two"]),
    ],
)
def test_round_trip_each_storage_class(store: FileDatastore, storage_class: str, obj: object) -> None:
    dt = dataset_type("thing", ("exposure",), storage_class)
    ref = make_ref(dt, instrument="HSC", exposure=3)
    info = store.write(obj, ref)
    assert info == StoredFileInfo(
        ref.id,
        store.predict_path(ref),
        info.formatter,
        storage_class,
        (store.root / info.path).stat().st_size,
        zlib.crc32((store.root / info.path).read_bytes()),
    )
    assert info.file_size > 0
    assert store.read(info) == obj
    assert store.read(info, storage_class) == obj
    assert store.exists(info)


def test_round_trip_numpy(store: FileDatastore) -> None:
    dt = dataset_type("calexp", ("exposure", "detector"), "NumpyArray")
    ref = make_ref(dt, instrument="HSC", exposure=3, detector=1)
    array = np.arange(20, dtype=np.float64).reshape(4, 5)
    info = store.write(array, ref)
    assert info.formatter == "npy" and info.path.endswith(".npy")
    back = store.read(info)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, array)


def test_wrong_python_type_is_refused_before_writing(store: FileDatastore) -> None:
    dt = dataset_type("calexp", ("exposure", "detector"), "NumpyArray")
    with pytest.raises(StorageClassError, match=r"dataset type calexp \(storage class NumpyArray\)"):
        store.write([1, 2, 3], make_ref(dt, instrument="HSC", exposure=3, detector=1))
    with pytest.raises(StorageClassError, match="dataset type raw"):
        store.write(["not", "a", "dict"], make_ref())
    assert not store.root.exists() or visible_files(store.root) == []


def test_unserialisable_value_names_the_dataset_and_leaves_nothing(store: FileDatastore) -> None:
    ref = make_ref()
    with pytest.raises(StorageClassError, match=r"cannot write dataset raw@.*cannot write dict as YAML"):
        store.write({"obj": object()}, ref)
    assert visible_files(store.root) == []


def test_write_replaces_a_leftover_file(store: FileDatastore) -> None:
    ref = make_ref()
    store.write({"attempt": 1}, ref)
    info = store.write({"attempt": 2}, ref)
    assert store.read(info) == {"attempt": 2}
    assert visible_files(store.root) == [info.path]


def test_read_with_another_storage_class(store: FileDatastore) -> None:
    info = store.write({"a": 1}, make_ref())
    assert store.read(info, "TaskConfig") == {"a": 1}
    with pytest.raises(StorageClassError, match=r"cannot be read as storage class NumpyArray.*a dict"):
        store.read(info, "NumpyArray")


def test_read_missing_file_names_dataset_and_path(store: FileDatastore) -> None:
    ref = make_ref()
    info = store.write({"a": 1}, ref)
    os.unlink(store.root / info.path)
    with pytest.raises(DatasetFileMissingError) as exc:
        store.read(info)
    assert str(ref.id) in str(exc.value)
    assert str(store.root / info.path) in str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)
    assert not store.exists(info)


def test_read_refuses_record_paths_outside_the_root(store: FileDatastore) -> None:
    info = StoredFileInfo(uuid.uuid4(), "../../etc/passwd", "yaml", "StructuredDataDict", 10)
    with pytest.raises(DatastoreError, match="unusable path"):
        store.read(info)


def test_read_unknown_formatter(store: FileDatastore) -> None:
    info = store.write({"a": 1}, make_ref())
    with pytest.raises(DatastoreError, match="unknown formatter 'fits'"):
        store.read(StoredFileInfo(info.dataset_id, info.path, "fits", info.storage_class, info.file_size))


def test_remove_and_exists(store: FileDatastore) -> None:
    info = store.write({"a": 1}, make_ref())
    assert store.exists(info)
    store.remove(info)
    assert not store.exists(info)
    store.remove(info)  # already gone: fine


def test_info_for_existing(store: FileDatastore) -> None:
    ref = make_ref()
    assert store.info_for_existing(ref) is None
    info = store.write({"a": [1, 2]}, ref)
    assert store.info_for_existing(ref, checksum=True) == info
    assert store.info_for_existing(ref) == StoredFileInfo(
        info.dataset_id, info.path, info.formatter, info.storage_class, info.file_size
    )  # without checksum=True the file is only stat'ed
    # A directory where the file should be is not a dataset.
    other = make_ref(instrument="HSC", exposure=1, detector=1)
    (store.root / store.predict_path(other)).mkdir(parents=True)
    assert store.info_for_existing(other) is None


def test_write_recreates_a_directory_removed_behind_its_back(store: FileDatastore) -> None:
    first = store.write({"a": 1}, make_ref())
    shutil.rmtree(store.root / "u")
    second = store.write({"a": 2}, make_ref(instrument="HSC", exposure=43, detector=7))
    assert store.read(second) == {"a": 2}
    assert not store.exists(first)


def test_concurrent_writers(store: FileDatastore) -> None:
    refs = [make_ref(instrument="HSC", exposure=e, detector=d) for e in range(10) for d in range(10)]
    with ThreadPoolExecutor(4) as pool:
        infos = list(pool.map(lambda r: store.write({"id": str(r.id)}, r), refs))
    assert [store.read(i) for i in infos] == [{"id": str(r.id)} for r in refs]
    assert len(visible_files(store.root)) == 100


# -- atomicity -------------------------------------------------------------------------------------


class HalfWriter(Formatter):
    """Writes part of a file, then fails: what a full disk or a bug looks like mid-write."""

    name = "half-writer"
    extension = ".half"
    started = threading.Event()
    proceed = threading.Event()
    pause: ClassVar[bool] = False

    def write(self, obj: object, path: StrPath) -> None:
        with open(path, "w") as f:
            f.write("partial: [1, 2")
            f.flush()
            if self.pause:
                HalfWriter.started.set()
                HalfWriter.proceed.wait(10)
            raise OSError(28, "No space left on device")

    def read(self, path: StrPath) -> object:
        raise AssertionError("never read")


register_formatter(HalfWriter)
register_storage_class(StorageClass("HalfWritten", "dict", "half-writer"))
HALF = dataset_type("half", ("exposure",), "HalfWritten")


def test_failed_write_leaves_neither_target_nor_temporary(store: FileDatastore) -> None:
    ref = make_ref(HALF, instrument="HSC", exposure=1)
    with pytest.raises(OSError, match="No space left"):
        store.write({"a": 1}, ref)
    assert visible_files(store.root) == []
    assert store.info_for_existing(ref) is None


def test_failed_write_keeps_the_previous_file(store: FileDatastore, tmp_path: Path) -> None:
    ref = make_ref(HALF, instrument="HSC", exposure=1)
    target = store.root / store.predict_path(ref)
    target.parent.mkdir(parents=True)
    target.write_text("complete: true\n")
    with pytest.raises(OSError):
        store.write({"a": 1}, ref)
    assert target.read_text() == "complete: true\n"
    assert visible_files(store.root) == [store.predict_path(ref)]


def test_partial_file_is_never_visible_at_the_target(store: FileDatastore) -> None:
    ref = make_ref(HALF, instrument="HSC", exposure=1)
    HalfWriter.pause = True
    HalfWriter.started.clear()
    HalfWriter.proceed.clear()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            store.write({"a": 1}, ref)
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert HalfWriter.started.wait(10)
        # Mid-write: the bytes exist only under a hidden temporary name.
        assert store.info_for_existing(ref) is None
        names = [p.name for p in (store.root / store.predict_path(ref)).parent.iterdir()]
        assert len(names) == 1 and names[0].startswith(f".tmp-{ref.id.hex}-")
    finally:
        HalfWriter.proceed.set()
        thread.join(10)
        HalfWriter.pause = False
    assert errors and visible_files(store.root) == []


def test_interrupted_write_cleans_up(store: FileDatastore, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.write({"a": 1}, make_ref())
    assert visible_files(store.root) == []


# -- ingest ----------------------------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "incoming" / "raw_0001.yaml"
    src.parent.mkdir()
    src.write_text("exposure: 42\nbands: [g, r]\n")
    return src


def test_ingest_copy(store: FileDatastore, source: Path) -> None:
    ref = make_ref()
    info = store.ingest(source, ref, "copy")
    target = store.root / info.path
    assert info.path == store.predict_path(ref) and target.is_file() and not target.is_symlink()
    assert info.file_size == source.stat().st_size
    assert store.read(info) == {"exposure": 42, "bands": ["g", "r"]}
    source.unlink()
    assert store.read(info) == {"exposure": 42, "bands": ["g", "r"]}
    store.remove(info)
    assert not target.exists()


def test_ingest_symlink(store: FileDatastore, source: Path) -> None:
    info = store.ingest(source, make_ref(), "symlink")
    target = store.root / info.path
    assert target.is_symlink() and target.resolve() == source.resolve()
    assert store.read(info) == {"exposure": 42, "bands": ["g", "r"]}
    store.remove(info)
    assert not target.exists() and not target.is_symlink() and source.exists()


def test_ingest_direct(store: FileDatastore, source: Path) -> None:
    info = store.ingest(source, make_ref(), "direct")
    assert info.path == str(source.absolute())
    assert store.abspath(info) == source.absolute()
    assert store.read(info) == {"exposure": 42, "bands": ["g", "r"]}
    assert not store.root.exists() or visible_files(store.root) == []
    store.remove(info)  # the datastore does not own it
    assert source.exists()
    source.unlink()
    assert not store.exists(info)
    with pytest.raises(DatasetFileMissingError):
        store.read(info)


def test_ingest_accepts_alternative_suffix(store: FileDatastore, tmp_path: Path) -> None:
    src = tmp_path / "conf.yml"
    src.write_text("a: 1\n")
    info = store.ingest(src, make_ref(), "copy")
    assert info.path.endswith(".yaml") and store.read(info) == {"a": 1}


def test_ingest_refusals(store: FileDatastore, source: Path, tmp_path: Path) -> None:
    ref = make_ref()
    with pytest.raises(DatastoreError, match="transfer mode 'move'; choose one of: copy, symlink, direct"):
        store.ingest(source, ref, "move")  # type: ignore[arg-type]
    with pytest.raises(DatastoreError, match="No such file"):
        store.ingest(tmp_path / "absent.yaml", ref, "copy")
    with pytest.raises(DatastoreError, match="not a regular file"):
        store.ingest(tmp_path, ref, "copy")
    wrong = tmp_path / "data.json"
    wrong.write_text("{}")
    with pytest.raises(DatastoreError, match=r"as yaml \(.yaml\) files, but this file's suffix is .json"):
        store.ingest(wrong, ref, "direct")
    with pytest.raises(DatastorePathError):
        store.ingest(source, make_ref(run="../escape"), "copy")
    assert not store.root.exists() or visible_files(store.root) == []


def test_file_datastore_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, butler.datastore\n"
        "assert 'sqlalchemy' not in sys.modules\n"
        "butler.datastore.DatastoreRecordStore\n"
        "assert 'sqlalchemy' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

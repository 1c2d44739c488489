"""Formatters and storage classes: real files in tmp_path, round trips and refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from butler._exceptions import DatastoreError, StorageClassError
from butler._storage_class import (
    StorageClass,
    check_object,
    get_storage_class,
    known_storage_classes,
    register_storage_class,
)
from butler.formatters import (
    Formatter,
    JsonFormatter,
    NpyFormatter,
    YamlFormatter,
    formatter_names,
    get_formatter,
)
from butler.formatters import _yaml as yaml_module

# -- storage classes -------------------------------------------------------------------------------


def test_known_storage_classes() -> None:
    assert set(known_storage_classes()) >= {"StructuredDataDict", "Json", "NumpyArray", "TaskConfig"}
    assert get_storage_class("StructuredDataDict") == StorageClass("StructuredDataDict", "dict", "yaml")
    assert get_storage_class("TaskConfig").default_formatter == "yaml"
    assert get_storage_class("Json").default_formatter == "json"
    assert get_storage_class("NumpyArray") == StorageClass("NumpyArray", "numpy.ndarray", "npy")


def test_unknown_storage_class_lists_known_names() -> None:
    with pytest.raises(StorageClassError, match="unknown storage class 'Exposure'") as info:
        get_storage_class("Exposure")
    for name in ("StructuredDataDict", "Json", "NumpyArray", "TaskConfig"):
        assert name in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("storage_class", "obj"),
    [
        ("StructuredDataDict", {"a": 1}),
        ("TaskConfig", {"doWrite": True}),
        ("NumpyArray", np.zeros(3)),
        ("Json", [1, "two", None]),
        ("Json", {"a": 1}),
        ("Json", 3.5),
    ],
)
def test_check_object_accepts(storage_class: str, obj: object) -> None:
    check_object(storage_class, obj)
    check_object(get_storage_class(storage_class), obj, "whatever")


def test_check_object_refuses_wrong_types_naming_the_dataset_type() -> None:
    with pytest.raises(StorageClassError, match=r"dataset type calexp \(storage class NumpyArray\).*list"):
        check_object("NumpyArray", [1, 2, 3], "calexp")
    with pytest.raises(StorageClassError, match=r"dataset type raw \(storage class StructuredDataDict\)"):
        check_object("StructuredDataDict", [("a", 1)], "raw")
    with pytest.raises(StorageClassError, match="numpy.ndarray"):
        check_object("TaskConfig", np.zeros(2))
    message = "^storage class StructuredDataDict holds dict objects, but got a str$"
    with pytest.raises(StorageClassError, match=message):
        check_object("StructuredDataDict", "text")


def test_register_storage_class_refuses_redefinition() -> None:
    register_storage_class(StorageClass("StructuredDataDict", "dict", "yaml"))  # identical: fine
    with pytest.raises(StorageClassError, match="already defined"):
        register_storage_class(StorageClass("StructuredDataDict", "dict", "json"))
    with pytest.raises(StorageClassError, match="unsupported Python type"):
        StorageClass("Table", "astropy.table.Table", "ecsv")


def test_numpy_check_does_not_import_numpy() -> None:
    code = (
        "import sys\n"
        "from butler._storage_class import check_object\n"
        "from butler._exceptions import StorageClassError\n"
        "try:\n"
        "    check_object('NumpyArray', [1.0])\n"
        "except StorageClassError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('list accepted as NumpyArray')\n"
        "import butler.formatters\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- formatter registry ----------------------------------------------------------------------------


def test_get_formatter() -> None:
    # Other test modules may register more formatters; these three are always there, sorted.
    assert set(formatter_names()) >= {"json", "npy", "yaml"}
    assert list(formatter_names()) == sorted(formatter_names())
    assert isinstance(get_formatter("yaml"), YamlFormatter)
    assert isinstance(get_formatter("json"), JsonFormatter)
    assert isinstance(get_formatter("npy"), NpyFormatter)
    assert get_formatter("yaml") is get_formatter("yaml")
    with pytest.raises(DatastoreError, match="formatter 'fits'; known formatters: .*json, .*npy, .*yaml"):
        get_formatter("fits")


def test_extensions_and_suffixes() -> None:
    extensions = (YamlFormatter.extension, JsonFormatter.extension, NpyFormatter.extension)
    assert extensions == (".yaml", ".json", ".npy")
    assert YamlFormatter.can_read_suffix(".yml") and YamlFormatter.can_read_suffix(".YAML")
    assert not YamlFormatter.can_read_suffix(".json")
    assert issubclass(YamlFormatter, Formatter)


# -- round trips -----------------------------------------------------------------------------------

YAML_VALUES = [
    {"a": 1, "b": [1.5, "x", None, True], "nested": {"k": {"deep": [1, 2]}}},
    {"unicode": "Zürich ✓", "multi": "line one\nline two\n", "empty": {}, "zero": 0.0},
    {"ordered": 1, "keys": 2, "are": 3, "kept": 4},
    {},
]


@pytest.mark.parametrize("value", YAML_VALUES)
def test_yaml_round_trip(tmp_path: Path, value: dict[str, object]) -> None:
    path = tmp_path / "x.yaml"
    YamlFormatter().write(value, path)
    back = YamlFormatter().read(path)
    assert back == value
    assert isinstance(back, dict) and list(back) == list(value)


def test_yaml_writes_tuples_as_lists(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    YamlFormatter().write({"bands": ("g", "r"), "pairs": [(1, 2)]}, str(path))
    assert YamlFormatter().read(str(path)) == {"bands": ["g", "r"], "pairs": [[1, 2]]}
    assert "!!python" not in path.read_text()


def test_yaml_uses_libyaml_when_available() -> None:
    loader: object = yaml_module._Loader
    if yaml.__with_libyaml__:
        assert loader is yaml.CSafeLoader
        assert issubclass(yaml_module._Dumper, yaml.CSafeDumper)
    else:
        assert loader is yaml.SafeLoader


def test_yaml_never_loads_unsafely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(DatastoreError, match="not valid YAML"):
        YamlFormatter().read(path)
    assert not marker.exists()


def test_yaml_refuses_unrepresentable_objects(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    with pytest.raises(StorageClassError, match="cannot write dict as YAML"):
        YamlFormatter().write({"obj": object()}, path)
    assert not path.exists()


def test_yaml_reports_corrupt_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(DatastoreError, match=r"bad.yaml is not valid YAML"):
        YamlFormatter().read(path)


@pytest.mark.parametrize("value", [{"a": [1, 2.5, None, "s"]}, [1, 2, 3], "text", 42, None, {"ü": "✓"}])
def test_json_round_trip(tmp_path: Path, value: object) -> None:
    path = tmp_path / "x.json"
    JsonFormatter().write(value, path)
    assert JsonFormatter().read(path) == value
    assert json.loads(path.read_text(encoding="utf-8")) == value


def test_json_refuses_unserialisable_without_creating_a_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    with pytest.raises(StorageClassError, match="cannot write set as JSON"):
        JsonFormatter().write({1, 2}, path)
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(StorageClassError, match="JSON"):
        JsonFormatter().write(circular, path)
    assert not path.exists()


def test_json_reports_corrupt_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"a": ')
    with pytest.raises(DatastoreError, match="not valid JSON"):
        JsonFormatter().read(path)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DatastoreError, match="not valid JSON"):
        JsonFormatter().read(path)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.linspace(0, 1, 7),
        np.array(3.5),
        np.zeros((0, 2), dtype=np.float32),
        np.array([(1, 2.0), (3, 4.0)], dtype=[("id", "i8"), ("flux", "f4")]),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    ],
)
def test_npy_round_trip(tmp_path: Path, array: np.ndarray) -> None:
    # No .npy suffix on purpose: the datastore writes to temporary names, and numpy.save would
    # append ".npy" to a bare path.
    path = tmp_path / "tmp-name"
    NpyFormatter().write(array, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp-name"]
    back = NpyFormatter().read(path)
    assert isinstance(back, np.ndarray)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_npy_refuses_object_arrays_and_non_arrays(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    with pytest.raises(StorageClassError, match="without pickling"):
        NpyFormatter().write(np.array([{"a": 1}], dtype=object), path)
    with pytest.raises(StorageClassError, match="not a numpy.ndarray"):
        NpyFormatter().write([1, 2], path)
    assert not path.exists()


def test_npy_refuses_pickled_and_corrupt_files(tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatastoreError, match="not a readable .npy file"):
        NpyFormatter().read(pickled)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not an array")
    with pytest.raises(DatastoreError, match="not a readable .npy file"):
        NpyFormatter().read(garbage)


@pytest.mark.parametrize("formatter", [YamlFormatter(), JsonFormatter(), NpyFormatter()])
def test_missing_file_stays_file_not_found(tmp_path: Path, formatter: Formatter) -> None:
    with pytest.raises(FileNotFoundError):
        formatter.read(tmp_path / "absent")

"""Pin the public names of ``butler`` so the API does not drift, and keep ``import butler`` light."""

from __future__ import annotations

import subprocess
import sys
import types

import butler

EXPECTED = {
    "Butler",
    "ButlerError",
    "CollectionType",
    "CollectionTypeError",
    "ConflictingDefinitionError",
    "DataCoordinate",
    "DataIdValue",
    "DatasetFileCorruptError",
    "DatasetFileExistsError",
    "DatasetFileMissingError",
    "DatasetNotFoundError",
    "DatasetRef",
    "DatasetType",
    "DatastoreError",
    "DatastoreFullError",
    "DatastorePathError",
    "Dimension",
    "DimensionError",
    "DimensionRecordError",
    "DimensionUniverse",
    "DimensionValueError",
    "FileDatastore",
    "InvalidDataIdError",
    "InvalidNameError",
    "LimitedButler",
    "MissingCollectionError",
    "MissingDatasetTypeError",
    "QuantumBackedButler",
    "QueryError",
    "QuerySyntaxError",
    "Registry",
    "RepositoryError",
    "StorageClass",
    "StorageClassError",
    "StoredFileInfo",
    "TRACE",
    "UnknownDimensionError",
    "VERBOSE",
    "check_collection_name",
    "gc_paused",
    "get_storage_class",
}


def test_exported_names() -> None:
    assert set(butler.__all__) == EXPECTED
    for name in EXPECTED:
        value = getattr(butler, name)
        assert value is not None, name
        if isinstance(value, int):  # the log levels VERBOSE and TRACE
            continue
        if not isinstance(value, types.UnionType):  # a type alias (DataIdValue) has no home module
            assert value.__module__.startswith("butler"), name


def test_import_butler_is_light() -> None:
    code = (
        "import sys, butler\n"
        "heavy = ('sqlalchemy', 'numpy', 'butler.registry', 'butler._butler')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "butler.QuantumBackedButler\n"
        "assert 'sqlalchemy' not in sys.modules, 'the limited butler must not need sqlalchemy'\n"
        "butler.Butler\n"
        "assert 'sqlalchemy' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute() -> None:
    try:
        butler.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("expected AttributeError")

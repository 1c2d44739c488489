"""Damaged dataset files are a clear error naming the dataset and the file, never wrong data.

Each file's size and CRC-32 are recorded when it is written.  Reads compare the size always (a
0-byte file read back as None, a YAML file cut at a line boundary as a partial dict) and the
checksum where ``butler.yaml`` says ``datastore.verify_checksums: true``.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from butler import Butler, ButlerError, DatasetFileCorruptError, DatastoreError, QuantumBackedButler
from butler.registry import Registry
from quantumgraph import GraphReader
from quantumgraph.cli import main as pipetask_main

VALUE = {f"key{i}": [i, i * 2, i * 3] for i in range(8)}


@pytest.fixture
def repo_and_ref(tmp_path: Path) -> tuple[Butler, object, Path]:
    butler = Butler.create(tmp_path / "repo")
    butler.registry.insert_dimension_data({"instrument": [{"name": "Cam"}]})
    butler.register_dataset_type("summary", ("instrument",), "StructuredDataDict")
    ref = butler.put(VALUE, "summary", run="u/r", instrument="Cam")
    info = butler.get_records([ref.id])[ref.id]
    return butler, ref, butler.datastore.abspath(info)


def test_records_hold_size_and_crc32(repo_and_ref: tuple[Butler, object, Path]) -> None:
    butler, ref, path = repo_and_ref
    info = butler.get_records([ref.id])[ref.id]  # type: ignore[attr-defined]
    data = path.read_bytes()
    assert (info.file_size, info.checksum) == (len(data), zlib.crc32(data))
    assert butler.get(ref) == VALUE


def _cut_at_line(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: len(lines) // 2]))


@pytest.mark.parametrize("damage", ["empty", "cut at a line"])
def test_short_file_is_an_error_naming_dataset_and_file(
    repo_and_ref: tuple[Butler, object, Path], damage: str
) -> None:
    butler, ref, path = repo_and_ref
    size = path.stat().st_size
    if damage == "empty":
        path.write_bytes(b"")
    else:
        _cut_at_line(path)
        assert isinstance(yaml.safe_load(path.read_text()), dict)  # what used to be returned
    with pytest.raises(DatasetFileCorruptError) as info:
        butler.get(ref)
    message = str(info.value)
    assert str(ref.id) in message and str(path) in message  # type: ignore[attr-defined]
    assert f"was written with {size} bytes" in message
    assert isinstance(info.value, DatastoreError) and isinstance(info.value, ButlerError)


def test_checksum_is_verified_where_the_config_asks(repo_and_ref: tuple[Butler, object, Path]) -> None:
    butler, ref, path = repo_and_ref
    root = butler.root
    butler.close()
    data = bytearray(path.read_bytes())
    data[10] = ord("9") if data[10] != ord("9") else ord("8")  # same size, different bytes
    path.write_bytes(bytes(data))
    config = root / "butler.yaml"
    settings = yaml.safe_load(config.read_text())
    assert "verify_checksums" not in settings["datastore"]  # off by default for a local store
    settings["datastore"]["verify_checksums"] = True
    config.write_text(yaml.safe_dump(settings))
    with Butler(root) as checked, pytest.raises(DatasetFileCorruptError, match=r"checksum .* does not match"):
        checked.get(ref)


def test_quantum_backed_butler_checks_graph_records(repo_and_ref: tuple[Butler, object, Path]) -> None:
    butler, ref, path = repo_and_ref
    records = butler.get_records([ref.id])  # type: ignore[attr-defined]
    qbb = QuantumBackedButler(butler.datastore.root, butler.universe, {}, records)
    assert qbb.get(ref) == VALUE  # type: ignore[arg-type]
    _cut_at_line(path)
    with pytest.raises(DatasetFileCorruptError, match=str(path)):
        qbb.get(ref)  # type: ignore[arg-type]


def test_repository_of_schema_1_0_still_opens_and_reads(tmp_path: Path) -> None:
    """A repository made before checksums: its records table lacks the column; it is added on open."""
    root = tmp_path / "repo"
    with Butler.create(root) as butler:
        butler.registry.insert_dimension_data({"instrument": [{"name": "Cam"}]})
        butler.register_dataset_type("summary", ("instrument",), "StructuredDataDict")
        ref = butler.put(VALUE, "summary", run="u/r", instrument="Cam")
        url = butler.config.resolved_db(root)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE file_datastore_records DROP COLUMN checksum")
        conn.exec_driver_sql("UPDATE butler_attributes SET value = '1.0' WHERE name = 'schema_version'")
    engine.dispose()
    with Butler(root) as butler:
        assert butler.get(ref) == VALUE
        assert butler.get_records([ref.id])[ref.id].checksum is None
        again = butler.put(VALUE, "summary", run="u/r2", instrument="Cam")
        assert butler.get_records([again.id])[again.id].checksum is not None
    reg = Registry.open(url)
    try:
        assert reg.schema_version == "1.1"
    finally:
        reg.close()


def test_graph_carries_checksums_and_merge_records_what_it_finds(
    tmp_path: Path, pipeline_file: Path, demo_repo_on: Any
) -> None:
    """Inputs' records in the graph file keep size and checksum; the merge records both for outputs."""
    repo = demo_repo_on(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    graph_path = tmp_path / "g.qgraph"
    args = ["qgraph", "-b", str(repo), "-i", "DemoCam/defaults", "-o", "u/x", "--output-run", "u/x/run"]
    result = CliRunner().invoke(
        pipetask_main, [*args, "-p", str(pipeline_file), "--save-qgraph", str(graph_path)]
    )
    assert result.exit_code == 0, result.output
    with GraphReader(graph_path) as reader:
        graph = reader.read_all()
    with Butler(repo) as butler:
        registered = butler.get_records(graph.datastore_records)
    assert graph.datastore_records == registered and registered
    assert all(info.checksum is not None for info in registered.values())

    run = CliRunner().invoke(pipetask_main, ["run", "-b", str(repo), "-g", str(graph_path)])
    assert run.exit_code == 0, run.output
    with Butler(repo, collections="u/x") as butler:
        refs = butler.query_datasets("calexp")
        records = butler.get_records([r.id for r in refs])
        for info in records.values():
            data = butler.datastore.abspath(info).read_bytes()
            assert (info.file_size, info.checksum) == (len(data), zlib.crc32(data))

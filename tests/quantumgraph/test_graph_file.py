"""Tests of the QuantumGraph file format: round trips, random access, the index, corruption."""

from __future__ import annotations

import datetime
import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import quantumgraph._file as graph_file
from butler._dataset_type import DatasetRef, DatasetType
from butler._dimensions import DataCoordinate, DimensionUniverse
from butler._stored_file_info import StoredFileInfo
from quantumgraph import QuantumGraphError
from quantumgraph._file import BytesSource, GraphFileError, GraphReader, write_graph
from quantumgraph._ids import IdFactory
from quantumgraph._model import (
    FORMAT_MAJOR,
    ConnectionInfo,
    GraphHeader,
    Quantum,
    QuantumGraph,
    TaskInfo,
)

UNIVERSE = DimensionUniverse.default()
VISIT_DIMS = UNIVERSE.required_closure(("exposure", "detector"))  # instrument, detector, exposure
EXP_DIMS = UNIVERSE.required_closure(("exposure",))
DET_DIMS = UNIVERSE.required_closure(("detector",))

RAW = DatasetType("raw", VISIT_DIMS, "StructuredDataDict")
BIAS = DatasetType("bias", DET_DIMS, "StructuredDataDict")
POST = DatasetType("postISR", VISIT_DIMS, "StructuredDataDict")
CALEXP = DatasetType("calexp", VISIT_DIMS, "StructuredDataDict")
SUMMARY = DatasetType("summary", EXP_DIMS, "Json")
ISR_CONFIG = DatasetType("isr_config", (), "TaskConfig")
GATHER_CONFIG = DatasetType("gather_config", (), "TaskConfig")
# Not in the header: refs of this type must carry their dataset type inline.
LOG = DatasetType("isr_log", VISIT_DIMS, "Json")

OUTPUT_RUN = "u/test/run1"


def _did(exposure: int, detector: int) -> DataCoordinate:
    return DataCoordinate(VISIT_DIMS, ("Cam", detector, exposure))


class _RandomIds:
    """Stands in for IdFactory in a graph whose IDs are all plain uuid4 (no prefix to exploit)."""

    prefix = 0

    def next_id(self) -> uuid.UUID:
        return uuid.uuid4()


def make_graph(exposures: int = 3, detectors: int = 4, random_ids: bool = False) -> QuantumGraph:
    """A small graph exercising every encoding path.

    Covers: unprefixed raws with records (one with a storage-class override), a bias shared by
    many quanta, an input from a second run, ``multiple=True`` inputs, init outputs, an absent
    and an empty connection, an undeclared connection with a dataset type missing from the
    header, an output in a non-default run, a data ID in the self-describing form, a quantum
    with an unprefixed ID, and a record no quantum refers to.
    """
    ids: IdFactory | _RandomIds = _RandomIds() if random_ids else IdFactory()
    header = GraphHeader(
        tasks={
            "isr": TaskInfo(
                "isr",
                "pkg.IsrTask",
                {"doBias": True, "levels": [1, 2, 3], "nested": {"a": None}},
                ("exposure", "detector"),
                (
                    ConnectionInfo("raw", "raw", "input"),
                    ConnectionInfo("bias", "bias", "input"),
                    ConnectionInfo("dark", "bias", "input"),
                    ConnectionInfo("outputExposure", "postISR", "output"),
                    ConnectionInfo("config", "isr_config", "init_output"),
                ),
            ),
            "calibrate": TaskInfo(
                "calibrate",
                "pkg.CalibrateTask",
                {},
                ("exposure", "detector"),
                (
                    ConnectionInfo("exposure", "postISR", "input"),
                    ConnectionInfo("calexp", "calexp", "output"),
                ),
            ),
            "gather": TaskInfo(
                "gather",
                "pkg.GatherTask",
                {"x": 1.5},
                ("exposure",),
                (
                    ConnectionInfo("calexps", "calexp", "input", multiple=True),
                    ConnectionInfo("summary", "summary", "output"),
                    ConnectionInfo("config", "gather_config", "init_output"),
                ),
            ),
        },
        dataset_types={dt.name: dt for dt in (RAW, BIAS, POST, CALEXP, SUMMARY, ISR_CONFIG, GATHER_CONFIG)},
        universe_config=UNIVERSE.config,
        input_collections=("Cam/raw/all", "Cam/calib"),
        output_run=OUTPUT_RUN,
        output="u/test",
        init_outputs={
            "isr": [DatasetRef(ids.next_id(), ISR_CONFIG, DataCoordinate((), ()), OUTPUT_RUN)],
            "gather": [DatasetRef(ids.next_id(), GATHER_CONFIG, DataCoordinate((), ()), OUTPUT_RUN)],
        },
        pipeline_yaml="tasks:\n  isr: pkg.IsrTask\n",
        metadata={
            "created": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "user": "tester",
            "command_line": "pipetask qgraph ...",
            "counts": {"quanta": 2 * exposures * detectors + exposures},
        },
        id_prefix=ids.prefix,
    )
    records: dict[uuid.UUID, StoredFileInfo] = {}
    biases = []
    for d in range(detectors):
        ref = DatasetRef(uuid.uuid4(), BIAS, DataCoordinate(DET_DIMS, ("Cam", d)), "Cam/calib/bias")
        biases.append(ref)
        records[ref.id] = StoredFileInfo(ref.id, f"calib/bias_{d}.yaml", "yaml", "StructuredDataDict", 99)
    orphan = uuid.uuid4()
    records[orphan] = StoredFileInfo(orphan, "/abs/elsewhere.json", "json", "Json", 7)
    quanta: list[Quantum] = []
    posts: dict[tuple[int, int], DatasetRef] = {}
    for e in range(exposures):
        for d in range(detectors):
            raw = DatasetRef(uuid.uuid4(), RAW, _did(e, d), "Cam/raw/all")
            sc = "Json" if (e, d) == (0, 1) else "StructuredDataDict"
            records[raw.id] = StoredFileInfo(raw.id, f"raw/raw/raw_Cam_{d}_{e}.yaml", "yaml", sc, 1000 + d)
            # An unprefixed quantum ID exercises the sorted-ID index for quanta too.
            qid = uuid.uuid4() if (e, d) == (1, 2) else ids.next_id()
            post = DatasetRef(ids.next_id(), POST, _did(e, d), OUTPUT_RUN)
            posts[e, d] = post
            inputs = {"raw": [raw], "bias": [biases[d]]}
            if d == 0:
                inputs["dark"] = []  # empty, as opposed to absent
            outputs = {"outputExposure": [post]}
            if (e, d) == (0, 0):
                outputs["log"] = [DatasetRef(ids.next_id(), LOG, _did(e, d), OUTPUT_RUN)]
            data_id = _did(e, d)
            if (e, d) == (2, 3):
                # A data ID carrying an extra dimension takes the self-describing form.
                dims = ("instrument", "detector", "exposure", "day_obs")
                data_id = DataCoordinate(dims, ("Cam", d, e, 20260101))
            quanta.append(Quantum(qid, "isr", data_id, inputs, outputs))
    calexps: dict[int, list[DatasetRef]] = {}
    for e in range(exposures):
        for d in range(detectors):
            run = "u/test/elsewhere" if (e, d) == (1, 1) else OUTPUT_RUN
            cal = DatasetRef(ids.next_id(), CALEXP, _did(e, d), run)
            calexps.setdefault(e, []).append(cal)
            quanta.append(
                Quantum(
                    ids.next_id(), "calibrate", _did(e, d), {"exposure": [posts[e, d]]}, {"calexp": [cal]}
                )
            )
    for e in range(exposures):
        qid = ids.next_id()
        summary = DatasetRef(ids.next_id(), SUMMARY, DataCoordinate(EXP_DIMS, ("Cam", e)), OUTPUT_RUN)
        quanta.append(
            Quantum(
                qid,
                "gather",
                DataCoordinate(EXP_DIMS, ("Cam", e)),
                {"calexps": calexps[e]},
                {"summary": [summary]},
            )
        )
    return QuantumGraph(header, quanta, records)


def _records_of(graph: QuantumGraph, q: Quantum) -> dict[uuid.UUID, StoredFileInfo]:
    return {r.id: graph.datastore_records[r.id] for r in q.input_refs() if r.id in graph.datastore_records}


@pytest.fixture
def graph() -> QuantumGraph:
    return make_graph()


@pytest.fixture
def graph_path(tmp_path: Path, graph: QuantumGraph) -> Path:
    path = tmp_path / "g.qgraph"
    write_graph(path, graph, block_quanta=4)
    return path


# -- round trips --------------------------------------------------------------------------------


def test_exported_names() -> None:
    assert set(graph_file.__all__) == {
        "ByteSource",
        "BytesSource",
        "FileByteSource",
        "GraphFileError",
        "GraphReader",
        "write_graph",
    }
    assert issubclass(GraphFileError, ValueError)
    assert issubclass(GraphFileError, QuantumGraphError)


def test_round_trip_whole_graph(graph: QuantumGraph, graph_path: Path) -> None:
    with GraphReader(graph_path) as reader:
        loaded = reader.read_all()
        assert reader.format_version[0] == FORMAT_MAJOR
        assert len(reader) == len(graph)
        assert reader.counts["quanta"] == len(graph)
        assert reader.file_info["created"].tzinfo is not None
    assert loaded.header == graph.header
    assert loaded.quanta == graph.quanta
    assert loaded.datastore_records == graph.datastore_records
    assert loaded == graph
    # Refs keep exactly what they had: foreign and prefixed IDs, runs, dataset types.
    q0 = loaded.quanta[0]
    assert q0.outputs["log"][0].dataset_type == LOG
    assert loaded.quanta[0].inputs["dark"] == []
    assert "dark" not in loaded.quanta[1].inputs
    gather = loaded.quanta[-1]
    assert len(gather.inputs["calexps"]) == 4
    assert loaded.header.init_outputs == graph.header.init_outputs
    assert loaded.header.metadata["created"] == graph.header.metadata["created"]
    assert loaded.dependencies() == graph.dependencies()


@pytest.mark.parametrize("block_quanta", [1, 3, 64])
def test_round_trip_block_sizes(tmp_path: Path, graph: QuantumGraph, block_quanta: int) -> None:
    path = tmp_path / "g.qgraph"
    size = write_graph(path, graph, block_quanta=block_quanta)
    assert size == path.stat().st_size
    with GraphReader(path) as reader:
        assert reader.read_all() == graph
        assert reader.block_count == -(-len(graph) // block_quanta)


def test_round_trip_bytes_source(graph: QuantumGraph, graph_path: Path) -> None:
    with GraphReader(BytesSource(graph_path.read_bytes(), "mem://g")) as reader:
        assert reader.read_all() == graph
        assert reader.name == "mem://g"


def test_streaming_write_from_generator(tmp_path: Path, graph: QuantumGraph) -> None:
    consumed: list[int] = []

    def generate() -> Iterator[Quantum]:
        for i, q in enumerate(graph.quanta):
            consumed.append(i)
            yield q

    path = tmp_path / "streamed.qgraph"
    write_graph(path, header=graph.header, quanta=generate(), records=graph.datastore_records, block_quanta=5)
    assert consumed == list(range(len(graph)))
    with GraphReader(path) as reader:
        assert reader.read_all() == graph
    # Same bytes apart from the writer's timestamp: the two entry points share one encoder.
    whole = tmp_path / "whole.qgraph"
    write_graph(whole, graph, block_quanta=5)
    assert abs(whole.stat().st_size - path.stat().st_size) < 8


def test_write_refuses_bad_arguments(tmp_path: Path, graph: QuantumGraph) -> None:
    with pytest.raises(TypeError):
        write_graph(tmp_path / "x", graph, header=graph.header)
    with pytest.raises(TypeError):
        write_graph(tmp_path / "x", header=graph.header)


def test_write_failure_leaves_nothing(tmp_path: Path, graph: QuantumGraph) -> None:
    bad = Quantum(uuid.uuid4(), "no_such_task", _did(0, 0), {}, {})
    path = tmp_path / "bad.qgraph"
    with pytest.raises(GraphFileError, match="no_such_task") as info:
        write_graph(
            path,
            header=graph.header,
            quanta=[*graph.quanta[:6], bad],
            records=graph.datastore_records,
            block_quanta=4,
        )
    assert info.value.part == "block 1"
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_unstorable_config(tmp_path: Path, graph: QuantumGraph) -> None:
    graph.header.metadata["when"] = datetime.datetime(2026, 1, 1)  # naive: ambiguous
    with pytest.raises(GraphFileError, match="time zone") as info:
        write_graph(tmp_path / "g.qgraph", graph)
    assert info.value.part == "header"
    graph.header.metadata["when"] = {1, 2}
    with pytest.raises(GraphFileError, match="set"):
        write_graph(tmp_path / "g.qgraph", graph)
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_existing_file(tmp_path: Path, graph: QuantumGraph) -> None:
    path = tmp_path / "g.qgraph"
    path.write_bytes(b"old")
    write_graph(path, graph)
    with GraphReader(path) as reader:
        assert len(reader) == len(graph)


# -- random access ------------------------------------------------------------------------------


def test_single_quantum_reads(graph: QuantumGraph, graph_path: Path) -> None:
    with GraphReader(graph_path) as reader:
        for q in reversed(graph.quanta):
            got, records = reader.read_quantum(q.id)
            assert got == q
            assert records == _records_of(graph, q)
        raw_quantum, records = reader.read_quantum(graph.quanta[1].id)
        raw = raw_quantum.inputs["raw"][0]
        assert records[raw.id].storage_class == "Json"  # the override survived
        with pytest.raises(KeyError):
            reader.read_quantum(uuid.uuid4())
        with pytest.raises(KeyError):
            reader.read_quantum(graph.quanta[0].outputs["outputExposure"][0].id)  # a dataset, not a quantum


def test_single_quantum_read_touches_one_block(graph: QuantumGraph, graph_path: Path) -> None:
    class CountingSource(BytesSource):
        reads: list[tuple[int, int]] = []

        def read(self, offset: int, length: int) -> bytes:
            self.reads.append((offset, length))
            return super().read(offset, length)

    source = CountingSource(graph_path.read_bytes(), str(graph_path))
    with GraphReader(source) as reader:
        opened = len(source.reads)
        assert opened == 2  # head and tail probes cover preamble, header, footer and index
        q = graph.quanta[13]
        reader.read_quantum(q.id)
        assert len(source.reads) == opened + 1
        reader.read_quantum(graph.quanta[12].id)  # same block of 4: served from the cache
        assert len(source.reads) == opened + 1


def test_quantum_ids_and_labels(graph: QuantumGraph, graph_path: Path) -> None:
    with GraphReader(graph_path) as reader:
        assert reader.quantum_ids() == [q.id for q in graph.quanta]
        assert reader.quantum_task_labels() == [q.task_label for q in graph.quanta]
        assert [q.id for q in reader.iter_quanta()] == [q.id for q in graph.quanta]


def test_dataset_block_lookup(graph: QuantumGraph, graph_path: Path) -> None:
    first_use: dict[uuid.UUID, int] = {}
    with GraphReader(graph_path) as reader:
        for i, q in enumerate(graph.quanta):
            block = i // 4
            assert reader.find_dataset_block(q.id) == block
            for ref in q.output_refs():
                assert reader.find_dataset_block(ref.id) == block
            for ref in q.input_refs():
                first_use.setdefault(ref.id, block)
        producers = graph.producers()
        position = {q.id: i for i, q in enumerate(graph.quanta)}
        for dataset_id, block in first_use.items():
            if dataset_id in producers:
                assert reader.find_dataset_block(dataset_id) == position[producers[dataset_id]] // 4
            else:
                assert reader.find_dataset_block(dataset_id) == block  # existing input: first block using it
        assert reader.find_dataset_block(uuid.uuid4()) is None
        assert reader.find_dataset_block(reader.ids.decode(10**9)) is None  # prefixed but never assigned
        for refs in graph.header.init_outputs.values():
            assert reader.find_dataset_block(refs[0].id) is None


def test_dataset_table_with_many_pages(
    tmp_path: Path, graph: QuantumGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    import quantumgraph._file._writer as writer_module

    monkeypatch.setattr(writer_module, "ID_PAGE_ENTRIES", 3)
    path = tmp_path / "g.qgraph"
    write_graph(path, graph, block_quanta=4)
    first_use: dict[uuid.UUID, int] = {}
    for i, q in enumerate(graph.quanta):
        for ref in q.input_refs():
            first_use.setdefault(ref.id, i // 4)
    producers = graph.producers()
    with GraphReader(path) as reader:
        pages = [p for p, _, _ in reader.layout() if p.startswith("dataset table page")]
        assert len(pages) > 5
        for dataset_id, block in first_use.items():
            if dataset_id not in producers:
                assert reader.find_dataset_block(dataset_id) == block
        assert reader.find_dataset_block(uuid.UUID(int=0)) is None  # before the first page
        assert reader.find_dataset_block(uuid.UUID(int=(1 << 128) - 1)) is None  # after the last


def test_ids_out_of_order_are_still_indexed(tmp_path: Path, graph: QuantumGraph) -> None:
    """Quanta written against ID order cannot use the block ranges; each ID is listed instead."""
    path = tmp_path / "g.qgraph"
    shuffled = list(reversed(graph.quanta))
    write_graph(path, header=graph.header, quanta=shuffled, records=graph.datastore_records, block_quanta=3)
    with GraphReader(path) as reader:
        for i, q in enumerate(shuffled):
            assert reader.find_dataset_block(q.id) == i // 3
            assert reader.read_quantum(q.id)[0] == q
            for ref in q.output_refs():
                assert reader.find_dataset_block(ref.id) == i // 3
        assert reader.read_all().quanta == shuffled


def test_graph_without_prefixed_ids(tmp_path: Path) -> None:
    """Every ID stored as 16 bytes and found through the sorted table: slower, still exact."""
    graph = make_graph(random_ids=True)
    path = tmp_path / "g.qgraph"
    write_graph(path, graph, block_quanta=4)
    with GraphReader(path) as reader:
        assert reader.read_all() == graph
        assert reader.quantum_ids() == [q.id for q in graph.quanta]
        for i, q in enumerate(graph.quanta):
            assert reader.read_quantum(q.id)[0] == q
            for ref in q.output_refs():
                assert reader.find_dataset_block(ref.id) == i // 4
        assert reader.dependencies() == graph.dependencies()


def test_dependencies(graph: QuantumGraph, graph_path: Path) -> None:
    with GraphReader(graph_path) as reader:
        deps = reader.dependencies()
    assert deps == graph.dependencies()
    gather = graph.quanta[-1]
    assert len(deps[gather.id]) == 4
    assert deps[graph.quanta[0].id] == set()


def test_empty_graph(tmp_path: Path, graph: QuantumGraph) -> None:
    path = tmp_path / "empty.qgraph"
    write_graph(path, header=graph.header, quanta=[])
    with GraphReader(path) as reader:
        assert len(reader) == 0
        assert reader.quantum_ids() == []
        assert reader.dependencies() == {}
        loaded = reader.read_all()
    assert loaded.header == graph.header and loaded.quanta == [] and loaded.datastore_records == {}


def test_reader_stays_light() -> None:
    """A batch job opening a graph must not pay for the database, numerics or graph libraries."""
    code = (
        "import sys, quantumgraph._file\n"
        "heavy = [m for m in ('sqlalchemy', 'numpy', 'networkx', 'parsl') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- corruption ---------------------------------------------------------------------------------


def _part(path: Path, name: str) -> tuple[int, int]:
    with GraphReader(path) as reader:
        for part, offset, length in reader.layout():
            if part == name:
                return offset, length
    raise AssertionError(f"no part {name}")


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def _open_error(path: Path) -> GraphFileError:
    with pytest.raises(GraphFileError) as info:
        GraphReader(path)
    return info.value


def test_layout_covers_file(graph_path: Path) -> None:
    with GraphReader(graph_path) as reader:
        parts = reader.layout()
    assert parts[0][0] == "header" and parts[-1][0] == "footer"
    end = 32
    for _, offset, length in parts:
        assert offset == end
        end = offset + length
    assert end == graph_path.stat().st_size


@pytest.mark.parametrize("keep", [0, 5, 31, 100, -1, -36, -37])
def test_truncated(graph_path: Path, keep: int) -> None:
    data = graph_path.read_bytes()
    graph_path.write_bytes(data[:keep] if keep >= 0 else data[: len(data) + keep])
    err = _open_error(graph_path)
    assert str(graph_path) in str(err)
    if keep == 0:
        assert err.part == "header" and "empty" in err.reason
    elif keep in (5, 31):
        assert err.part == "header" and "truncated" in err.reason
    else:
        assert err.part == "footer" and "truncated" in err.reason


def test_flipped_byte_in_block(graph: QuantumGraph, graph_path: Path) -> None:
    offset, length = _part(graph_path, "block 2")
    _flip(graph_path, offset + length // 2)
    with GraphReader(graph_path) as reader:  # opening does not read blocks
        assert reader.read_quantum(graph.quanta[0].id)[0] == graph.quanta[0]
        with pytest.raises(GraphFileError, match="block 2: checksum mismatch") as info:
            reader.read_quantum(graph.quanta[9].id)
        assert info.value.part == "block 2"
        with pytest.raises(GraphFileError, match="block 2"):
            reader.read_all()
        with pytest.raises(GraphFileError, match="block 2"):
            reader.dependencies()


def test_flipped_byte_in_header(graph_path: Path) -> None:
    offset, length = _part(graph_path, "header")
    _flip(graph_path, offset + length // 2)
    err = _open_error(graph_path)
    assert err.part == "header" and err.reason == "checksum mismatch"


def test_flipped_byte_in_header_length(graph_path: Path) -> None:
    _flip(graph_path, 17)  # inside the preamble's header-length field
    err = _open_error(graph_path)
    assert err.part in ("header", "footer")


def test_flipped_byte_in_index(graph_path: Path) -> None:
    offset, length = _part(graph_path, "index")
    _flip(graph_path, offset + length // 2)
    err = _open_error(graph_path)
    assert err.part == "index" and err.reason == "checksum mismatch"


def test_flipped_byte_in_footer(graph_path: Path) -> None:
    offset, _ = _part(graph_path, "footer")
    _flip(graph_path, offset + 3)
    err = _open_error(graph_path)
    assert err.part == "footer" and err.reason == "checksum mismatch"


def test_flipped_byte_in_quantum_table(graph_path: Path) -> None:
    offset, length = _part(graph_path, "quantum table")
    _flip(graph_path, offset + length // 2)
    with GraphReader(graph_path) as reader:
        with pytest.raises(GraphFileError, match="quantum table: checksum mismatch"):
            reader.quantum_ids()


def test_flipped_byte_in_dataset_table(graph: QuantumGraph, graph_path: Path) -> None:
    offset, length = _part(graph_path, "dataset table page 0")
    _flip(graph_path, offset + length // 2)
    raw = graph.quanta[0].inputs["raw"][0]
    with GraphReader(graph_path) as reader:
        with pytest.raises(GraphFileError, match="dataset table page 0: checksum mismatch"):
            reader.find_dataset_block(raw.id)


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "not.qgraph"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 200)
    err = _open_error(path)
    assert err.part == "header" and "bad magic" in err.reason
    assert str(path) in str(err)


def test_future_major_version(graph_path: Path) -> None:
    data = bytearray(graph_path.read_bytes())
    struct.pack_into("<HH", data, 8, FORMAT_MAJOR + 1, 3)
    graph_path.write_bytes(bytes(data))
    err = _open_error(graph_path)
    assert err.part == "header"
    assert err.reason == f"file is format {FORMAT_MAJOR + 1}.x, this skybatch reads {FORMAT_MAJOR}.x"


def test_newer_minor_version_is_read(graph: QuantumGraph, graph_path: Path) -> None:
    """Minor versions only add: a 1.0 reader reads a 1.9 file (preamble and footer agree)."""
    import zlib

    data = bytearray(graph_path.read_bytes())
    struct.pack_into("<H", data, 10, 9)
    footer = len(data) - 36
    struct.pack_into("<H", data, footer + 22, 9)
    struct.pack_into("<I", data, footer + 24, zlib.crc32(bytes(data[footer : footer + 24])))
    graph_path.write_bytes(bytes(data))
    with GraphReader(graph_path) as reader:
        assert reader.format_version == (FORMAT_MAJOR, 9)
        assert reader.read_all() == graph


def test_missing_file_is_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        GraphReader(tmp_path / "nope.qgraph")


def test_reader_closes_descriptor_on_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.qgraph"
    path.write_bytes(b"garbage" * 10)
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(20):
        with pytest.raises(GraphFileError):
            GraphReader(path)
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    assert after <= before

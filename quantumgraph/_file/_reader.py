"""Random-access reader of QuantumGraph files.

Opening reads the two ends of the file (preamble and header at the front; footer and index at the
back), so reaching any one quantum afterwards costs one block read and decode, independent of the
graph's size.  That is what a batch job does: open, read its quantum, run.  Whole-graph access
(``read_all``, ``iter_quanta``, ``dependencies``) walks the blocks in file order.

This module is on the batch job's start-up path, so it imports only msgpack, zstandard, the
standard library and the butler foundation types.
"""

from __future__ import annotations

import bisect
import os
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import msgpack
import zstandard

from butler import DataCoordinate, DatasetRef, StoredFileInfo, gc_paused

from .._exceptions import GraphFileError, QuantumNotFoundError
from .._model import FORMAT_MAJOR, GraphHeader, Quantum, QuantumGraph
from ._byte_layout import (
    COUNTER_MASK,
    FOOTER,
    FOOTER_FIELDS,
    FOOTER_SIZE,
    MAGIC,
    PREAMBLE,
    PREAMBLE_SIZE,
    PROBE_SIZE,
    U32,
    U64,
    crc32,
    unpack_array,
)
from ._codec import (
    EXTRA_INPUTS,
    EXTRA_OUTPUTS,
    Q_DATA_ID,
    Q_EXTRA,
    Q_ID,
    Q_INPUTS,
    Q_OUTPUTS,
    Q_TASK,
    REF_ID,
    EncodedId,
    IdCodec,
    QuantumDecoder,
    Tables,
    decode_header,
    uuid_from_int,
)
from ._source import ByteSource, FileByteSource

_Section = tuple[int, int, int]  # offset, length, crc32


class GraphReader:
    """Reads a QuantumGraph file written by :func:`write_graph`.

    ``source`` is a path or any :class:`ByteSource` (e.g. a future S3 byte-range source).
    Every problem with the bytes raises :class:`GraphFileError` naming the part; a missing file
    raises the usual :class:`OSError`.  Use as a context manager or call :meth:`close`.
    """

    def __init__(self, source: str | os.PathLike[str] | ByteSource) -> None:
        if isinstance(source, str | os.PathLike):
            self._source: ByteSource = FileByteSource(source)
        else:
            self._source = source
        self.name = self._source.name
        self._dctx = zstandard.ZstdDecompressor()
        self._cached_block = -1
        self._cached_records: list[Any] = []
        self._cached_positions: dict[EncodedId, int] | None = None
        self._quantum_ids: list[uuid.UUID] | None = None
        self._id_pages_first: list[bytes] | None = None
        self._cached_page = (-1, b"")
        try:
            self._open()
        except BaseException:
            self._source.close()
            raise

    # -- opening ---------------------------------------------------------------------------------

    def _error(self, part: str, reason: str) -> GraphFileError:
        return GraphFileError(self.name, part, reason)

    def _open(self) -> None:
        src = self._source
        size = self._size = src.size()
        head = src.read(0, min(size, PROBE_SIZE))
        if head[: len(MAGIC)] != MAGIC:
            if not head:
                raise self._error("header", "bad magic: the file is empty")
            if MAGIC.startswith(head):
                raise self._error("header", f"truncated: the file is only {size} bytes")
            raise self._error(
                "header", f"bad magic: not a skybatch QuantumGraph file (starts with {head[:8]!r})"
            )
        if len(head) < PREAMBLE_SIZE:
            raise self._error("header", f"truncated: the file is only {size} bytes")
        _, major, minor, _flags, header_length, header_crc, _ = PREAMBLE.unpack_from(head)
        if major != FORMAT_MAJOR:
            raise self._error("header", f"file is format {major}.x, this skybatch reads {FORMAT_MAJOR}.x")
        self.format_version = (major, minor)

        if size < PREAMBLE_SIZE + header_length + FOOTER_SIZE:
            raise self._error("footer", f"truncated: the file is only {size} bytes")
        tail_start = max(0, size - PROBE_SIZE)
        tail = src.read(tail_start, size - tail_start)
        footer = tail[-FOOTER_SIZE:]
        if len(footer) < FOOTER_SIZE or footer[-len(MAGIC) :] != MAGIC:
            raise self._error(
                "footer",
                f"end magic missing: the file is truncated or was not completely written ({size} bytes)",
            )
        index_offset, index_length, index_crc, f_major, f_minor, footer_crc, _ = FOOTER.unpack(footer)
        if crc32(footer[: FOOTER_FIELDS.size]) != footer_crc:
            raise self._error("footer", "checksum mismatch")
        if (f_major, f_minor) != (major, minor):
            raise self._error(
                "footer", f"version {f_major}.{f_minor} differs from the header's {major}.{minor}"
            )

        self._header_length = header_length
        self._index_offset, self._index_length = index_offset, index_length
        index_raw = self._load("index", (index_offset, index_length, index_crc), tail, tail_start)
        index = self._unpack("index", index_raw)
        try:
            self._setup_index(index)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            raise self._error("index", f"malformed: {type(err).__name__}: {err}") from err
        header_raw = self._load("header", (PREAMBLE_SIZE, header_length, header_crc), head, 0)
        doc = self._unpack("header", header_raw)
        try:
            self._setup_header(doc, index)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            raise self._error("header", f"malformed: {type(err).__name__}: {err}") from err

    def _setup_index(self, index: dict[str, Any]) -> None:
        blocks = index["blocks"]
        self._block_offset = unpack_array(U64, blocks["offset"])
        self._block_length = unpack_array(U32, blocks["length"])
        self._block_crc = unpack_array(U32, blocks["crc"])
        self._block_quanta = unpack_array(U32, blocks["quanta"])
        ranges = index["ranges"]
        self._range_min = unpack_array(U64, ranges["min"])
        self._range_max = unpack_array(U64, ranges["max"])
        self._range_block = unpack_array(U32, ranges["block"])
        n = len(self._block_offset)
        if not (n == len(self._block_length) == len(self._block_crc) == len(self._block_quanta)):
            raise ValueError("block table columns differ in length")
        if not (len(self._range_min) == len(self._range_max) == len(self._range_block)):
            raise ValueError("range table columns differ in length")
        self._n_quanta = sum(self._block_quanta)
        self._ids_index: dict[str, Any] | None = index["ids"]
        qt = index["quantum_table"]
        self._quantum_table: _Section = (int(qt[0]), int(qt[1]), int(qt[2]))
        rs = index["records"]
        self._records_section: _Section | None = None if rs is None else (int(rs[0]), int(rs[1]), int(rs[2]))
        self.counts: dict[str, Any] = dict(index.get("counts", {}))

    def _setup_header(self, doc: dict[str, Any], index: dict[str, Any]) -> None:
        header, data_id_dims, _ = decode_header(doc)
        self.file_info: dict[str, Any] = dict(doc.get("file", {}))
        self.tables = Tables(
            header,
            data_id_dims,
            list(doc["runs"]) + list(index["runs"]),
            list(doc["formatters"]) + list(index["formatters"]),
            list(doc["storage_classes"]) + list(index["storage_classes"]),
        )
        self.ids = IdCodec(header.id_prefix)
        self._decoder = QuantumDecoder(self.tables, self.ids)
        self._header_records: dict[uuid.UUID, StoredFileInfo] = {}
        empty = DataCoordinate((), ())
        init_outputs: dict[str, list[DatasetRef]] = {}
        for label, refs in doc["init_outputs"].items():
            init_outputs[label] = [self._decoder.ref(r, None, empty, self._header_records) for r in refs]
        header.init_outputs = init_outputs
        # Format 1.2 adds the run's own init outputs (packages); older files have none.
        header.global_init_outputs = [
            self._decoder.ref(r, None, empty, self._header_records)
            for r in doc.get("global_init_outputs", ())
        ]
        self._init_output_ids = {r.id for r in header.all_init_outputs()}
        self.header: GraphHeader = header

    def _load(self, part: str, section: _Section, blob: bytes | None = None, blob_start: int = 0) -> bytes:
        """Bytes of one section, checked against its length and checksum.

        ``blob`` is an already-read stretch of the file starting at ``blob_start``; a section
        entirely inside it costs no further read.
        """
        offset, length, crc = section
        if offset < 0 or length < 0 or offset + length > self._size - FOOTER_SIZE:
            raise self._error(
                part, f"truncated: needs bytes {offset}-{offset + length} but the file has {self._size}"
            )
        if blob is not None and blob_start <= offset and offset + length <= blob_start + len(blob):
            data = blob[offset - blob_start : offset - blob_start + length]
        else:
            data = self._source.read(offset, length)
        if len(data) != length:
            raise self._error(part, f"truncated: read {len(data)} of {length} bytes at offset {offset}")
        if crc32(data) != crc:
            raise self._error(part, "checksum mismatch")
        return data

    def _unpack(self, part: str, data: bytes) -> Any:
        """Decompress and decode a section, turning any library error into GraphFileError."""
        try:
            payload = self._dctx.decompress(data)
        except zstandard.ZstdError as err:
            raise self._error(part, f"cannot decompress: {err}") from err
        try:
            return msgpack.unpackb(payload, raw=False, strict_map_key=False, timestamp=3)
        except (ValueError, TypeError, msgpack.UnpackException) as err:
            raise self._error(part, f"cannot decode: {type(err).__name__}: {err}") from err

    # -- context management ----------------------------------------------------------------------

    def close(self) -> None:
        self._source.close()
        self._cached_records = []
        self._cached_positions = None

    def __enter__(self) -> GraphReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return self._n_quanta

    def __repr__(self) -> str:
        return f"GraphReader({self.name!r}, {self._n_quanta} quanta, format {self.format_version})"

    @property
    def block_count(self) -> int:
        return len(self._block_offset)

    # -- blocks ----------------------------------------------------------------------------------

    def _block(self, b: int) -> list[Any]:
        """The decoded records of block ``b``; the last one is cached, since a job reading
        several quanta usually finds them next to each other."""
        if b == self._cached_block:
            return self._cached_records
        part = f"block {b}"
        if not 0 <= b < len(self._block_offset):
            raise self._error(part, f"no such block; the file has {len(self._block_offset)}")
        raw = self._load(part, (self._block_offset[b], self._block_length[b], self._block_crc[b]))
        records = self._unpack(part, raw)
        if type(records) is not list or len(records) != self._block_quanta[b]:
            raise self._error(part, "malformed: wrong number of quanta")
        self._cached_block = b
        self._cached_records = records
        self._cached_positions = None
        return records

    def _decode(
        self, b: int, rec: Any, with_records: bool = True
    ) -> tuple[Quantum, dict[uuid.UUID, StoredFileInfo]]:
        try:
            return self._decoder.quantum(rec, with_records)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            raise self._error(f"block {b}", f"malformed quantum: {type(err).__name__}: {err}") from err

    def _range_block_of(self, counter: int) -> int | None:
        i = bisect.bisect_right(self._range_min, counter) - 1
        if i >= 0 and counter <= self._range_max[i]:
            return self._range_block[i]
        return None

    def _table_block_of(self, key: bytes) -> int | None:
        """Look ``key`` up in the sorted ID table: bisect the page directory, read one page."""
        ids = self._ids_index
        if ids is None:
            return None
        try:
            if self._id_pages_first is None:
                first = ids["first"]
                self._id_pages_first = [first[i : i + 16] for i in range(0, len(first), 16)]
                self._id_pages = (
                    unpack_array(U64, ids["offset"]),
                    unpack_array(U32, ids["length"]),
                    unpack_array(U32, ids["crc"]),
                )
                self._id_width = 16 + int(ids["width"])
            p = bisect.bisect_right(self._id_pages_first, key) - 1
        except (KeyError, TypeError, ValueError) as err:
            raise self._error("index", f"malformed dataset table: {err}") from err
        if p < 0:
            return None
        if self._cached_page[0] == p:
            page = self._cached_page[1]
        else:
            offsets, lengths, crcs = self._id_pages
            page = self._load(f"dataset table page {p}", (offsets[p], lengths[p], crcs[p]))
            self._cached_page = (p, page)
        w = self._id_width
        lo, hi = 0, len(page) // w
        while lo < hi:
            mid = (lo + hi) // 2
            k = page[mid * w : mid * w + 16]
            if k < key:
                lo = mid + 1
            elif k > key:
                hi = mid
            else:
                return int.from_bytes(page[mid * w + 16 : (mid + 1) * w], "big")
        return None

    def find_dataset_block(self, dataset_id: uuid.UUID) -> int | None:
        """The block holding ``dataset_id``: its producer's block for a graph-assigned ID, the first
        block that uses it for an existing input; None if no block refers to it (init outputs
        live in the header).  Also works for quantum IDs."""
        if dataset_id in self._init_output_ids:
            return None
        counter = self.ids.counter(dataset_id)
        if counter is not None:
            b = self._range_block_of(counter)
            if b is not None:
                return b
        return self._table_block_of(dataset_id.bytes)

    # -- single quanta ---------------------------------------------------------------------------

    def read_quantum(self, quantum_id: uuid.UUID) -> tuple[Quantum, dict[uuid.UUID, StoredFileInfo]]:
        """One quantum and the datastore records of its inputs, reading at most one block.

        Raises QuantumNotFoundError (a KeyError) if the file has no quantum with this ID.
        """
        b = self.find_dataset_block(quantum_id)
        if b is None:
            raise QuantumNotFoundError(f"quantum {quantum_id} is not in {self.name}")
        records = self._block(b)
        if self._cached_positions is None:
            self._cached_positions = {rec[Q_ID]: i for i, rec in enumerate(records)}
        i = self._cached_positions.get(self.ids.encode(quantum_id))
        if i is None:
            raise QuantumNotFoundError(f"quantum {quantum_id} is not in {self.name}")
        return self._decode(b, records[i])

    # -- whole graph -----------------------------------------------------------------------------

    def quantum_ids(self) -> list[uuid.UUID]:
        """Every quantum ID in file order (a dependency-respecting order), without reading blocks."""
        if self._quantum_ids is None:
            with gc_paused():
                self._quantum_ids = self._read_quantum_table()
        return list(self._quantum_ids)

    def _read_quantum_table(self) -> list[uuid.UUID]:
        raw = self._load("quantum table", self._quantum_table)
        doc = self._unpack("quantum table", raw)
        try:
            deltas = unpack_array("q", doc["delta"])
            if len(deltas) != self._n_quanta:
                raise ValueError(f"{len(deltas)} entries for {self._n_quanta} quanta")
            base = self.ids.base
            make = uuid_from_int
            out: list[uuid.UUID] = []
            append = out.append
            c = 0
            for d in deltas:
                c += d
                if not 0 <= c <= COUNTER_MASK:
                    raise ValueError(f"counter {c} out of range")
                append(make(base | c))
            for pos, key in doc["foreign"]:
                out[pos] = self.ids.decode(key)
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise self._error("quantum table", f"malformed: {type(err).__name__}: {err}") from err
        return out

    def quantum_task_labels(self) -> list[str]:
        """The task label of each quantum, parallel to :meth:`quantum_ids`, without reading blocks."""
        doc = self._unpack("quantum table", self._load("quantum table", self._quantum_table))
        try:
            labels = [t.label for t in self.tables.tasks]
            return [labels[i] for i in unpack_array(U32, doc["task"])]
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise self._error("quantum table", f"malformed: {type(err).__name__}: {err}") from err

    def layout(self) -> list[tuple[str, int, int]]:
        """(part, offset, length) of every part of the file, in file order: for inspection tools
        and for tests that damage one part on purpose."""
        parts: list[tuple[str, int, int]] = [("header", PREAMBLE_SIZE, self._header_length)]
        for b in range(len(self._block_offset)):
            parts.append((f"block {b}", self._block_offset[b], self._block_length[b]))
        parts.append(("quantum table", self._quantum_table[0], self._quantum_table[1]))
        if self._ids_index is not None:
            offsets = unpack_array(U64, self._ids_index["offset"])
            lengths = unpack_array(U32, self._ids_index["length"])
            for p, (o, n) in enumerate(zip(offsets, lengths, strict=True)):
                parts.append((f"dataset table page {p}", o, n))
        if self._records_section is not None:
            parts.append(("records", self._records_section[0], self._records_section[1]))
        parts.append(("index", self._index_offset, self._index_length))
        parts.append(("footer", self._size - FOOTER_SIZE, FOOTER_SIZE))
        return parts

    def iter_quanta_with_records(self) -> Iterator[tuple[Quantum, dict[uuid.UUID, StoredFileInfo]]]:
        """Every quantum in file order with the datastore records stored beside it."""
        for b in range(len(self._block_offset)):
            for rec in self._block(b):
                yield self._decode(b, rec)

    def iter_quanta(self) -> Iterator[Quantum]:
        """Every quantum in file order, one block in memory at a time."""
        for b in range(len(self._block_offset)):
            for rec in self._block(b):
                yield self._decode(b, rec, with_records=False)[0]

    def iter_quantum_summaries(self) -> Iterator[tuple[uuid.UUID, str, DataCoordinate]]:
        """(ID, task label, data ID) of every quantum in file order, without building any ref.

        What clustering needs to group and name jobs: each block is read once, as by
        :meth:`dependencies`, but only the first three fields of each stored quantum are decoded,
        so it costs a fraction of :meth:`iter_quanta`.
        """
        labels = [t.label for t in self.tables.tasks]
        dims = self.tables.task_dims
        decode = self.ids.decode
        for b in range(len(self._block_offset)):
            block = self._block(b)
            out: list[tuple[uuid.UUID, str, DataCoordinate]] = []
            try:
                for rec in block:
                    t = rec[Q_TASK]
                    dv = rec[Q_DATA_ID]
                    if type(dv) is dict:
                        data_id = DataCoordinate(tuple(dv), tuple(dv.values()))
                    else:
                        data_id = DataCoordinate(dims[t], tuple(dv))
                    out.append((decode(rec[Q_ID]), labels[t], data_id))
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
                raise self._error(f"block {b}", f"malformed quantum: {type(err).__name__}: {err}") from err
            yield from out

    def orphan_records(self) -> dict[uuid.UUID, StoredFileInfo]:
        """Records given to the writer for datasets no quantum refers to (kept so nothing is lost)."""
        out: dict[uuid.UUID, StoredFileInfo] = {}
        if self._records_section is None:
            return out
        doc = self._unpack("records", self._load("records", self._records_section))
        tables = self.tables
        try:
            for key, path, fmt, size, sc, *_later in doc:  # later minor versions may append
                rid = self.ids.decode(key)
                out[rid] = StoredFileInfo(rid, path, tables.formatters[fmt], tables.storage_classes[sc], size)
        except (IndexError, TypeError, ValueError) as err:
            raise self._error("records", f"malformed: {type(err).__name__}: {err}") from err
        return out

    def read_all(self) -> QuantumGraph:
        """The whole graph: header, every quantum in file order and every stored record."""
        quanta: list[Quantum] = []
        records: dict[uuid.UUID, StoredFileInfo] = dict(self._header_records)
        with gc_paused():
            for q, recs in self.iter_quanta_with_records():
                quanta.append(q)
                records.update(recs)
            records.update(self.orphan_records())
        return QuantumGraph(self.header, quanta, records)

    def dependencies(self) -> dict[uuid.UUID, set[uuid.UUID]]:
        """Quantum ID -> IDs of the quanta whose outputs it reads, for every quantum.

        Works on the raw block records (encoded IDs as dict keys, no DatasetRef or DataCoordinate
        built), which is what makes it fast enough for BPS on large graphs.
        """
        with gc_paused():
            return self._dependencies()

    def _dependencies(self) -> dict[uuid.UUID, set[uuid.UUID]]:
        producer: dict[EncodedId, EncodedId] = {}
        consumers: list[tuple[EncodedId, list[EncodedId]]] = []
        for b in range(len(self._block_offset)):
            try:
                for rec in self._block(b):
                    qid = rec[Q_ID]
                    for refs in rec[Q_OUTPUTS]:
                        if refs:
                            for r in refs:
                                producer[r[REF_ID]] = qid
                    keys = [r[REF_ID] for refs in rec[Q_INPUTS] if refs for r in refs]
                    if len(rec) > Q_EXTRA:
                        extra = rec[Q_EXTRA]
                        for refs in extra.get(EXTRA_OUTPUTS, {}).values():
                            for r in refs:
                                producer[r[REF_ID]] = qid
                        for refs in extra.get(EXTRA_INPUTS, {}).values():
                            keys.extend(r[REF_ID] for r in refs)
                    consumers.append((qid, keys))
            except (KeyError, IndexError, TypeError, AttributeError) as err:
                raise self._error(f"block {b}", f"malformed quantum: {type(err).__name__}: {err}") from err
        decode = self.ids.decode
        as_uuid: dict[EncodedId, uuid.UUID] = {}
        deps: dict[uuid.UUID, set[uuid.UUID]] = {}
        for qid, keys in consumers:
            u = as_uuid.get(qid)
            if u is None:
                u = as_uuid[qid] = decode(qid)
            found: set[uuid.UUID] = set()
            for k in keys:
                p = producer.get(k)
                if p is not None:
                    pu = as_uuid.get(p)
                    if pu is None:
                        pu = as_uuid[p] = decode(p)
                    found.add(pu)
            deps[u] = found
        return deps

"""Streaming writer of QuantumGraph files.

Quanta arrive one at a time (from a whole :class:`QuantumGraph` or any iterable the builder
yields) and leave as compressed blocks as soon as a block is full, so memory holds one block plus
the index arrays whatever the graph's size.  The file is written under a temporary name in the
target directory and renamed only once complete, so a reader never sees a half-written graph.

Layout (details in ``docs/qgraph-format.md``)::

    preamble | header | block 0 | block 1 | ... | quantum table | id-table pages | records | index | footer
"""

from __future__ import annotations

import bisect
import datetime
import os
import sys
import uuid
from array import array
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

import msgpack
import zstandard

from butler import DimensionUniverse, StoredFileInfo

from .._exceptions import GraphFileError
from .._model import FORMAT_MAJOR, FORMAT_MINOR, GraphHeader, Quantum, QuantumGraph
from ._byte_layout import (
    COMPRESSION_LEVEL,
    DEFAULT_BLOCK_QUANTA,
    FOOTER,
    FOOTER_FIELDS,
    ID_PAGE_ENTRIES,
    MAGIC,
    PREAMBLE,
    U32,
    U64,
    crc32,
    pack_array,
)
from ._codec import Q_ID, Q_TASK, IdCodec, QuantumEncoder, Tables, encode_header

PathLike = str | os.PathLike[str]


def write_graph(
    path: PathLike,
    graph: QuantumGraph | None = None,
    *,
    header: GraphHeader | None = None,
    quanta: Iterable[Quantum] | None = None,
    records: Mapping[uuid.UUID, StoredFileInfo] | None = None,
    block_quanta: int = DEFAULT_BLOCK_QUANTA,
) -> int:
    """Write a QuantumGraph file and return its size in bytes.

    Pass either a whole ``graph`` or a ``header`` with an iterable of ``quanta`` (consumed once,
    in order; a generator is fine) and the datastore ``records`` of existing inputs.  Quanta must
    come in the order their IDs were assigned (the builder's order), which is what lets the index
    find any graph-assigned ID from its counter alone; a block whose IDs break that order is still
    written correctly, its IDs are just indexed one by one.

    Raises GraphFileError (part ``header`` or ``block N``) for content that cannot be stored, e.g.
    a config value msgpack cannot represent or a quantum whose task is not in the header.  The
    target is untouched unless the whole file was written.
    """
    if graph is not None:
        if header is not None or quanta is not None or records is not None:
            raise TypeError("write_graph takes either a graph or header/quanta/records, not both")
        header, quanta, records = graph.header, graph.quanta, graph.datastore_records
    elif header is None or quanta is None:
        raise TypeError("write_graph needs a graph, or a header and an iterable of quanta")
    if block_quanta < 1:
        raise ValueError(f"block_quanta must be positive, got {block_quanta}")
    target = os.path.abspath(os.fspath(path))
    directory, base = os.path.split(target)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            writer = _Writer(f, target, header, records if records is not None else {}, block_quanta)
            for q in quanta:
                writer.add(q)
            size = writer.finish()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return size


def _file_info() -> dict[str, Any]:
    """Who wrote the file, where, when and with what command: for operators reading a stray graph."""
    # Imported here: only writing needs them, and readers sit on every batch job's start-up path.
    import getpass
    import shlex
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid()) if hasattr(os, "getuid") else ""
    try:
        from importlib.metadata import version

        writer = f"skybatch {version('skybatch')}"
    except Exception:
        writer = "skybatch"
    return {
        "created": datetime.datetime.now(datetime.UTC),
        "user": user,
        "host": socket.gethostname(),
        "command_line": shlex.join(sys.argv),
        "writer": writer,
        "format": f"{FORMAT_MAJOR}.{FORMAT_MINOR}",
    }


def _task_data_id_dimensions(header: GraphHeader) -> dict[str, tuple[str, ...]]:
    """The dimension tuple a task's quantum data IDs carry: the required closure of its dimensions.

    Stored in the header so a reader rebuilds data IDs without the universe.  When the universe
    config cannot be used, the declared dimensions stand in; quanta whose data IDs differ are
    still stored exactly, in the longer self-describing form.
    """
    try:
        universe = DimensionUniverse(header.universe_config)
        return {label: universe.required_closure(t.dimensions) for label, t in header.tasks.items()}
    except Exception:
        return {label: tuple(t.dimensions) for label, t in header.tasks.items()}


def _msgpack_default(obj: object) -> object:
    if isinstance(obj, datetime.datetime):
        raise TypeError(f"datetime {obj!r} has no time zone; store timezone-aware datetimes")
    raise TypeError(f"cannot store a {type(obj).__name__} ({obj!r}) in a graph file")


def _check_header(name: str, header: GraphHeader) -> None:
    for label, task in header.tasks.items():
        if label != task.label:
            raise GraphFileError(name, "header", f"task stored under {label!r} is labelled {task.label!r}")
    for key, dt in header.dataset_types.items():
        if key != dt.name:
            raise GraphFileError(name, "header", f"dataset type stored under {key!r} is named {dt.name!r}")


class _Writer:
    """The state of one file being written: position, current block and index arrays."""

    def __init__(
        self,
        f: BinaryIO,
        name: str,
        header: GraphHeader,
        records: Mapping[uuid.UUID, StoredFileInfo],
        block_quanta: int,
    ) -> None:
        _check_header(name, header)
        self.f = f
        self.name = name
        self.records = records
        self.block_quanta = block_quanta
        self.ids = IdCodec(header.id_prefix)
        runs: list[str] = []
        for run in (header.output_run, *header.input_collections):
            if run not in runs:
                runs.append(run)
        storage_classes = sorted({dt.storage_class for dt in header.dataset_types.values()})
        self.tables = Tables(header, _task_data_id_dimensions(header), runs, [], storage_classes)
        self.encoder = QuantumEncoder(self.tables, self.ids, records)
        self.cctx = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)
        self.pos = 0
        # Index arrays: per block, per range-indexed block, per quantum; plus unprefixed IDs.
        # Arrays rather than lists: 8 bytes per entry, which is what lets 2 million quanta stream.
        self.block_offset = array(U64)
        self.block_length = array(U32)
        self.block_crc = array(U32)
        self.block_count = array(U32)
        self.range_min = array(U64)
        self.range_max = array(U64)
        self.range_block = array(U32)
        self.quantum_task = array(U32)
        self.quantum_delta = array("q")
        self.quantum_foreign: list[list[Any]] = []
        self._last_counter = 0
        self.id_table: dict[bytes, int] = {}
        self.task_counts = [0] * len(self.tables.tasks)
        self.block: list[list[Any]] = []
        self.n_quanta = 0

        try:
            self.encoder.in_header = True
            doc = encode_header(header, self.tables, self.encoder, _file_info(), block_quanta)
            self.encoder.in_header = False
            payload = msgpack.packb(doc, use_bin_type=True, datetime=True, default=_msgpack_default)
        except (TypeError, ValueError, OverflowError) as err:
            raise GraphFileError(name, "header", f"cannot be written: {err}") from err
        # Init outputs are in the header, not in any block: their IDs need no block index entry.
        self.encoder.owned.clear()
        self.encoder.borrowed.clear()
        self.encoder.foreign.clear()
        self.encoder.foreign_owned.clear()
        self.header_table_sizes = (
            len(self.tables.runs),
            len(self.tables.formatters),
            len(self.tables.storage_classes),
        )
        data = self.cctx.compress(payload)
        self._write(PREAMBLE.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, 0, len(data), crc32(data), 0))
        self._write(data)

    def _write(self, data: bytes) -> tuple[int, int, int]:
        """Append ``data``; return its (offset, length, crc32) for whoever points at it."""
        offset = self.pos
        self.f.write(data)
        self.pos += len(data)
        return offset, len(data), crc32(data)

    def add(self, q: Quantum) -> None:
        try:
            rec = self.encoder.quantum(q)
        except (TypeError, ValueError, AttributeError, KeyError) as err:
            raise GraphFileError(
                self.name, f"block {len(self.block_offset)}", f"cannot write quantum {q.id}: {err}"
            ) from err
        t = rec[Q_TASK]
        self.task_counts[t] += 1
        qid = rec[Q_ID]
        self.quantum_task.append(t)
        if type(qid) is int:
            self.quantum_delta.append(qid - self._last_counter)
            self._last_counter = qid
        else:
            self.quantum_delta.append(0)
            self.quantum_foreign.append([self.n_quanta, qid])
        self.n_quanta += 1
        self.block.append(rec)
        if len(self.block) >= self.block_quanta:
            self._flush()

    def _flush(self) -> None:
        """Compress and write the current block, then file its IDs in the index."""
        if not self.block:
            return
        b = len(self.block_offset)
        try:
            payload = msgpack.packb(self.block, use_bin_type=True, default=_msgpack_default)
        except (TypeError, ValueError, OverflowError) as err:
            raise GraphFileError(self.name, f"block {b}", f"cannot be written: {err}") from err
        offset, length, crc = self._write(self.cctx.compress(payload))
        self.block_offset.append(offset)
        self.block_length.append(length)
        self.block_crc.append(crc)
        self.block_count.append(len(self.block))
        self.block = []

        enc = self.encoder
        id_table = self.id_table
        owned = enc.owned
        lo = min(owned) if owned else 0
        hi = max(owned) if owned else -1
        if owned and (not self.range_max or lo > self.range_max[-1]):
            self.range_min.append(lo)
            self.range_max.append(hi)
            self.range_block.append(b)
        else:
            # IDs that do not rise through the file cannot be range-indexed: list them one by one.
            # A producer's block replaces a consumer's that an earlier block may have filed.
            base = self.ids.base
            for c in owned:
                id_table[(base | c).to_bytes(16, "big")] = b
            lo, hi = 0, -1
        if enc.borrowed:
            base = self.ids.base
            rmin, rmax = self.range_min, self.range_max
            for c in enc.borrowed:
                if lo <= c <= hi:
                    continue
                i = bisect.bisect_right(rmin, c) - 1
                if i < 0 or c > rmax[i]:
                    id_table.setdefault((base | c).to_bytes(16, "big"), b)
        for key in enc.foreign:
            id_table.setdefault(key, b)
        for key in enc.foreign_owned:
            id_table[key] = b
        owned.clear()
        enc.borrowed.clear()
        enc.foreign.clear()
        enc.foreign_owned.clear()

    def _write_id_table(self) -> dict[str, Any] | None:
        """Sorted (UUID bytes, block) entries in fixed-size pages, so a lookup reads one page."""
        if not self.id_table:
            return None
        width = 2 if len(self.block_offset) <= 0xFFFF else 4
        keys = sorted(self.id_table)
        first: list[bytes] = []
        offsets: list[int] = []
        lengths: list[int] = []
        crcs: list[int] = []
        id_table = self.id_table
        for start in range(0, len(keys), ID_PAGE_ENTRIES):
            chunk = keys[start : start + ID_PAGE_ENTRIES]
            page = b"".join(k + id_table[k].to_bytes(width, "big") for k in chunk)
            offset, length, crc = self._write(page)
            first.append(chunk[0])
            offsets.append(offset)
            lengths.append(length)
            crcs.append(crc)
        return {
            "width": width,
            "entries": len(keys),
            "first": b"".join(first),
            "offset": pack_array(U64, offsets),
            "length": pack_array(U32, lengths),
            "crc": pack_array(U32, crcs),
        }

    def _write_section(self, doc: Any, part: str) -> list[int]:
        try:
            payload = msgpack.packb(doc, use_bin_type=True, default=_msgpack_default)
        except (TypeError, ValueError, OverflowError) as err:
            raise GraphFileError(self.name, part, f"cannot be written: {err}") from err
        return list(self._write(self.cctx.compress(payload)))

    def finish(self) -> int:
        self._flush()
        tables = self.tables
        quantum_table = self._write_section(
            {
                "task": pack_array(U32, self.quantum_task),
                "delta": pack_array("q", self.quantum_delta),
                "foreign": self.quantum_foreign,
            },
            "quantum table",
        )
        ids = self._write_id_table()
        # Records of datasets no quantum or init output refers to: kept so a round trip loses
        # nothing.  A record was stored inline iff its dataset appeared in a ref; unprefixed IDs
        # that appeared are exactly the ID table's keys, so only the others need a set.
        orphans = []
        written = self.encoder.records_written
        id_table = self.id_table
        for key, info in self.records.items():
            if key not in written and key.bytes not in id_table:
                orphans.append(
                    [
                        self.ids.encode(key),
                        info.path,
                        tables.formatter_id(info.formatter),
                        info.file_size,
                        tables.storage_class_id(info.storage_class),
                    ]
                )
        records_section = self._write_section(orphans, "records") if orphans else None
        nr, nf, ns = self.header_table_sizes
        index = {
            "blocks": {
                "offset": pack_array(U64, self.block_offset),
                "length": pack_array(U32, self.block_length),
                "crc": pack_array(U32, self.block_crc),
                "quanta": pack_array(U32, self.block_count),
            },
            "ranges": {
                "min": pack_array(U64, self.range_min),
                "max": pack_array(U64, self.range_max),
                "block": pack_array(U32, self.range_block),
            },
            "ids": ids,
            "quantum_table": quantum_table,
            "records": records_section,
            "runs": tables.runs[nr:],
            "formatters": tables.formatters[nf:],
            "storage_classes": tables.storage_classes[ns:],
            "counts": {
                "quanta": self.n_quanta,
                "blocks": len(self.block_offset),
                "tasks": {t.label: n for t, n in zip(tables.tasks, self.task_counts, strict=True)},
                "inputs": self.encoder.n_inputs,
                "outputs": self.encoder.n_outputs,
                "records": len(self.records),
            },
        }
        offset, length, crc = self._write(self.cctx.compress(msgpack.packb(index, use_bin_type=True)))
        fields = FOOTER_FIELDS.pack(offset, length, crc, FORMAT_MAJOR, FORMAT_MINOR)
        self._write(FOOTER.pack(offset, length, crc, FORMAT_MAJOR, FORMAT_MINOR, crc32(fields), MAGIC))
        return self.pos

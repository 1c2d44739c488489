"""Journals of the files jobs wrote, so the merge job need not read every output again.

The merge registers each output with its size and CRC-32.  Reading every file back for those is
the merge's largest cost, yet the job that wrote the file computed both a moment earlier.  So each
executing process appends, after every quantum, one line per file it wrote to its own journal::

    DATASTORE_ROOT/.skybatch-written/<graph id prefix, 16 hex digits>/<host>-<pid>-<random>.jsonl
    ["<dataset id hex>", "<path>", "<formatter>", "<storage class>", size, crc32, mtime_ns]

The merge takes a line as the truth only while the file is still exactly what the journal saw
(same size and modification time, one ``stat``); anything else -- no line, a rewritten file, a
torn last line of a killed job -- falls back to reading the file.  So a journal can only save
work, never change what is registered.  Journals the merge read are removed once its
transaction has committed; a rerun's jobs start new ones.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from butler import StoredFileInfo

_log = logging.getLogger(__name__)

JOURNAL_DIR = ".skybatch-written"


def journal_directory(root: Path | str, id_prefix: int) -> Path:
    """Where the journals of the graph with ``id_prefix`` live under a datastore root."""
    return Path(root) / JOURNAL_DIR / f"{id_prefix:016x}"


class WrittenJournal:
    """One process's journal for one graph; the file is created on the first append."""

    def __init__(self, root: Path | str, id_prefix: int) -> None:
        self._root = str(root)
        self._dir = journal_directory(root, id_prefix)
        self._fd: int | None = None
        self._pid = os.getpid()

    def _open(self) -> int:
        # A forked worker inherits its parent's journal object: each process gets its own file.
        if self._fd is None or self._pid != os.getpid():
            self._dir.mkdir(parents=True, exist_ok=True)
            name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            self._fd = os.open(self._dir / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._pid = os.getpid()
        return self._fd

    def append(self, infos: Iterable[StoredFileInfo]) -> None:
        """Record files just written (one ``stat`` each, for the modification time)."""
        lines = []
        root = self._root
        for info in infos:
            try:
                st = os.stat(f"{root}/{info.path}")
            except OSError:
                continue
            lines.append(
                json.dumps(
                    [
                        info.dataset_id.hex,
                        info.path,
                        info.formatter,
                        info.storage_class,
                        info.file_size,
                        info.checksum,
                        st.st_mtime_ns,
                    ]
                )
            )
        if lines:
            # One write per quantum with O_APPEND: lines of concurrent writers never interleave.
            os.write(self._open(), ("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


def read_journals(
    root: Path | str, id_prefix: int
) -> tuple[dict[uuid.UUID, tuple[StoredFileInfo, int]], list[Path]]:
    """Every journaled file of a graph: dataset ID -> (record, mtime_ns); and the journals read.

    Later journals (by modification time) and later lines win, so a rerun's record replaces the
    first attempt's.  Lines that do not parse (a killed writer's last line) are skipped.
    """
    directory = journal_directory(root, id_prefix)
    try:
        entries = [
            (e.stat().st_mtime_ns, Path(e.path)) for e in os.scandir(directory) if e.name.endswith(".jsonl")
        ]
    except FileNotFoundError:
        return {}, []
    out: dict[uuid.UUID, tuple[StoredFileInfo, int]] = {}
    paths = [path for _, path in sorted(entries)]
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        for entry in _entries(data):
            try:
                hex_id, rel, formatter, storage_class, size, crc, mtime = entry
                dataset_id = uuid.UUID(hex=hex_id)
            except (ValueError, TypeError):
                continue
            if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/"):
                continue
            out[dataset_id] = (StoredFileInfo(dataset_id, rel, formatter, storage_class, size, crc), mtime)
    return out, paths


def _entries(data: bytes) -> list[Any]:
    """The lines of one journal: parsed as one JSON array when whole (fast), else line by line."""
    body = data.rstrip(b"\n")
    if not body:
        return []
    try:
        return list(json.loads(b"[" + body.replace(b"\n", b",") + b"]"))
    except ValueError:  # a torn last line of a killed writer: keep every line that parses
        out = []
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def remove_journals(paths: Iterable[Path]) -> None:
    """Remove journals the merge has used (and their directory once empty)."""
    parents = set()
    for path in paths:
        parents.add(path.parent)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    for parent in parents:
        try:
            parent.rmdir()
        except OSError:  # not empty: a job wrote a new journal meanwhile
            pass

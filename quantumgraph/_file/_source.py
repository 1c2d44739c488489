"""Byte sources: the only way the reader touches a graph file's bytes.

The reader asks for ``(offset, length)`` ranges and never seeks or streams, so anything that can
serve byte ranges can back it: a local file through ``os.pread`` today, an S3 object through
ranged GETs later, an in-memory buffer in tests.  Keeping the interface to two calls is what
makes the S3 source a small class rather than a second reader.
"""

from __future__ import annotations

import os
import stat
from typing import Protocol, runtime_checkable

from .._exceptions import GraphFileError


@runtime_checkable
class ByteSource(Protocol):
    """Random access to an immutable byte string, e.g. one graph file."""

    @property
    def name(self) -> str:
        """What to call the source in error messages (a path or URI)."""
        ...

    def size(self) -> int:
        """Total length in bytes."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset + length)``; fewer only if the source ends earlier."""
        ...

    def close(self) -> None:
        """Release whatever the source holds (file descriptor, connection)."""
        ...


class FileByteSource:
    """A local file read with ``os.pread``: no shared file position, no buffering layer.

    ``pread`` keeps each read one system call and lets several readers share the descriptor
    safely; the page cache does the buffering.
    """

    __slots__ = ("_fd", "_name", "_size")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._name = os.fspath(path)
        self._fd = os.open(self._name, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            info = os.fstat(self._fd)
            if stat.S_ISDIR(info.st_mode):
                raise GraphFileError(self._name, "header", "is a directory, not a QuantumGraph file")
            self._size = info.st_size
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def name(self) -> str:
        return self._name

    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if self._fd < 0:
            raise ValueError(f"{self._name} is closed")
        if length <= 0:
            return b""
        data = os.pread(self._fd, length, offset)
        if len(data) == length:
            return data
        # pread may return short on some filesystems even before EOF: loop until EOF or done.
        parts = [data]
        got = len(data)
        while got < length:
            more = os.pread(self._fd, length - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class BytesSource:
    """An in-memory file: for tests and for graphs received over a pipe or already downloaded."""

    __slots__ = ("_data", "_name")

    def __init__(self, data: bytes, name: str = "<memory>") -> None:
        self._data = memoryview(data).toreadonly()
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset : offset + max(length, 0)])

    def close(self) -> None:
        pass

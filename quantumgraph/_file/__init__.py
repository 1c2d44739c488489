"""The QuantumGraph file format: a streaming writer and a random-access reader.

The bytes are described in ``docs/qgraph-format.md``.  Import cost matters here (every batch job
opens a graph), so this package pulls in only msgpack, zstandard and butler foundation types.
"""

from __future__ import annotations

from .._exceptions import GraphFileError
from ._reader import GraphReader
from ._source import ByteSource, BytesSource, FileByteSource
from ._writer import write_graph

__all__ = ["ByteSource", "BytesSource", "FileByteSource", "GraphFileError", "GraphReader", "write_graph"]

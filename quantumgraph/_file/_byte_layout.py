"""Fixed byte layout of a QuantumGraph file: magic, preamble, footer, checksums, packed arrays.

Everything here is shared verbatim by the writer and the reader, so the two cannot drift apart;
``docs/qgraph-format.md`` describes the same bytes for people and for other implementations.

The first 12 bytes (magic, major, minor) keep their meaning in every future version: a reader
checks them before trusting anything else, which is how a 1.x reader can refuse a 2.x file with
a clear message instead of misparsing it.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array

#: Opens and closes every graph file.  The high byte catches 7-bit transfers and ``\r\n`` catches
#: newline translation, the same trick PNG uses.
MAGIC = b"\x89SkyQG\r\n"

#: magic, major, minor, flags, header length, header crc32, reserved.
PREAMBLE = struct.Struct("<8sHHIQII")
PREAMBLE_SIZE = PREAMBLE.size  # 32; the header block starts right after it

#: index offset, index length, index crc32, major, minor; then the crc32 of those 24 bytes and magic.
FOOTER_FIELDS = struct.Struct("<QQIHH")
FOOTER = struct.Struct("<QQIHHI8s")
FOOTER_SIZE = FOOTER.size  # 36

#: How much the reader fetches speculatively from each end of the file on open: with typical
#: headers and indexes this makes opening two reads, which matters once the source is S3.
PROBE_SIZE = 64 * 1024

#: Quanta per block.  Chosen by measurement (see docs/qgraph-format.md): at 64 a block of W(50,20)
#: decompresses and unpacks in about 50 us, and going to 256 would save only 1 byte per quantum.
DEFAULT_BLOCK_QUANTA = 64

#: zstd level for every compressed section.  Level 3 compressed W(50,20) blocks as well as level 10
#: (16.9 vs 17.7 bytes per quantum) at a quarter of the time; 19 gains 3% for ten times the time.
COMPRESSION_LEVEL = 3

#: Entries per page of the sorted dataset-id table; one page is what a lookup reads.
ID_PAGE_ENTRIES = 4096

#: ``array`` typecodes with a fixed item size (``I`` is 4 bytes on every platform CPython supports,
#: but say so once rather than assume it in every caller).
U16 = "H"
U32 = "I" if array("I").itemsize == 4 else "L"
U64 = "Q"

#: Bits of a UUIDv8 from :mod:`quantumgraph._ids` below its 64-bit prefix.
COUNTER_MASK = (1 << 62) - 1
VARIANT = 0b10 << 62


def crc32(data: bytes | bytearray | memoryview) -> int:
    """CRC-32 (zlib's polynomial) of ``data``: cheap, in the standard library, ample for bit rot."""
    return zlib.crc32(data) & 0xFFFFFFFF


def pack_array(typecode: str, values: array[int] | list[int]) -> bytes:
    """Little-endian bytes of an integer array, whatever the machine's byte order."""
    arr = values if isinstance(values, array) and values.typecode == typecode else array(typecode, values)
    if sys.byteorder != "little":
        arr = array(typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def unpack_array(typecode: str, data: bytes) -> array[int]:
    """Inverse of :func:`pack_array`; raises ValueError if ``data`` is not a whole number of items."""
    arr = array(typecode)
    arr.frombytes(data)
    if sys.byteorder != "little":
        arr.byteswap()
    return arr

"""Identifiers for quanta and predicted datasets.

Every QuantumGraph draws its IDs from one :class:`IdFactory`: RFC 9562 version-8 UUIDs whose
upper 64 bits (60 random bits plus the version nibble) are shared by the whole graph and whose
lower 62 bits are a counter.  They are still globally unique UUIDs (60 random bits per graph
make a collision between two graphs' prefixes vanishingly unlikely, and the counter makes them
unique within a graph), but the graph file can store each as a small integer, and the index can
locate a quantum or a predicted dataset from its counter alone.  IDs are handed out in the order
quanta are written, so counters rise monotonically through the file.
"""

from __future__ import annotations

import secrets
import uuid

_VERSION_BITS = (
    0x8 << 12
)  # version nibble in bits 48-51 of the 128-bit value (bits 12-15 of the high word's low 16)
_COUNTER_MASK = (1 << 62) - 1
_VARIANT = 0b10 << 62


class IdFactory:
    """Hands out UUIDv8 identifiers sharing one random 64-bit prefix."""

    __slots__ = ("prefix", "_next")

    def __init__(self, prefix: int | None = None, start: int = 0) -> None:
        if prefix is None:
            raw = secrets.randbits(64)
            prefix = (raw & ~(0xF << 12)) | _VERSION_BITS
        self.prefix = prefix
        self._next = start

    def next_id(self) -> uuid.UUID:
        """A new ID; each call returns a larger counter than the previous one."""
        n = self._next
        self._next = n + 1
        return uuid.UUID(int=(self.prefix << 64) | _VARIANT | n)

    @property
    def count(self) -> int:
        """How many IDs have been handed out."""
        return self._next

    def counter_of(self, value: uuid.UUID) -> int | None:
        """The counter of ``value`` if this factory made it, else None."""
        i = value.int
        if i >> 64 != self.prefix or (i >> 62) & 0b11 != 0b10:
            return None
        return i & _COUNTER_MASK

    def from_counter(self, counter: int) -> uuid.UUID:
        """Rebuild the UUID this factory gave for ``counter``."""
        return uuid.UUID(int=(self.prefix << 64) | _VARIANT | counter)

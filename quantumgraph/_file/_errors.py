"""The one error the QuantumGraph file code raises for a file it cannot trust.

Corruption, truncation, a foreign file or a format this skybatch does not read all surface as
:class:`GraphFileError`, never as a msgpack or zstd traceback, so a batch job's log says which
file is bad and which part of it, and callers can catch a single type.  It refines
:class:`ValueError` (the file's *content* is wrong), so ``except ValueError`` still works::

    ValueError
     +-- GraphFileError        bad magic, truncated, checksum mismatch, unsupported version,
                               undecodable or malformed part

Missing files and permission problems stay :class:`OSError`: those are about the path, not the
bytes, and the caller handles them differently (retry, wrong argument) from a corrupt file.
"""

from __future__ import annotations

import os


class GraphFileError(ValueError):
    """A QuantumGraph file that cannot be read: the message names the file, the part and the fault.

    ``part`` is one of ``header``, ``block N``, ``index``, ``footer``, ``quantum table``,
    ``dataset table page N``, ``records``, ``dictionary``, or ``write`` for problems found while
    writing; ``reason`` is the fault without the location, so tests and tools can match on it.
    """

    def __init__(self, path: str | os.PathLike[str], part: str, reason: str) -> None:
        self.path = os.fspath(path)
        self.part = part
        self.reason = reason
        super().__init__(f"QuantumGraph file {self.path}: {part}: {reason}")

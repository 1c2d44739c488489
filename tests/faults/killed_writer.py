"""A datastore writer that is SIGKILLed halfway through its write (run as a script by the tests).

    python killed_writer.py DATASTORE_ROOT

Its formatter writes half a file to the temporary name, flushes, and kills its own process with
SIGKILL: exactly what a batch job killed mid-write leaves behind.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid

from butler import DatasetRef, DatasetType, DimensionUniverse, StorageClass
from butler._storage_class import register_storage_class
from butler.datastore import FileDatastore
from butler.formatters import Formatter, StrPath, register_formatter

PARTIAL = "partial: [1, 2"


class DiesMidWrite(Formatter):
    """Writes part of a file, then the process dies."""

    name = "dies-mid-write"
    extension = ".yaml"

    def write(self, obj: object, path: StrPath) -> None:
        with open(path, "w") as stream:
            stream.write(PARTIAL)
            stream.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def read(self, path: StrPath) -> object:
        raise AssertionError("never read")


def main(root: str) -> None:
    register_formatter(DiesMidWrite)
    register_storage_class(StorageClass("DiesMidWrite", "dict", "dies-mid-write"))
    universe = DimensionUniverse.default()
    dt = DatasetType.build("big", ("instrument",), "DiesMidWrite", universe)
    data_id = universe.data_id(("instrument",), {"instrument": "Cam"})
    FileDatastore(root).write({"a": 1}, DatasetRef(uuid.uuid4(), dt, data_id, "u/killed"))


if __name__ == "__main__":
    main(sys.argv[1])

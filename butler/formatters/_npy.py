"""NumPy ``.npy`` files for the ``NumpyArray`` storage class.

numpy is imported inside the methods, never at module level: a batch job that reads and writes
only YAML must not pay numpy's import time (a large share of a job's start-up budget).  Pickled
object arrays are refused both ways, for the same reason YAML is only loaded safely.
"""

from __future__ import annotations

from .._exceptions import DatastoreError, StorageClassError
from ._base import Formatter, StrPath

__all__ = ["NpyFormatter"]


class NpyFormatter(Formatter):
    """One array per file in NumPy's own format, without pickles."""

    name = "npy"
    extension = ".npy"
    pytypes = frozenset({"numpy.ndarray"})

    def write(self, obj: object, path: StrPath) -> None:
        import numpy

        if not isinstance(obj, numpy.ndarray):
            raise StorageClassError(f"cannot write {type(obj).__name__} as .npy: not a numpy.ndarray")
        if obj.dtype.hasobject:
            raise StorageClassError(f"cannot write an array of dtype {obj.dtype} as .npy without pickling")
        # An open file, not the path: numpy.save would append ".npy" to a temporary name.
        with open(path, "wb") as stream:
            numpy.save(stream, obj, allow_pickle=False)

    def read(self, path: StrPath) -> object:
        import numpy

        with open(path, "rb") as stream:
            try:
                return numpy.load(stream, allow_pickle=False)
            except (ValueError, EOFError) as exc:  # not an .npy file, truncated, pickled
                raise DatastoreError(f"{path} is not a readable .npy file: {exc}") from exc

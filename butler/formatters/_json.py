"""JSON files for the ``Json`` storage class: any value the ``json`` module can write."""

from __future__ import annotations

import json

from .._exceptions import DatastoreError, StorageClassError
from ._base import Formatter, StrPath

__all__ = ["JsonFormatter"]


class JsonFormatter(Formatter):
    """Compact UTF-8 JSON.  Tuples come back as lists, as JSON has only one sequence type."""

    name = "json"
    extension = ".json"
    pytypes = frozenset({"dict", "object"})

    def write(self, obj: object, path: StrPath) -> None:
        # Serialise before opening the file so an unserialisable value never creates one.
        try:
            text = json.dumps(obj, ensure_ascii=False, allow_nan=True)
        except (TypeError, ValueError) as exc:  # unsupported type, circular reference
            raise StorageClassError(f"cannot write {type(obj).__name__} as JSON: {exc}") from exc
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)

    def read(self, path: StrPath) -> object:
        with open(path, "rb") as stream:
            data = stream.read()
        try:
            return json.loads(data)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            raise DatastoreError(f"{path} is not valid JSON: {exc}") from exc

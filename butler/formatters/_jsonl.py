"""JSON-lines files: one JSON value per line, for log records (storage class ``ButlerLogRecords``).

One record per line lets a reader that only wants the last error skip parsing the rest, and lets
``grep`` and ``jq -c`` work on the files directly; a list of dicts round-trips exactly.
"""

from __future__ import annotations

import json

from .._exceptions import DatastoreError, StorageClassError
from ._base import Formatter, StrPath

__all__ = ["JsonLinesFormatter"]


class JsonLinesFormatter(Formatter):
    """A list of JSON values, one compact UTF-8 JSON text per line (no trailing comma, no array)."""

    name = "jsonl"
    extension = ".jsonl"

    def write(self, obj: object, path: StrPath) -> None:
        if not isinstance(obj, list | tuple):
            raise StorageClassError(f"JSON lines hold a list of values, not a {type(obj).__name__}")
        try:
            text = "".join(json.dumps(item, ensure_ascii=False, allow_nan=True) + "\n" for item in obj)
        except (TypeError, ValueError) as exc:
            raise StorageClassError(f"cannot write {type(obj).__name__} as JSON lines: {exc}") from exc
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)

    def read(self, path: StrPath) -> object:
        with open(path, "rb") as stream:
            data = stream.read()
        out = []
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError as exc:
                raise DatastoreError(f"{path} line {number} is not valid JSON: {exc}") from exc
        return out

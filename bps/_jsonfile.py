"""Small versioned JSON documents: how everything bps keeps in a submit directory is stored.

Each document starts with ``format`` (what it is) and ``version`` (``"MAJOR.MINOR"``).  Readers
accept any minor version of the major they know (new optional fields) and refuse other majors with
a message naming the file, so an old bps never misreads a newer run.  Writes go to a temporary
name in the same directory and are renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from ._exceptions import StateFileError


def write_json_atomic(path: Path, document: dict[str, Any], *, indent: int | None = None) -> None:
    """Write ``document`` as JSON to ``path`` via a temporary file and ``os.replace``.

    The temporary file is created with mode 0o666 minus the umask (``mkstemp`` would make it
    0o600), so colleagues who may read a submit directory can read its state too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # dumps + one write: json.dump streams through the pure-Python encoder, several times slower.
    text = json.dumps(document, indent=indent, separators=(",", ": ") if indent else (",", ":"))
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def versioned(kind: str, major: int, minor: int, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the ``format`` and ``version`` header fields first."""
    return {"format": kind, "version": f"{major}.{minor}", **body}


def write_versioned_json(path: Path, kind: str, major: int, minor: int, body: dict[str, Any]) -> None:
    """Write ``body`` with a ``format``/``version`` header, atomically (what plugins should use)."""
    write_json_atomic(path, versioned(kind, major, minor, body), indent=1)


def read_versioned(path: Path, kind: str, major: int) -> dict[str, Any]:
    """Read a document written by :func:`write_json_atomic`, checking its format and major version."""
    try:
        with path.open(encoding="utf-8") as stream:
            document = json.load(stream)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise StateFileError(f"{path}: cannot read {kind} file: {err}") from err
    if not isinstance(document, dict) or document.get("format") != kind:
        raise StateFileError(f"{path}: not a {kind} file")
    version = str(document.get("version", ""))
    head = version.split(".", 1)[0]
    if not head.isdigit() or int(head) != major:
        raise StateFileError(
            f"{path}: {kind} file version {version or '?'} is not supported by this bps "
            f"(it reads version {major}.x); use the bps that wrote it"
        )
    return document

"""Rules that keep every predicted dataset path inside the datastore root and unambiguous.

Two kinds of text end up in a path, and they are treated differently on purpose:

* Names chosen by people for structure -- run collections (``u/alice/run1/20261126T040000Z``),
  dataset type names and the literal text of a template -- may contain ``/`` and become
  directories.  Anything in them that could escape the root or make a bad file name is
  *refused* with :class:`DatastorePathError`, because silently changing a run name would put
  files where nobody expects them.
* Data ID values (a ``physical_filter`` such as ``g/ND``) are data, not structure.  They are
  *escaped*, never refused, so any valid data ID can be stored.  The escaping is percent-style
  and injective (``%`` itself is escaped), so two different data IDs can never share a file:
  ``%`` -> ``%25``, ``/`` -> ``%2F``, ``\\`` -> ``%5C``, control characters -> ``%XX``, and a value
  that is exactly ``.`` or ``..`` -> ``%2E`` / ``%2E%2E``.  Inside ``{dataId}``, where values are
  joined with ``_``, every string value except the last also has ``_`` -> ``%5F``: each of the
  earlier values then ends at the first ``_``, so the joined text still splits back uniquely
  (the last value, usually a filter name such as ``SDSSg_65mm``, stays readable).
"""

from __future__ import annotations

import functools
import re

from .._exceptions import DatastorePathError

__all__ = ["MAX_NAME_BYTES", "check_name", "check_relative_path", "escape_value", "path_problem"]

#: Longest file or directory name most file systems (ext4, xfs, APFS) accept, in bytes.
MAX_NAME_BYTES = 255

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NEEDS_ESCAPE = re.compile(r"[%/\\\x00-\x1f\x7f]")
_NEEDS_ESCAPE_WITH_SEP = re.compile(r"[%/\\\x00-\x1f\x7f_]")


def _percent(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"


@functools.lru_cache(maxsize=8192)
def escape_value(value: str, escape_separator: bool = False) -> str:
    """Make a data ID string value safe as (part of) one path component; see the module docstring.

    Cached: the same few instrument, filter and skymap names recur in almost every path.
    """
    if value == ".":
        return "%2E"
    if value == "..":
        return "%2E%2E"
    pattern = _NEEDS_ESCAPE_WITH_SEP if escape_separator else _NEEDS_ESCAPE
    return pattern.sub(_percent, value)


def _problem(component: str) -> str | None:
    """Why ``component`` cannot be one path component, or None if it can."""
    if not component:
        return "it has an empty component (a doubled, leading or trailing '/')"
    if component in (".", ".."):
        return f"it has a {component!r} component"
    if "\x00" in component:
        return "it contains a NUL character"
    if "\\" in component:
        return "it contains a backslash"
    if _CONTROL.search(component):
        return "it contains a control character"
    if len(component) * 4 > MAX_NAME_BYTES and len(component.encode("utf-8")) > MAX_NAME_BYTES:
        return f"its component {component[:40]!r}... is longer than {MAX_NAME_BYTES} bytes"
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a relative path that stays inside the directory it is joined to, or None."""
    if not path:
        return "it is empty"
    if path.startswith("/"):
        return "it is absolute (starts with '/') and would escape the datastore root"
    for part in path.split("/"):
        reason = _problem(part)
        if reason is not None:
            return reason + (" and could escape the datastore root" if part == ".." else "")
    return None


def check_name(value: str, what: str, *, allow_slash: bool) -> None:
    """Refuse a run, dataset type or template text that could not safely become part of a path.

    ``what`` describes the value for the message (``"run name 'x'"``).  With ``allow_slash`` the
    value may span several directories, but each part must still be a usable name.
    """
    if not allow_slash and "/" in value:
        raise DatastorePathError(f"{what} cannot be used in a file path: it contains '/'")
    reason = path_problem(value)
    if reason is not None:
        raise DatastorePathError(f"{what} cannot be used in a file path: {reason}")


def check_relative_path(path: str, what: str = "path") -> None:
    """Refuse ``path`` unless it is a relative path that stays inside the directory it is joined to."""
    check_name(path, f"{what} {path!r}", allow_slash=True)

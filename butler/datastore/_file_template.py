"""File templates: where in the datastore each dataset's file goes.

A template is ``str.format``-like text with these fields:

``{run}``
    The RUN collection name; may contain ``/`` and so become several directories.
``{datasetType}``
    The dataset type name.
``{dataId}``
    The data ID values in universe order joined by ``_`` (``HSC_42_7``); empty for a dataset
    type without dimensions, in which case a ``_`` just before the field is dropped too
    (``{datasetType}_{dataId}`` gives ``packages`` rather than ``packages_``).
``{<dimension>}``
    One data ID value, e.g. ``{detector}``; only dimensions in the dataset's data ID can be
    used (implied ones such as ``band`` would need the registry, which a batch job lacks).

Every template must contain ``{run}`` and ``{datasetType}``, and each dataset must be fully
identified by its path -- through ``{dataId}`` or by naming every dimension of its data ID -- so
two datasets can never be given the same file (a write would silently replace the other's).

Fields must not run into each other, or two datasets could still share a file
(``{run}{datasetType}`` makes run ``a/ab`` + type ``c`` and run ``a/a`` + type ``bc`` both
``a/abc``).  So the text right after each field -- up to the next field, or the end -- must start
with a character that field's values never contain:

* ``{run}``: ``/`` (no other field contains ``/``, so the number of ``/`` after the run fixes
  where it ends) or any character outside collection names' ``A-Z a-z 0-9 _ . - + : @``;
* ``{datasetType}``: any character outside ``A-Z a-z 0-9 _``;
* ``{dataId}`` and string-valued dimensions: ``/`` only (escaped values may hold anything else);
* integer-valued dimensions: any non-digit (an integer's ``-`` can only come first).

A field at the very end is followed only by the formatter's extension, which is fixed by the
dataset type, and a repeated field (the second ``{datasetType}`` in the default) is fixed by its
first occurrence, so neither needs a separator.  Whether a dimension holds integers or strings
is known from data IDs, so that last check happens on the first data ID of each shape.
The template is compiled once; formatting a path is then a handful of string joins.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from .._dataset_type import DatasetRef
from .._exceptions import DatastorePathError
from ._paths import check_name, check_relative_path, escape_value, path_problem

__all__ = ["DEFAULT_TEMPLATE", "FileTemplate"]

#: The layout described in docs/contracts.md; the formatter's extension is appended.
DEFAULT_TEMPLATE = "{run}/{datasetType}/{datasetType}_{dataId}"

_SPECIAL_FIELDS = frozenset({"run", "datasetType", "dataId"})

#: Characters that may occur in each special field's values (collection and dataset type names).
_RUN_CHARS = re.compile(r"[A-Za-z0-9_.\-/+:@]")
_TYPE_CHARS = re.compile(r"[A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class _Part:
    literal: str
    field: str | None


def _separates(field: str, follower: str) -> bool:
    """Whether ``follower`` (the text after ``field``; empty at the template's end) ends it unambiguously."""
    if follower == "":
        return False
    first = follower[0]
    if field == "run":
        return first == "/" or not _RUN_CHARS.match(first)
    if field == "datasetType":
        return not _TYPE_CHARS.match(first)
    return first == "/"


def _ambiguity(template: str, field: str, follower: str, why: str) -> DatastorePathError:
    if follower:
        after = f"is followed by {follower[0]!r}, which {why}"
    else:
        after = "is followed by another field with nothing between them"
    return DatastorePathError(
        f"file template {template!r} is ambiguous: {{{field}}} {after}, so two datasets could be "
        "given one file; separate fields with '/' (see docs/guarantees.md)"
    )


class FileTemplate:
    """A compiled, validated file template (see the module docstring for the fields)."""

    def __init__(self, template: str) -> None:
        self.text = template
        self._parts = self._compile(template)
        fields = {p.field for p in self._parts if p.field is not None}
        self._has_data_id = "dataId" in fields
        self._dimension_fields = frozenset(fields - _SPECIAL_FIELDS)
        self._dimension_followers = _dimension_followers(self._parts)
        self._checked_runs: set[str] = set()
        self._checked_types: set[str] = set()
        self._checked_dimensions: set[tuple[str, ...]] = set()

    @staticmethod
    def _compile(template: str) -> tuple[_Part, ...]:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise DatastorePathError(f"file template {template!r} is malformed: {exc}") from None
        parts: list[_Part] = []
        for literal, field, spec, conversion in parsed:
            if field is not None and (not field.isidentifier() or spec or conversion):
                raise DatastorePathError(
                    f"file template {template!r}: field {{{field}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}} is not allowed; use plain names such as {{run}}, "
                    "{datasetType}, {dataId} or a dimension name like {detector}"
                )
            parts.append(_Part(literal, field))
        fields = [p.field for p in parts if p.field is not None]
        for required in ("run", "datasetType"):
            if required not in fields:
                raise DatastorePathError(
                    f"file template {template!r} lacks {{{required}}}; without it two datasets could "
                    "be given the same file"
                )
        # Fill every field with a harmless name and check what the literal text makes of it.
        sample = "".join(p.literal + ("x" if p.field is not None else "") for p in parts)
        check_relative_path(sample, f"file template {template!r} gives a path like")
        _check_separated(template, parts)
        return tuple(parts)

    def _check_dimension_separators(self, ref: DatasetRef) -> None:
        """Dimension fields followed by a non-'/' separator must hold integers (known only now)."""
        for field, follower in self._dimension_followers:
            value = ref.data_id[field]
            if isinstance(value, str) and not follower.startswith("/"):
                raise _ambiguity(self.text, field, follower, f"can occur in {field}'s string values")
            if isinstance(value, int) and (not follower or follower[0].isdigit()):
                raise _ambiguity(self.text, field, follower, "can occur in integers")

    def _check_ref(self, ref: DatasetRef) -> None:
        """Validate the parts of ``ref`` that recur across many datasets, remembering what passed."""
        run = ref.run
        if run not in self._checked_runs:
            check_name(run, f"run name {run!r}", allow_slash=True)
            self._checked_runs.add(run)
        name = ref.dataset_type.name
        if name not in self._checked_types:
            check_name(name, f"dataset type name {name!r}", allow_slash=False)
            self._checked_types.add(name)
        dims = ref.data_id.dimensions
        if dims not in self._checked_dimensions:
            missing = self._dimension_fields.difference(dims)
            if missing:
                raise DatastorePathError(
                    f"file template {self.text!r} uses {', '.join(sorted(missing))}, which dataset type "
                    f"{name} does not have (its dimensions: {', '.join(dims) or 'none'})"
                )
            if not self._has_data_id and not self._dimension_fields.issuperset(dims):
                unnamed = sorted(set(dims) - self._dimension_fields)
                raise DatastorePathError(
                    f"file template {self.text!r} does not identify datasets of type {name}: it lacks "
                    f"{{dataId}} and {', '.join('{' + d + '}' for d in unnamed)}, so different data IDs "
                    "would share a file"
                )
            self._check_dimension_separators(ref)
            self._checked_dimensions.add(dims)

    def format(self, ref: DatasetRef, extension: str = "") -> str:
        """The relative path of ``ref``'s file (with ``extension`` appended), checked to stay in the root."""
        self._check_ref(ref)
        data_id = ref.data_id
        out: list[str] = []
        for part in self._parts:
            out.append(part.literal)
            field = part.field
            if field is None:
                continue
            if field == "run":
                out.append(ref.run)
            elif field == "datasetType":
                out.append(ref.dataset_type.name)
            elif field == "dataId":
                values = data_id.values_tuple
                if values:
                    out.append(_join_data_id(values))
                elif part.literal.endswith("_"):
                    out[-1] = part.literal[:-1]
            else:
                value = data_id[field]
                out.append(escape_value(value) if isinstance(value, str) else str(value))
        out.append(extension)
        path = "".join(out)
        # Cheap backstop: the pieces were checked, but their combination is what reaches the disk.
        reason = path_problem(path)
        if reason is not None:
            raise DatastorePathError(f"path {path!r} for dataset {ref} cannot be used: {reason}")
        return path


def _join_data_id(values: tuple[int | str, ...]) -> str:
    last = len(values) - 1
    return "_".join(
        escape_value(v, i != last) if isinstance(v, str) else str(v) for i, v in enumerate(values)
    )


def _followers(parts: tuple[_Part, ...] | list[_Part]) -> list[tuple[str, str | None, bool]]:
    """(field, the text after it up to the next field -- None at the end, whether it came before).

    ``string.Formatter().parse`` pairs each field with the literal text *before* it, so the text
    after field i is the literal of part i + 1 ('' when two fields touch).
    """
    out: list[tuple[str, str | None, bool]] = []
    seen: set[str] = set()
    for i, part in enumerate(parts):
        if part.field is None:
            continue
        follower = parts[i + 1].literal if i + 1 < len(parts) else None
        out.append((part.field, follower, part.field in seen))
        seen.add(part.field)
    return out


def _check_separated(template: str, parts: list[_Part]) -> None:
    """Refuse a template in which a field could run into the text after it (module docstring)."""
    why = {
        "run": "can occur in run names",
        "datasetType": "can occur in dataset type names",
        "dataId": "can occur in data ID values",
    }
    for field, follower, repeated in _followers(parts):
        if repeated or follower is None or field not in _SPECIAL_FIELDS:
            continue
        if not _separates(field, follower):
            raise _ambiguity(template, field, follower, why[field])


def _dimension_followers(parts: tuple[_Part, ...]) -> tuple[tuple[str, str], ...]:
    """Dimension fields that are neither last nor repeated, with the text after each."""
    return tuple(
        (field, follower)
        for field, follower, repeated in _followers(parts)
        if field not in _SPECIAL_FIELDS and not repeated and follower is not None
    )

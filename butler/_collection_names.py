"""The one rule for collection and run names, checked wherever a name enters skybatch.

Names become directories (submit directories, datastore paths) and items of comma-separated
command-line lists, so a name is refused -- never silently changed -- unless it is:

* letters, digits and ``_ . - / + : @``, not starting with punctuation (no NUL, no control
  characters, no spaces, no commas, no glob characters);
* made of ``/``-separated segments that are all non-empty (no leading, trailing or doubled
  ``/``) and none of which is ``.`` or ``..``: a name can never climb out of the directory it
  is placed under.

Kept free of SQLAlchemy so the batch layer and job-side code can validate names cheaply.
"""

from __future__ import annotations

import re

from ._exceptions import InvalidNameError

__all__ = ["check_collection_name"]

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/+:@]*")


def collection_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid collection name, or None if it is."""
    if not isinstance(name, str):
        return f"must be a string, not {type(name).__name__}"
    if not name:
        return "must not be empty"
    if not _NAME_RE.fullmatch(name):
        return "use letters, digits and _ . - / + : @ (not starting with punctuation)"
    for segment in name.split("/"):
        if not segment:
            return "has an empty segment (a leading, trailing or doubled '/')"
        if segment in (".", ".."):
            return f"has a {segment!r} segment"
    return None


def check_collection_name(name: str) -> None:
    """Raise :class:`InvalidNameError` unless ``name`` may name a collection."""
    problem = collection_name_problem(name)
    if problem is not None:
        raise InvalidNameError(f"collection name {name!r} is invalid: {problem}")

"""Formatter look-up by the short name stored in datastore records."""

from __future__ import annotations

from .._exceptions import DatastoreError
from ._base import Formatter
from ._json import JsonFormatter
from ._jsonl import JsonLinesFormatter
from ._npy import NpyFormatter
from ._yaml import YamlFormatter

__all__ = ["formatter_names", "get_formatter", "register_formatter"]

# Instances, not classes: formatters are stateless and looked up on every read and write.
_FORMATTERS: dict[str, Formatter] = {}


def register_formatter(formatter: type[Formatter]) -> None:
    """Make ``formatter`` available under its ``name``; a different class under a taken name is refused."""
    existing = _FORMATTERS.get(formatter.name)
    if existing is not None and type(existing) is not formatter:
        raise DatastoreError(
            f"formatter name {formatter.name!r} is already used by {type(existing).__qualname__}"
        )
    _FORMATTERS[formatter.name] = formatter()


for _cls in (YamlFormatter, JsonFormatter, JsonLinesFormatter, NpyFormatter):
    register_formatter(_cls)


def formatter_names() -> tuple[str, ...]:
    """Names of all known formatters, sorted."""
    return tuple(sorted(_FORMATTERS))


def get_formatter(name: str) -> Formatter:
    """The shared formatter called ``name``; an unknown name is an error listing the known ones.

    Unknown names normally come from a datastore record written by another version of skybatch,
    so the error is a :class:`DatastoreError` rather than a plain ``KeyError``.
    """
    try:
        return _FORMATTERS[name]
    except KeyError:
        raise DatastoreError(
            f"unknown formatter {name!r}; known formatters: {', '.join(formatter_names())}"
        ) from None

"""Formatters: turning in-memory datasets into files and back (see :class:`Formatter`)."""

from __future__ import annotations

from ._base import Formatter, StrPath
from ._json import JsonFormatter
from ._jsonl import JsonLinesFormatter
from ._npy import NpyFormatter
from ._registry import formatter_names, get_formatter, register_formatter
from ._yaml import YamlFormatter

__all__ = [
    "Formatter",
    "JsonFormatter",
    "JsonLinesFormatter",
    "NpyFormatter",
    "StrPath",
    "YamlFormatter",
    "formatter_names",
    "get_formatter",
    "register_formatter",
]

"""How a skybatch process logs: LSST's extra levels, its record formats, and the handler set-up.

LSST users arrive with log-processing scripts and habits (``--log-level VERBOSE``, ``--long-log``,
``--log-file run.json``), so the names, numeric levels and JSON fields follow LSST's published
conventions:

* two extra levels, registered with :mod:`logging` so ``logging.getLevelName`` and ``%(levelname)s``
  know them: ``VERBOSE`` (15, between INFO and DEBUG) and ``TRACE`` (5, below DEBUG);
* the short format ``LEVEL TIME NAME: MESSAGE`` (skybatch's own; LSST's short form differs), the
  long format ``LEVEL TIME NAME (LABELS)(FILE:LINE) - MESSAGE`` (LSST's ``--long-log``);
* JSON lines: one object per record with LSST's field names (``name``, ``asctime``, ``message``,
  ``levelno``, ``levelname``, ``filename``, ``pathname``, ``lineno``, ``funcName``, ``process``,
  ``processName``, ``exc_info``, ``MDC``), ``MDC`` holding the ``--log-label`` pairs.

:class:`LogSetup` installs the handlers for one command and removes them again (closing files and
restoring the levels it changed), so a process that runs several commands -- a test, a notebook --
does not accumulate handlers.  The click options that fill it live in :mod:`butler.cli_support`.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import ButlerError

#: Between INFO (20) and DEBUG (10), as LSST defines it: progress worth a line per step.
VERBOSE = (logging.INFO + logging.DEBUG) // 2
#: Below DEBUG, as LSST defines it: per-item detail nobody wants by default.
TRACE = logging.DEBUG - 5

logging.addLevelName(VERBOSE, "VERBOSE")
logging.addLevelName(TRACE, "TRACE")

#: Level names ``--log-level`` accepts, most severe first.
LEVEL_NAMES: dict[str, int] = {
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "VERBOSE": VERBOSE,
    "DEBUG": logging.DEBUG,
    "TRACE": TRACE,
}

SHORT_FORMAT = "{levelname} {asctime} {name}: {message}"
LONG_FORMAT = "{levelname} {asctime} {name} ({mdc})({filename}:{lineno}) - {message}"


def _iso_time(created: float) -> str:
    """A record's time as an ISO 8601 string with milliseconds and the UTC offset."""
    stamp = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return stamp.isoformat(sep="T", timespec="milliseconds")


class _LabelFilter(logging.Filter):
    """Attach the ``--log-label`` pairs (LSST's MDC) to every record a handler sees.

    A record that already carries an ``MDC`` mapping (set by whoever logged it) keeps its own keys;
    the labels fill in the rest.
    """

    def __init__(self, labels: Mapping[str, str]) -> None:
        super().__init__()
        self.labels = dict(labels)

    def filter(self, record: logging.LogRecord) -> bool:
        existing = getattr(record, "MDC", None)
        merged = dict(self.labels)
        if isinstance(existing, Mapping):
            merged.update(existing)
        record.MDC = merged
        record.mdc = ",".join(f"{key}={value}" for key, value in merged.items())
        return True


class TextLogFormatter(logging.Formatter):
    """The short or long text format, with UTC ISO timestamps (LSST's long format uses those)."""

    def __init__(self, long: bool) -> None:
        super().__init__(fmt=LONG_FORMAT if long else SHORT_FORMAT, style="{")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _iso_time(record.created)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, on one line, with LSST's field names (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        exc_info = None
        if record.exc_info:
            exc_info = self.formatException(record.exc_info)
        elif record.exc_text:
            exc_info = record.exc_text
        mdc = getattr(record, "MDC", None)
        data: dict[str, Any] = {
            "name": record.name,
            "asctime": _iso_time(record.created),
            "message": record.getMessage(),
            "levelno": record.levelno,
            "levelname": record.levelname,
            "filename": record.filename,
            "pathname": record.pathname,
            "lineno": record.lineno,
            "funcName": record.funcName,
            "process": record.process,
            "processName": record.processName,
            "exc_info": exc_info,
            "MDC": dict(mdc) if isinstance(mdc, Mapping) else {},
        }
        return json.dumps(data, default=str)


@dataclass
class LogSettings:
    """What the logging options of one command line asked for (filled by the click callbacks)."""

    #: Level of the root logger (bare ``--log-level LEVEL`` or ``.=LEVEL``).
    root_level: int = logging.WARNING
    #: ``LOGGER=LEVEL`` pairs, in the order given (a later one for the same logger wins).
    per_logger: list[tuple[str, int]] = field(default_factory=list)
    long_log: bool = False
    #: Files to append records to: JSON lines for ``*.json``, text otherwise.
    files: list[str] = field(default_factory=list)
    #: Whether records go to stderr at all (``--no-log-tty``: files only).
    tty: bool = True
    #: ``--log-label`` pairs, added to every record (JSON ``MDC``, the long format's parentheses).
    labels: dict[str, str] = field(default_factory=dict)


class LogFileError(ButlerError, OSError):
    """A ``--log-file`` could not be opened for appending (the message names the file)."""


class LogSetup:
    """Installs the handlers :class:`LogSettings` asks for on the root logger, and takes them away.

    Only the handlers it added and the levels it set are touched: handlers someone else installed
    (pytest's capture, an application's own) stay.
    """

    def __init__(self) -> None:
        self._handlers: list[logging.Handler] = []
        self._saved_levels: dict[str, int] = {}
        self._applied: LogSettings | None = None

    def apply(self, settings: LogSettings) -> None:
        """Replace what an earlier :meth:`apply` installed by what ``settings`` says (a no-op if
        that was the same)."""
        if self._applied is not None and self._applied == settings:
            return
        self.remove()
        handlers: list[logging.Handler] = []
        if settings.tty:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(TextLogFormatter(settings.long_log))
            handlers.append(stream)
        try:
            for path in settings.files:
                try:
                    to_file = logging.FileHandler(path, mode="a", encoding="utf-8")
                except OSError as err:
                    raise LogFileError(f"--log-file {path}: cannot append to it ({err.strerror})") from None
                is_json = path.endswith(".json")
                to_file.setFormatter(JsonLogFormatter() if is_json else TextLogFormatter(settings.long_log))
                handlers.append(to_file)
        except LogFileError:
            for opened in handlers:
                opened.close()
            raise
        if not handlers:
            # Without any handler, logging's last resort would still print warnings on stderr.
            handlers.append(logging.NullHandler())
        labels = _LabelFilter(settings.labels)
        root = logging.getLogger()
        for handler in handlers:
            handler.addFilter(labels)
            root.addHandler(handler)
        self._handlers = handlers
        self._applied = copy.deepcopy(settings)
        self._set_level("", settings.root_level)
        for name, level in settings.per_logger:
            self._set_level(name, level)

    def _set_level(self, name: str, level: int) -> None:
        logger = logging.getLogger(name or None)
        self._saved_levels.setdefault(name, logger.level)
        logger.setLevel(level)

    def remove(self) -> None:
        """Take away the handlers (closing the files) and restore the levels changed."""
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        self._handlers = []
        self._applied = None
        for name, level in reversed(self._saved_levels.items()):
            logging.getLogger(name or None).setLevel(level)
        self._saved_levels = {}

"""What every skybatch command line shares: ``--log-level``, ``--progress`` and the error boundary.

Defined once here (the lowest layer) so ``butler``, ``pipetask`` and ``bps`` behave the same:

* ``--log-level LEVEL`` or ``--log-level LOGGER=LEVEL`` (repeatable; default WARNING) configures
  Python logging on stderr;
* ``--progress/--no-progress`` turns progress bars on (read with :func:`progress_enabled`);
* :func:`error_boundary` turns expected errors (bad input, missing data, corrupt files) into one
  ``error: ...`` line on stderr and exit status 1.  A traceback is shown only at DEBUG level, and
  for unexpected exceptions (bugs), which keep their traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ._exceptions import ButlerError

F = TypeVar("F", bound=Callable[..., Any])

#: Exception classes that mean "the user's input or data is wrong", not "skybatch has a bug".
USER_ERRORS: tuple[type[BaseException], ...] = (ButlerError, ValueError, LookupError, OSError)

_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def _configure_logging(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    root_level = logging.WARNING
    per_logger: list[tuple[str, int]] = []
    for value in values or ():
        name, _, level = value.rpartition("=")
        level = level.upper()
        if level not in _LEVELS:
            raise click.BadParameter(f"{value!r}: level must be one of {', '.join(_LEVELS)}", ctx, param)
        if name:
            per_logger.append((name, getattr(logging, level)))
        else:
            root_level = getattr(logging, level)
    logging.basicConfig(
        level=root_level,
        stream=sys.stderr,
        format="%(levelname)s %(asctime)s %(name)s: %(message)s",
        force=True,
    )
    for logger_name, logger_level in per_logger:
        logging.getLogger(logger_name).setLevel(logger_level)


log_level_option = click.option(
    "--log-level",
    multiple=True,
    metavar="[LOGGER=]LEVEL",
    expose_value=False,
    is_eager=True,
    callback=_configure_logging,
    help="Logging level (CRITICAL, ERROR, WARNING, INFO, DEBUG) for all loggers, or LOGGER=LEVEL for "
    "one; repeatable. Default WARNING. DEBUG also shows tracebacks for errors.",
)

progress_option = click.option(
    "--progress/--no-progress",
    default=False,
    help="Show progress bars on stderr for long operations.",
)


def progress_enabled() -> bool:
    """Whether the running command's root group was given ``--progress``."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    return bool(ctx.find_root().params.get("progress", False))


def register_user_errors(*classes: type[BaseException]) -> None:
    """Let a higher layer declare more exception classes as user errors (one-line messages)."""
    global USER_ERRORS
    USER_ERRORS = USER_ERRORS + tuple(c for c in classes if c not in USER_ERRORS)


def error_boundary(func: F) -> F:
    """Map user errors raised by a command to ``error: <message>`` and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.exceptions.ClickException:
            raise
        except (click.exceptions.Exit, click.exceptions.Abort, SystemExit, KeyboardInterrupt):
            raise
        except USER_ERRORS as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                logging.getLogger("skybatch.cli").debug("traceback", exc_info=True)
            message = str(exc) or type(exc).__name__
            if isinstance(exc, KeyError) and message.startswith("'") and message.endswith("'"):
                message = message[1:-1]
            click.echo(f"error: {message}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]

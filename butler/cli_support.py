"""What every skybatch command line shares: the global options and the one error boundary.

Defined once here (the lowest layer) so ``butler``, ``pipetask`` and ``bps`` behave the same.
Their root groups are :class:`CommandGroup`\\ s, which give them:

* the global options, accepted before the subcommand *and* after it, as users type them
  (``butler make-demo-repo big_repo --exposures 50 --progress``): the logging options LSST users
  know -- ``--log-level [LOGGER=]LEVEL`` (repeatable; LSST's levels including VERBOSE and TRACE;
  default WARNING), ``--long-log``, ``--log-file FILE`` (repeatable; ``.json`` gives JSON lines),
  ``--log-tty/--no-log-tty``, ``--log-label KEY=VALUE`` -- set up by :mod:`butler._logging` for
  the command's duration, and ``--progress/--no-progress`` (read with :func:`progress_enabled`);
  ``-h`` is ``--help`` everywhere;
* the error boundary (:func:`error_boundary`).  Only *our* errors are the user's mistakes: the
  roots each layer registers (:func:`register_error_root`; butler's :class:`ButlerError` is
  built in, and butler never imports the higher layers' roots), plus ``FileNotFoundError`` and
  ``PermissionError`` on a path the user gave.  Those print one ``error: <message>`` line on
  stderr and exit with their rule's status (1 unless a group says otherwise; bps plugs its
  exit-code table in through ``error_rules``).  Anything else escaping a command (``ValueError``,
  ``IndexError`` ... raised by our own code) is a bug: it keeps its traceback, followed by a line
  saying so and where to report it, and exits 1.  Never decide "user error" by builtin type: our
  own bugs raise ``ValueError`` and ``LookupError`` too.
* a closed stdout (``pipetask qgraph --show quanta | head``) is not an error: the command stops
  quietly with status 141, as a Unix tool killed by SIGPIPE does.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import select
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from ._exceptions import ButlerError
from ._logging import LEVEL_NAMES, LogSettings, LogSetup

F = TypeVar("F", bound=Callable[..., Any])

#: Where a user should report a bug (printed after an unexpected traceback).
BUG_REPORT = (
    "This is a bug in skybatch, not a problem with your input: please report it on the skybatch "
    "issue tracker, with the command line and the traceback above."
)

#: Exit status after a closed output pipe: 128 + SIGPIPE, what a shell shows for ``yes | head``.
EXIT_CLOSED_PIPE = 141

#: Key in ``ctx.meta`` (shared by a context chain) holding the command line's :class:`LogSettings`.
_LOG_SETTINGS = "skybatch.log_settings"

#: Key in ``ctx.meta`` holding ``--progress``'s value.
_PROGRESS = "skybatch.progress"

#: The handlers installed for the running command (one command at a time per process).
_LOG_SETUP = LogSetup()


def _log_settings(ctx: click.Context) -> LogSettings:
    settings = ctx.meta.get(_LOG_SETTINGS)
    if not isinstance(settings, LogSettings):
        settings = ctx.meta[_LOG_SETTINGS] = LogSettings()
    return settings


def _split_items(values: tuple[str, ...] | None) -> list[str]:
    """``--opt a,b --opt c`` as [a, b, c] (LSST splits these options on commas too)."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


def _parse_log_level(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    """``LEVEL`` (root logger), ``.=LEVEL`` (root, LSST's spelling) or ``LOGGER=LEVEL``."""
    settings = _log_settings(ctx)
    for value in _split_items(values):
        name, _, level_name = value.rpartition("=")
        level = LEVEL_NAMES.get(level_name.strip().upper())
        if level is None:
            raise click.BadParameter(f"{value!r}: level must be one of {', '.join(LEVEL_NAMES)}", ctx, param)
        name = name.strip()
        if name in ("", "."):
            settings.root_level = level
        else:
            settings.per_logger.append((name, level))


def _set_long_log(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    if value:
        _log_settings(ctx).long_log = True


def _add_log_files(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    _log_settings(ctx).files.extend(_split_items(values))


def _set_log_tty(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    if value is not None:
        _log_settings(ctx).tty = value


def _add_log_labels(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    labels = _log_settings(ctx).labels
    for item in _split_items(values):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx, param)
        labels[key.strip()] = value.strip()


def _set_progress(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    """``--progress`` (before or after the subcommand): recorded on the root, where
    :func:`progress_enabled` reads it."""
    if value is not None:
        ctx.meta[_PROGRESS] = value


_LOG_LEVEL_HELP = (
    f"Logging level ({', '.join(LEVEL_NAMES)}) for all loggers (LEVEL or .=LEVEL), or "
    "LOGGER=LEVEL for one logger and those below it; repeatable or comma-separated. Default "
    "WARNING. DEBUG also shows tracebacks for errors."
)
_LONG_LOG_HELP = "Log in the long format: level, time, logger, (labels)(file:line) - message."
_LOG_FILE_HELP = (
    "Also append log records to FILE (repeatable): JSON lines (one object per record) if FILE ends "
    "in .json, formatted text otherwise."
)
_LOG_TTY_HELP = "Log to the terminal (stderr; default). --no-log-tty: only to the --log-file files."
_LOG_LABEL_HELP = (
    "Add KEY=VALUE to every log record (the JSON records' MDC; the long format's parentheses); repeatable."
)
_PROGRESS_HELP = "Show progress bars on stderr for long operations."
_ANYWHERE = " Global option: accepted before or after the subcommand."


def _global_options(*, late: bool) -> list[click.Parameter]:
    """Fresh copies of the global options: for a root group, or (``late``) for a subcommand.

    The root group's copies carry the defaults; a subcommand's copies only change what was given
    after it, so ``bps --long-log report --log-level INFO`` keeps the long format.
    """
    return [
        click.Option(
            ["--log-level"],
            multiple=True,
            metavar="[LOGGER=]LEVEL",
            expose_value=False,
            is_eager=not late,
            callback=_parse_log_level,
            help=_LOG_LEVEL_HELP + _ANYWHERE,
        ),
        click.Option(
            ["--long-log"],
            is_flag=True,
            default=None if late else False,
            expose_value=False,
            callback=_set_long_log,
            help=_LONG_LOG_HELP + _ANYWHERE,
        ),
        click.Option(
            ["--log-file"],
            multiple=True,
            metavar="FILE",
            expose_value=False,
            callback=_add_log_files,
            help=_LOG_FILE_HELP + _ANYWHERE,
        ),
        click.Option(
            ["--log-tty/--no-log-tty"],
            default=None if late else True,
            expose_value=False,
            callback=_set_log_tty,
            help=_LOG_TTY_HELP + _ANYWHERE,
        ),
        click.Option(
            ["--log-label"],
            multiple=True,
            metavar="KEY=VALUE",
            expose_value=False,
            callback=_add_log_labels,
            help=_LOG_LABEL_HELP + _ANYWHERE,
        ),
        click.Option(
            ["--progress/--no-progress"],
            default=None if late else False,
            expose_value=False,
            callback=_set_progress,
            help=_PROGRESS_HELP + _ANYWHERE,
        ),
    ]


def progress_enabled() -> bool:
    """Whether the running command was given ``--progress`` (before or after the subcommand)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    return bool(ctx.meta.get(_PROGRESS, False))


# --------------------------------------------------------------------------- the error boundary


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """How the boundary reports one kind of *expected* error."""

    exit_code: int = 1
    #: Put before the error's message (bps: ``submit config: ``).
    prefix: str = ""
    #: Replaces the error's message (bps: ``interrupted`` for Ctrl-C).
    message: str | None = None
    #: Fold the message onto one line (bps); butler keeps e.g. a query's caret line.
    one_line: bool = False

    def describe(self, exc: BaseException) -> str:
        if self.message is not None:
            return self.message
        text = str(exc) or type(exc).__name__
        if self.one_line:
            text = " ".join(text.split())
        if isinstance(exc, KeyError) and len(text) > 1 and text[0] == text[-1] == "'":
            text = text[1:-1]  # KeyError quotes its argument
        return self.prefix + text


#: Each layer's error root and the rule for it; higher layers add theirs (butler never imports them).
_ROOTS: dict[type[BaseException], ErrorRule] = {ButlerError: ErrorRule()}


def register_error_root(root: type[BaseException], rule: ErrorRule | None = None) -> None:
    """Declare ``root`` (a layer's own exception root) as an expected error, reported in one line.

    quantumgraph registers :class:`QuantumGraphError`, bps :class:`BpsError`.  Builtin types are
    refused: that is exactly how bugs used to lose their tracebacks.
    """
    if root.__module__ == "builtins":
        raise TypeError(f"{root.__name__} is a builtin type; register a skybatch error root instead")
    _ROOTS[root] = rule or ErrorRule()


def _user_paths(ctx: click.Context | None) -> list[Path]:
    """Every string or path the user passed as an argument or option value, up the context chain."""
    found: list[Path] = []
    while ctx is not None:
        for value in ctx.params.values():
            values = value if isinstance(value, tuple | list) else (value,)
            for item in values:
                if isinstance(item, str | os.PathLike) and str(item):
                    found.append(Path(os.path.abspath(os.fspath(item))))
        ctx = ctx.parent
    return found


def _on_user_path(exc: OSError, ctx: click.Context | None) -> bool:
    """Whether ``exc`` is about a path the user gave: that path, one inside it, or the hidden temporary
    ``.NAME.*`` written beside it and renamed over it (a missing output directory fails there)."""
    if exc.filename is None:
        return False
    target = Path(os.path.abspath(os.fsdecode(exc.filename)))
    for given in _user_paths(ctx):
        if target == given or given in target.parents:
            return True
        if target.parent == given.parent and target.name.startswith(f".{given.name}."):
            return True
    return False


@dataclass(frozen=True, slots=True)
class ErrorRules:
    """One command line's additions to the boundary: rules by class, and the rule for path errors.

    ``by_class`` wins over the registered roots when both match an error (bps's exit codes); it
    may name ``KeyboardInterrupt`` (bps: status 130), never a builtin ``Exception`` subclass.
    """

    by_class: Mapping[type[BaseException], ErrorRule] = field(default_factory=dict)
    #: For ``FileNotFoundError``/``PermissionError`` on a path the user gave.
    paths: ErrorRule = ErrorRule()

    def rule_for(self, exc: BaseException, ctx: click.Context | None) -> ErrorRule | None:
        """The rule for ``exc``, or None if it is not an expected error (a bug)."""
        for klass in type(exc).__mro__:  # the most specific registered class wins
            rule = self.by_class.get(klass) or _ROOTS.get(klass)
            if rule is not None:
                return rule
        if isinstance(exc, FileNotFoundError | PermissionError) and _on_user_path(exc, ctx):
            return self.paths
        return None


def _output_closed(exc: BaseException) -> bool:
    """Whether ``exc`` means our stdout or stderr is a pipe whose reader went away (``| head``)."""
    if not isinstance(exc, BrokenPipeError) and getattr(exc, "errno", None) != errno.EPIPE:
        return False
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue  # not a real file (click's test runner): trust the exception
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if any(events & select.POLLERR for _, events in poller.poll(0)):
            return True
    return not _has_real_streams()


def _has_real_streams() -> bool:
    try:
        sys.stdout.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def _quiet_exit_after_closed_pipe() -> None:
    """Point stdout and stderr at /dev/null so the interpreter's final flush cannot complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, OSError, ValueError):
            pass
    os.close(devnull)
    sys.exit(EXIT_CLOSED_PIPE)


_NO_RULES = ErrorRules()

#: Key in ``ctx.meta`` (shared by a context chain) under which the running subcommand's context is kept.
_COMMAND_CONTEXT = "skybatch.command_context"


def _failing_context() -> click.Context | None:
    """The innermost context of the command that raised (click has popped it by now)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    inner = ctx.meta.get(_COMMAND_CONTEXT)
    return inner if isinstance(inner, click.Context) else ctx


def _flush_output() -> None:
    """Flush stdout now, inside the boundary: a pipe closed by its reader (``| head``) shows up
    here rather than as a complaint from the interpreter's final flush."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_exit_after_closed_pipe()


def report_error(exc: BaseException, ctx: click.Context | None = None, rules: ErrorRules = _NO_RULES) -> int:
    """Print what the user should see for ``exc`` escaping a command and return the exit status.

    Expected errors: one ``error: ...`` line (the traceback too at ``--log-level DEBUG``).
    Anything else: the traceback, then the line saying it is a bug and where to report it.
    """
    rule = rules.rule_for(exc, ctx)
    if rule is None:
        traceback.print_exception(exc, file=sys.stderr)
        click.echo(f"error: {BUG_REPORT}", err=True)
        return 1
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"error: {rule.describe(exc)}", err=True)
    return rule.exit_code


def error_boundary(func: F, rules: ErrorRules = _NO_RULES) -> F:
    """Wrap a command (or a group's ``invoke``) in the boundary described in the module docstring.

    click's own exceptions (usage errors, ``Exit``, ``Abort``) and ``SystemExit`` pass through;
    ``KeyboardInterrupt`` passes too (click prints ``Aborted!``) unless ``rules`` gives it one.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
            _flush_output()
            return result
        except (click.exceptions.Exit, SystemExit):
            _flush_output()
            raise
        except (click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            if KeyboardInterrupt not in rules.by_class:
                raise
            sys.exit(report_error(exc, _failing_context(), rules))
        except Exception as exc:
            if _output_closed(exc):
                _quiet_exit_after_closed_pipe()
            sys.exit(report_error(exc, _failing_context(), rules))

    return wrapper  # type: ignore[return-value]


class CommandGroup(click.Group):
    """The root group of a skybatch command line: global options anywhere, one error boundary.

    The group gets the global options (the logging options and ``--progress``) and ``-h`` as a
    synonym of ``--help``; every subcommand gets its own copies of the global options, so they
    also work after it.  ``error_rules`` and ``path_error_rule`` are this command line's additions
    (bps's exit codes).
    """

    def __init__(
        self,
        *args: Any,
        error_rules: Mapping[type[BaseException], ErrorRule] | None = None,
        path_error_rule: ErrorRule | None = None,
        **kwargs: Any,
    ) -> None:
        context_settings = dict(kwargs.pop("context_settings", None) or {})
        context_settings.setdefault("help_option_names", ["-h", "--help"])
        super().__init__(*args, context_settings=context_settings, **kwargs)
        _add_global_options(self, late=False)
        self.error_rules = ErrorRules(dict(error_rules or {}), path_error_rule or ErrorRule())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.find_command(ctx, cmd_name)
        if command is not None and not getattr(command, "_skybatch_global_options", False):
            _add_global_options(command, late=True)
            command.invoke = _subcommand_invoke(command.invoke)  # type: ignore[method-assign,assignment]
            command._skybatch_global_options = True  # type: ignore[attr-defined]
        return command

    def find_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand called ``cmd_name`` (subclasses look further, e.g. in entry points)."""
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        def configured_invoke(ctx: click.Context) -> Any:
            _LOG_SETUP.apply(_log_settings(ctx))
            return super(CommandGroup, self).invoke(ctx)

        try:
            return error_boundary(configured_invoke, self.error_rules)(ctx)
        finally:
            _LOG_SETUP.remove()


def _add_global_options(command: click.Command, *, late: bool) -> None:
    """Give ``command`` the global options it does not already define under the same names."""
    taken = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for param in _global_options(late=late):
        if not taken.intersection(param.opts + param.secondary_opts):
            command.params.append(param)


def _subcommand_invoke(invoke: Callable[[click.Context], Any]) -> Callable[[click.Context], Any]:
    """Wrap a subcommand's ``invoke``: remember its context for the boundary (which, outside it,
    still needs the paths it was given), and apply logging options given after the subcommand."""

    @functools.wraps(invoke)
    def wrapper(ctx: click.Context) -> Any:
        ctx.meta[_COMMAND_CONTEXT] = ctx
        _LOG_SETUP.apply(_log_settings(ctx))
        return invoke(ctx)

    return wrapper

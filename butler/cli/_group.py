"""A click group that finds extra subcommands through an entry-point group, loading them lazily.

Higher layers (quantumgraph's ``transfer-from-graph``) add ``butler`` subcommands without butler
importing them: they are listed from package metadata, which costs no import, and a plugin's
module is imported only when its command is run or the group's ``--help`` describes it.
The group is a :class:`~butler.cli_support.CommandGroup`, so every subcommand, plugins included,
accepts the global options and sits behind the one error boundary of :mod:`butler.cli_support`.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import click

from ..cli_support import CommandGroup

_log = logging.getLogger(__name__)


class PluginGroup(CommandGroup):
    """``click.Group`` whose extra commands come from the entry-point group ``plugin_group``."""

    def __init__(self, *args: Any, plugin_group: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_group = plugin_group
        self._plugins: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, click.Command] = {}

    def plugins(self) -> dict[str, EntryPoint]:
        """Entry points by command name; a name clashing with a built-in command is ignored."""
        if self._plugins is None:
            found: dict[str, EntryPoint] = {}
            for ep in entry_points(group=self.plugin_group):
                if ep.name in self.commands:
                    _log.warning(
                        "plugin command %s (%s) ignored: a built-in has that name", ep.name, ep.value
                    )
                    continue
                found.setdefault(ep.name, ep)
            self._plugins = found
        return self._plugins

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.plugins()))

    def find_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        builtin = self.commands.get(cmd_name)
        if builtin is not None:
            return builtin
        loaded = self._loaded.get(cmd_name)
        if loaded is not None:
            return loaded
        ep = self.plugins().get(cmd_name)
        if ep is None:
            return None
        try:
            command = ep.load()
        except Exception as err:  # any import-time failure of a plugin is reported the same way
            _log.debug("loading plugin command %s failed", cmd_name, exc_info=True)
            raise click.ClickException(
                f"command {cmd_name!r} (from {ep.value}) could not be loaded: {type(err).__name__}: {err}"
            ) from err
        if not isinstance(command, click.Command):
            raise click.ClickException(f"entry point {cmd_name} = {ep.value} is not a click command")
        self._loaded[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List every command with its short help; a plugin that fails to load is listed by origin."""
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max((len(n) for n in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or self._loaded.get(name)
            if command is None:
                # Help is for newcomers: load the plugin to show what it does.  Plugin modules are
                # small click wrappers, so this costs milliseconds; a broken one still gets a row.
                try:
                    command = self.get_command(ctx, name)
                except click.ClickException:
                    command = None
            if command is not None:
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                package = self.plugins()[name].value.partition(":")[0].partition(".")[0]
                rows.append((name, f"(provided by {package}; see its --help)"))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

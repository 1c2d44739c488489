"""Options shared by several commands, defined once.

``config_overrides`` adds the options that override submit-YAML keys and hands the command one
typed :class:`ConfigOverrides` instead of a dozen loose keyword arguments.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from .._exceptions import RunNotFoundError
from .._runs import RunRecord

F = TypeVar("F", bound=Callable[..., Any])

PRECEDENCE = (
    "Where a value comes from, highest first: command-line options > the submit YAML > its "
    "includeConfigs (later files over earlier ones) > the shipped defaults (bps/configs/defaults.yaml). "
    "The environment is used only for ${VAR} and for {placeholders} that no key defines."
)


@dataclass(frozen=True, slots=True)
class ConfigOverrides:
    """Submit-YAML keys given on the command line (None: not given)."""

    wms_service_class: str | None = None
    compute_site: str | None = None
    pipeline: Path | None = None
    qgraph: Path | None = None
    butler_config: str | None = None
    inputs: tuple[str, ...] = ()
    output: str | None = None
    output_run: str | None = None
    data_query: str | None = None

    def as_mapping(self) -> dict[str, Any]:
        """The nested key layer :func:`bps.config.load_bps_config` merges on top of everything."""
        top: dict[str, Any] = {}
        payload: dict[str, Any] = {}
        for key, value in (
            ("wmsServiceClass", self.wms_service_class),
            ("computeSite", self.compute_site),
            ("pipelineYaml", self.pipeline),
            ("qgraphFile", self.qgraph),
        ):
            if value is not None:
                top[key] = str(value)
        for key, value in (
            ("butlerConfig", self.butler_config),
            ("output", self.output),
            ("outputRun", self.output_run),
            ("dataQuery", self.data_query),
        ):
            if value is not None:
                payload[key] = value
        if self.inputs:
            payload["inCollection"] = list(self.inputs)
        if payload:
            top["payload"] = payload
        return top


def config_overrides(func: F) -> F:
    """Add the key-override options to a command; it receives ``overrides: ConfigOverrides``."""
    options = [
        click.option("--wms-service-class", help="Plugin name or class path (overrides wmsServiceClass)."),
        click.option("--compute-site", help="Site to run on (overrides computeSite)."),
        click.option("-p", "--pipeline", type=click.Path(path_type=Path), help="Overrides pipelineYaml."),
        click.option(
            "-g",
            "--qgraph",
            type=click.Path(path_type=Path),
            help="Pre-built QuantumGraph file (overrides qgraphFile; skips building).",
        ),
        click.option("-b", "--butler-config", help="Repository (overrides payload.butlerConfig)."),
        click.option(
            "-i",
            "--input",
            "inputs",
            multiple=True,
            help="Input collection, repeatable (overrides payload.inCollection).",
        ),
        click.option("-o", "--output", help="Output CHAINED collection (overrides payload.output)."),
        click.option("--output-run", help="Output RUN collection (overrides payload.outputRun)."),
        click.option("-d", "--data-query", help="Data query (overrides payload.dataQuery)."),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        names = ConfigOverrides.__dataclass_fields__
        values = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        values["inputs"] = tuple(values.get("inputs") or ())
        return func(*args, overrides=ConfigOverrides(**values), **kwargs)

    command: Any = wrapper
    for option in reversed(options):
        command = option(command)
    return command  # type: ignore[no-any-return]


run_id_option = click.option(
    "--id",
    "run_id",
    metavar="RUN",
    help="Run id (or a unique prefix of one, or a submit directory).",
)


def user_option(help_text: str) -> Callable[[F], F]:
    """``--user USER`` (LSST's): restrict to one operator's runs."""
    return click.option("--user", metavar="USER", default=None, help=help_text)


hist_option = click.option(
    "--hist",
    metavar="DAYS",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Only runs submitted in the last DAYS days (without --id); 0: every recorded run. (LSST: how "
    "many days of the engine's history to search.)",
)

global_option = click.option(
    "--global/--no-global",
    "is_global",
    default=False,
    expose_value=False,
    help="LSST's option, accepted: skybatch finds runs through its runs index, whichever queue or "
    "machine ran them, so every search is already global.",
)


def since_days(days: float) -> datetime.datetime | None:
    """The cut-off time for ``--hist DAYS`` (None for 0: no cut-off)."""
    if not days:
        return None
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)


def check_owner(record: RunRecord, user: str | None) -> None:
    """With ``--user`` and ``--id`` both given, the run must be that user's."""
    if user is not None and record.operator != user:
        raise RunNotFoundError(f"run {record.run_id} belongs to {record.operator}, not to --user {user}")

"""The ``bps`` command: thin typed commands over the library calls in bps."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from butler.cli_support import CommandGroup, progress_enabled

from ..wms._states import TERMINAL_STATES
from ._exit_codes import ERROR_RULES, EXIT_RUN_NOT_SUCCEEDED, PATH_ERROR_RULE
from ._options import (
    PRECEDENCE,
    ConfigOverrides,
    check_owner,
    config_overrides,
    global_option,
    hist_option,
    run_id_option,
    since_days,
    user_option,
)
from ._status import ping, status


@click.group(
    cls=CommandGroup,
    error_rules=ERROR_RULES,
    path_error_rule=PATH_ERROR_RULE,
    help="Batch production: run QuantumGraphs on workflow engines.\n\n"
    "Exit status: 0 success; 1 an operation failed; 2 the request was wrong (bad submit YAML, unknown "
    "plugin or run id, bad option); 3 a run finished but not every job succeeded; 130 interrupted. "
    "--log-level and --progress may also follow the subcommand.\n\n"
    f"{PRECEDENCE}",
)
def main() -> None:
    """Options are handled by their callbacks (logging) or read later (``progress_enabled``)."""


def _load(config_file: Path, overrides: ConfigOverrides) -> Any:
    from ..config import load_bps_config

    return load_bps_config(config_file, overrides.as_mapping())


@main.command(
    help=f"Build the QuantumGraph and workflow, render it for the WMS, and submit it.\n\n"
    f"Plugins that run locally (such as parsl) run the workflow in the foreground: the "
    f"command returns when the final job has finished.\n\n{PRECEDENCE}"
)
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="CONFIG")
@config_overrides
def submit(config_file: Path, overrides: ConfigOverrides) -> None:
    from .._report import fetch_run_report, format_run_report
    from .._runs import RunRecord
    from .._submit import prepare, submit_prepared
    from ..wms._states import JobState

    config = _load(config_file, overrides)
    prepared = prepare(config, progress=progress_enabled())
    foreground = prepared.service.runs_in_foreground
    click.echo(f"Submit directory: {prepared.submit_dir}")

    def announce(record: RunRecord) -> None:
        click.echo(f"Run id: {record.run_id}   (bps report --id {record.run_id})")
        if foreground:
            click.echo(
                f"Running {prepared.number_of_jobs} jobs with {config.wms_service_class} in the "
                "foreground; Ctrl-C or `bps cancel` stops it."
            )

    record = submit_prepared(prepared, announce)
    payload = config.payload
    click.echo(
        f"Outputs: collection {payload.output} (run {payload.output_run}) in repository "
        f"{payload.butler_config}"
    )
    if foreground:
        record, report = fetch_run_report(record.submit_dir)
        click.echo(format_run_report(record, report))
        if report.state is not JobState.SUCCEEDED:
            sys.exit(EXIT_RUN_NOT_SUCCEEDED)


@main.command(
    help=f"Build the QuantumGraph and workflow and render them into the submit directory "
    f"without running anything. Stage timings are logged at INFO.\n\n{PRECEDENCE}"
)
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="CONFIG")
@config_overrides
def prepare(config_file: Path, overrides: ConfigOverrides) -> None:
    from .._submit import prepare as prepare_run

    config = _load(config_file, overrides)
    prepared = prepare_run(config, progress=progress_enabled())
    timings = ", ".join(f"{stage} {seconds:.3f} s" for stage, seconds in prepared.timings.items())
    click.echo(
        f"Prepared {prepared.number_of_jobs} jobs for {config.wms_service_class} in "
        f"{prepared.submit_dir} (not submitted; {timings})"
    )


@main.command(
    help="Without --id: your recent runs. With --id: jobs per task and state for that run, "
    "its overall state, and its failed jobs with exit codes and log files."
)
@run_id_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many recent runs to list (without --id).",
)
@user_option("Only this user's runs (without --id; with --id, the run must be this user's).")
@hist_option
@global_option
def report(run_id: str | None, limit: int, user: str | None, hist: float) -> None:
    from .._report import fetch_recent_runs, fetch_run_report, format_run_list, format_run_report

    if run_id is None:
        click.echo(format_run_list(fetch_recent_runs(limit, operator=user, since=since_days(hist))))
        return
    record, run_report = fetch_run_report(run_id)
    check_owner(record, user)
    click.echo(format_run_report(record, run_report))


@main.command(
    help="Stop a run (--id), or every unfinished run of a user (--user): unfinished jobs become DELETED."
)
@run_id_option
@user_option("Cancel every unfinished run of this user (or, with --id, only if the run is theirs).")
@click.option(
    "--require-bps/--skip-require-bps",
    default=True,
    show_default=True,
    help="LSST's option, accepted: skybatch only ever cancels runs bps submitted (those in its runs index).",
)
@global_option
def cancel(run_id: str | None, user: str | None, require_bps: bool) -> None:
    from .._report import service_and_record
    from .._runs import list_runs

    del require_bps  # always true here: only runs bps recorded can be named
    if run_id is None and user is None:
        raise click.UsageError("give --id RUN or --user USER")
    if run_id is not None:
        service, record = service_and_record(run_id)
        check_owner(record, user)
        service.cancel(record.wms_run_id or record.submit_dir)
        click.echo(f"Asked run {record.run_id} to stop.")
        return
    stopped = 0
    for record in list_runs(operator=user):
        service, _ = service_and_record(record.submit_dir)
        reports = service.report(record.wms_run_id or record.submit_dir)
        if reports and reports[0].state in TERMINAL_STATES:
            continue
        service.cancel(record.wms_run_id or record.submit_dir)
        click.echo(f"Asked run {record.run_id} to stop.")
        stopped += 1
    if not stopped:
        click.echo(f"No unfinished runs of user {user}.")


@main.command(help="Run again every job of a run that did not succeed, then the final job.")
@run_id_option
def restart(run_id: str | None) -> None:
    from .._report import fetch_run_report, format_run_report, service_and_record
    from ..wms._states import JobState

    if run_id is None:
        raise click.UsageError("--id is required")
    service, record = service_and_record(run_id, progress=progress_enabled())
    service.restart(record.wms_run_id or record.submit_dir)
    if service.runs_in_foreground:
        record, run_report = fetch_run_report(record.submit_dir)
        click.echo(format_run_report(record, run_report))
        if run_report.state is not JobState.SUCCEEDED:
            sys.exit(EXIT_RUN_NOT_SUCCEEDED)
    else:
        click.echo(f"Restarted run {record.run_id}.")


@main.command(
    help="Serve a read-only web page over every run in the runs index: states, progress per task, "
    "failures grouped by exception with log tails, jobs ended over time, memory per task, submit "
    "configs. It updates itself. JSON of the same data: /api/runs and /api/runs/RUN_ID.\n\n"
    "Listens on 127.0.0.1 (this machine only) by default; any other --host needs --token, and "
    "then every request must carry it as the header 'Authorization: Bearer TOKEN' or as ?token=TOKEN "
    "in the address. Needs the dashboard extra: pip install 'skybatch[dashboard]'."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port to listen on (0: any free port; the address is printed).",
)
@click.option(
    "--token",
    envvar="SKYBATCH_DASHBOARD_TOKEN",
    show_envvar=True,
    default=None,
    help="Secret every request must carry; required with a --host other than a loopback address. "
    "The option wins over the environment variable.",
)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.5),
    default=2.0,
    show_default=True,
    help="Seconds between the page's updates.",
)
def dashboard(host: str, port: int, token: str | None, refresh: float) -> None:
    from .._runs import runs_dir
    from ..dashboard import serve

    def announce(url: str) -> None:
        access = " (add ?token=TOKEN to the address)" if token else ""
        click.echo(f"Dashboard of the runs in {runs_dir()} at {url}{access}; read-only, Ctrl-C stops it.")

    serve(host, port, token=token, refresh_seconds=refresh, announce=announce)


main.add_command(status)
main.add_command(ping)

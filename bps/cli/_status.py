"""``bps status`` and ``bps ping``: answers a script reads from the exit code, as LSST's do.

``bps status --id RUN`` prints the run's state and exits with LSST's number for it (ctrl_bps's
``WmsStates``), so a script written for LSST tests the same values; ``bps ping`` exits 0 when the
plugin's services answer and 1 when they do not.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from ..wms._states import JobState
from ._options import global_option, hist_option

_LOG = logging.getLogger(__name__)

#: LSST's ``WmsStates`` values, the exit codes of ``bps status``.  0 (UNKNOWN) when the run
#: cannot be found, as in LSST; MISFIT (1) has no skybatch state.
STATUS_EXIT_CODES: dict[JobState | None, int] = {
    None: 0,
    JobState.UNREADY: 2,
    JobState.READY: 3,
    JobState.PENDING: 4,
    JobState.RUNNING: 5,
    JobState.DELETED: 6,
    JobState.HELD: 7,
    JobState.SUCCEEDED: 8,
    JobState.FAILED: 9,
    JobState.PRUNED: 10,
}

_STATUS_HELP = (
    "Print a run's state and exit with LSST's number for it: 0 UNKNOWN (no such run), 2 UNREADY, "
    "3 READY, 4 PENDING, 5 RUNNING, 6 DELETED, 7 HELD, 8 SUCCEEDED, 9 FAILED, 10 PRUNED. Note that "
    "these are not bps's usual exit codes (1 and 2 for errors): a script tests the number."
)


@click.command(help=_STATUS_HELP)
@click.option(
    "--id", "run_id", metavar="RUN", required=True, help="Run id (a unique prefix, or a submit directory)."
)
@hist_option
@global_option
def status(run_id: str, hist: float) -> None:
    from .._exceptions import RunNotFoundError
    from .._report import fetch_run_report

    del hist  # every recorded run is found, however old
    try:
        _, report = fetch_run_report(run_id)
    except RunNotFoundError as err:
        click.echo("UNKNOWN")
        click.echo(f"warning: {' '.join(str(err).split())}", err=True)
        sys.exit(STATUS_EXIT_CODES[None])
    click.echo(report.state.value)
    sys.exit(STATUS_EXIT_CODES[report.state])


@click.command(
    help="Check that the plugin's services answer (the HTCondor schedd, say) without submitting "
    "anything. Exit status 0 if they do, 1 if not, with the reason."
)
@click.option(
    "--wms-service-class",
    metavar="PLUGIN",
    default=None,
    help="Plugin name or class path. Default: $BPS_WMS_SERVICE_CLASS (LSST's variable), else the "
    "shipped default (wmsServiceClass in bps/configs/defaults.yaml).",
)
def ping(wms_service_class: str | None) -> None:
    from ..config._layers import default_layer
    from ..wms._loader import load_wms_service_class

    name = (
        wms_service_class
        or os.environ.get("BPS_WMS_SERVICE_CLASS")
        or str(default_layer()["wmsServiceClass"])
    )
    result = load_wms_service_class(name)().ping()
    if result.ok:
        click.echo(f"Ping successful ({name}){': ' + result.message if result.message else ''}.")
        return
    click.echo(f"error: ping failed ({name}): {result.message}", err=True)
    sys.exit(1)

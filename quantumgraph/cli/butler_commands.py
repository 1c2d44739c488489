"""``butler`` subcommands that quantumgraph provides through the ``skybatch.butler_commands`` entry points.

The butler layer never imports quantumgraph; it finds these by entry-point name.  Its group puts them
behind the shared error boundary; importing this package registered ``QuantumGraphError`` there.
"""

from __future__ import annotations

import click

from butler.cli_support import progress_enabled


@click.command("transfer-from-graph")
@click.argument("graph", metavar="GRAPH")
@click.argument("repo", metavar="REPO")
@click.option(
    "--update-output-chain/--no-update-output-chain",
    default=True,
    show_default=True,
    help="Put the graph's output run at the front of its output CHAINED collection "
    "(creating the chain over the input collections if it does not exist).",
)
@click.option(
    "--register-dataset-types/--no-register-dataset-types",
    default=True,
    show_default=True,
    help="Register the graph's dataset types if they are not registered yet.",
)
@click.option(
    "--clobber-outputs",
    is_flag=True,
    help="The jobs were rerun with --clobber-outputs: record already-registered outputs as their "
    "files are now (size, checksum). Without it their records are kept.",
)
@click.option(
    "--transfer-dimensions",
    is_flag=True,
    help="Accepted for LSST's final-job command; nothing to do: the graph was built from REPO, whose "
    "dimension records its outputs use.",
)
@click.option(
    "--dataset-type",
    "dataset_types",
    multiple=True,
    metavar="NAME[,NAME...]",
    help="Only outputs of these dataset types (repeatable or comma-separated); the others stay "
    "unregistered until a merge without this option.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only report what would be registered; change nothing (no registration, chain or cleanup).",
)
def transfer_from_graph(
    graph: str,
    repo: str,
    update_output_chain: bool,
    register_dataset_types: bool,
    clobber_outputs: bool,
    transfer_dimensions: bool,
    dataset_types: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Register a graph's outputs that exist in REPO (the merge job).

    Reads GRAPH's predicted outputs, keeps those whose files exist in REPO's datastore, and
    registers them with the UUIDs the graph assigned.

    Safe to run any number of times and after a partly failed workflow: outputs already
    registered are skipped and missing ones are reported, not errors.

    \b
    Examples:
      butler transfer-from-graph submit/u/me/demo/20261126T040000Z/graph.qgraph demo_repo
      butler transfer-from-graph graph.qgraph demo_repo --dataset-type calexp --dry-run
    """
    from butler import Butler
    from butler.progress import progress_bar

    from .._merge import transfer_from_graph as merge

    del transfer_dimensions  # see its help: the records are in REPO already

    types = [name.strip() for value in dataset_types for name in value.split(",") if name.strip()]
    with (
        Butler(repo, writeable=not dry_run) as butler,
        progress_bar(0, "Checking outputs", enabled=progress_enabled()) as bar,
    ):
        result = merge(
            graph,
            butler,
            register_dataset_types=register_dataset_types,
            update_output_chain=update_output_chain,
            progress=bar,
            clobber_outputs=clobber_outputs,
            dataset_types=types,
            dry_run=dry_run,
        )
    target = f"{result.output} (run {result.output_run})" if result.output else result.output_run
    if dry_run:
        click.echo(
            f"dry run: {result.found} of {result.predicted} predicted outputs found; {result.registered} "
            f"would be newly registered in {target}; {result.missing} missing; nothing changed"
        )
        return
    click.echo(
        f"{result.found} of {result.predicted} predicted outputs found; {result.registered} newly registered "
        f"in {target}; {result.missing} missing"
    )


@click.command("make-demo-repo")
@click.argument("repo", metavar="REPO")
@click.option(
    "--exposures",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Number of exposures (numbered 1..N).",
)
@click.option(
    "--detectors",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Number of detectors per exposure (numbered 0..N-1).",
)
def make_demo_repo(repo: str, exposures: int, detectors: int) -> None:
    """Create a demo repository of synthetic DemoCam raws.

    This is the quickstart's first step: REPO gets the DemoCam instrument's dimension records and
    raw data for every exposure and detector.

    Raws go to the RUN DemoCam/raw/all; the CHAINED collection DemoCam/defaults points at it.
    """
    from butler.progress import progress_bar

    from ..demo.repo import DEFAULTS
    from ..demo.repo import make_demo_repo as make

    with progress_bar(exposures * detectors, "Writing raws", enabled=progress_enabled()) as bar:
        make(repo, exposures, detectors, progress=bar)
    click.echo(
        f"Created {repo}: {exposures} exposures x {detectors} detectors of raw in collection {DEFAULTS}"
    )

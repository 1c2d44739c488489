"""Click wiring for ``pipetask``: each command is a thin typed wrapper over ``_commands``."""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from butler.cli_support import CommandGroup, progress_enabled

from .. import _pictures as pictures
from .._exceptions import GraphBuildError
from .._model import QuantumGraph
from .._options import GraphOptions
from . import _commands as cmd
from ._show import SHOW_CHOICES, check_show, render

F = TypeVar("F", bound=Callable[..., Any])

_REPO_HELP = "Path to the butler repository (or its butler.yaml)."


@dataclass(frozen=True, slots=True)
class GraphSource:
    """Where a command's graph comes from: a saved file (--qgraph) or a build from these options."""

    repo: str | None
    inputs: tuple[str, ...]
    output: str | None
    output_run: str | None
    pipeline: str | None
    where: str | None
    qgraph: str | None
    instrument: str | None = None

    def obtain(self, *, existing_run_ok: bool = False, options: GraphOptions | None = None) -> QuantumGraph:
        if self.qgraph:
            if self.instrument is not None:
                raise click.UsageError("--instrument applies to a graph being built, not to --qgraph FILE")
            return cmd.load_graph(self.qgraph)
        if not self.repo or not self.pipeline:
            raise click.UsageError("give either --qgraph FILE, or -b REPO and -p PIPELINE to build a graph")
        return cmd.build_graph(
            self.repo,
            self.inputs,
            self.output,
            self.output_run,
            self.pipeline,
            self.where,
            existing_run_ok=existing_run_ok,
            instrument=self.instrument,
            options=options,
        )


def graph_source_options(*, repo_required: bool) -> Callable[[F], F]:
    """Add the options that say which graph to use, handed to the command as one ``source``."""
    options = [
        click.option(
            "-b", "--butler-config", "repo", required=repo_required, metavar="REPO", help=_REPO_HELP
        ),
        click.option(
            "-i",
            "--input",
            "inputs",
            multiple=True,
            metavar="COLLECTION",
            help="Input collections to search, in order (repeat or comma-separate). Defaults to the "
            "existing --output chain's contents.",
        ),
        click.option(
            "-o",
            "--output",
            metavar="COLLECTION",
            help="Output CHAINED collection; the new run is put at its front after execution.",
        ),
        click.option(
            "--output-run", metavar="RUN", help="Output RUN collection (default: OUTPUT/<UTC timestamp>)."
        ),
        click.option(
            "-p",
            "--pipeline",
            metavar="PIPELINE.yaml[#SELECTION]",
            help="Pipeline YAML file; '#a,b', '#subsetName' or '#a..b' selects part of it.",
        ),
        click.option(
            "-d",
            "--data-query",
            "where",
            metavar="EXPR",
            help='Data query, e.g. "exposure IN (1, 2) AND detector < 4" or "band = \'r\'".',
        ),
        click.option(
            "-g", "--qgraph", metavar="FILE", help="Use this saved QuantumGraph instead of building one."
        ),
        click.option(
            "--instrument",
            metavar="NAME",
            help="The pipeline's instrument (replacing its file's instrument:): a name in the "
            "repository, or the class path recorded for one (LSST's form). Quanta are planned for it only.",
        ),
        click.option(
            "--qgraph-datastore-records",
            is_flag=True,
            expose_value=False,
            help="LSST's option, accepted: graphs here always carry their inputs' datastore records "
            "(batch jobs read through them and never open the registry).",
        ),
    ]
    names = ("repo", "inputs", "output", "output_run", "pipeline", "where", "qgraph", "instrument")

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            source = GraphSource(**{name: kwargs.pop(name) for name in names})
            return func(*args, source=source, **kwargs)

        command: Any = wrapper
        for option in reversed(options):
            command = option(command)
        return command  # type: ignore[no-any-return]

    return decorator


def graph_options(*, execution: bool) -> Callable[[F], F]:
    """The rerun and pipeline options of ``qgraph`` and ``run`` (LSST's names), handed over as one
    :class:`GraphOptions` ``options``; ``execution`` adds those only ``run`` has."""
    options = [
        click.option(
            "--skip-existing-in",
            "skip_existing_in",
            multiple=True,
            metavar="COLLECTIONS",
            help="Leave out quanta whose {label}_metadata in these collections (repeat or comma-separate) "
            "says they succeeded and whose outputs are there; their outputs are read from there. "
            "Failed and never-run quanta are planned again.",
        ),
        click.option(
            "--skip-existing",
            is_flag=True,
            help="Like --skip-existing-in with the output run (useful with --extend-run).",
        ),
        click.option(
            "--extend-run",
            is_flag=True,
            help="Write into the output run, which already exists: --output-run, or with -o alone the "
            "run at the front of the output chain. Refused if the run's task configs differ, or if it "
            "already holds any of the graph's predicted outputs (unless they are what failed quanta left, "
            "with --skip-existing/--skip-existing-in covering the run, or --clobber-outputs).",
        ),
        click.option(
            "--replace-run",
            is_flag=True,
            help="Take the run at the front of the -o chain out of it (and out of the default inputs); the "
            "new run takes its place. See --prune-replaced.",
        ),
        click.option(
            "--prune-replaced",
            type=click.Choice(["unstore", "purge"]),
            help="With --replace-run: 'unstore' deletes the replaced run's files (its datasets stay "
            "registered), 'purge' deletes its datasets entirely.",
        ),
        click.option(
            "-c",
            "--config",
            "config_overrides",
            multiple=True,
            metavar="LABEL:KEY=VALUE",
            help="Override one task config field (value in YAML); repeatable; wins over -C and the pipeline.",
        ),
        click.option(
            "-C",
            "--config-file",
            "config_files",
            multiple=True,
            metavar="LABEL:FILE.yaml",
            help="Override task config fields from a YAML mapping; repeatable; wins over the pipeline file.",
        ),
        click.option(
            "--select-tasks",
            "select_tasks",
            multiple=True,
            metavar="LABELS",
            help="Plan only these tasks (labels, repeat or comma-separate); the others' outputs must exist.",
        ),
    ]
    names = (
        "skip_existing_in",
        "skip_existing",
        "extend_run",
        "replace_run",
        "prune_replaced",
        "config_overrides",
        "config_files",
        "select_tasks",
    )

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            if values["prune_replaced"] and not values["replace_run"]:
                raise click.UsageError("--prune-replaced needs --replace-run")
            opts = GraphOptions(**values)
            return func(*args, options=opts, **kwargs)

        command: Any = wrapper
        for option in reversed(options):
            command = option(command)
        return command  # type: ignore[no-any-return]

    return decorator


@click.command(add_help_option=False)
@graph_options(execution=False)
def _graph_options_only(options: GraphOptions) -> GraphOptions:
    return options


def parse_graph_options(args: str | Sequence[str], *, where: str = "extraQgraphOptions") -> GraphOptions:
    """The :class:`GraphOptions` that ``pipetask qgraph`` would take from ``args`` (a string is
    split like a shell would); anything else is a :class:`GraphBuildError` naming ``where``."""
    argv = shlex.split(args) if isinstance(args, str) else list(args)
    try:
        result = _graph_options_only.main(argv, prog_name="pipetask qgraph", standalone_mode=False)
    except click.ClickException as exc:
        raise GraphBuildError(f"{where} {' '.join(argv)!r}: {exc.format_message()}") from None
    assert isinstance(result, GraphOptions)
    return result


@click.group(cls=CommandGroup)
def main() -> None:
    """Build and run QuantumGraphs.

    \b
    Laptop workflow:
      pipetask build -p pipeline.yaml --show pipeline --pipeline-dot pipeline.dot
      pipetask qgraph -b REPO -i DemoCam/defaults -o u/me/demo -p pipeline.yaml --save-qgraph g.qgraph
      pipetask qgraph --qgraph g.qgraph --show summary
      pipetask run -b REPO -i DemoCam/defaults -o u/me/demo -p pipeline.yaml -j 2
    Inside batch jobs (bps writes these for you):
      pipetask pre-exec-init-qbb REPO GRAPH
      pipetask run-qbb REPO GRAPH --qgraph-node-id ID [--qgraph-node-id ID ...] [--job-local TYPE]
        [-j N] [--summary FILE] [--log-file job.json --long-log --log-level VERBOSE]

    Errors in your input are reported as one line on stderr with exit status 1 (--log-level DEBUG
    adds the traceback). --log-level and --progress may also follow the subcommand.
    """


@main.command()
@graph_source_options(repo_required=False)
@click.option("-q", "--save-qgraph", metavar="FILE", help="Write the graph to FILE.")
@graph_options(execution=False)
@click.option(
    "--show",
    "show",
    type=click.Choice(["summary", "quanta"]),
    multiple=True,
    help="Print a summary (quanta per task) or one line per quantum (id, task, data ID).",
)
@click.option(
    "--qgraph-dot",
    metavar="FILE",
    help="Write a Graphviz dot picture of the graph (quanta and datasets) to FILE; for small graphs.",
)
def qgraph(
    source: GraphSource,
    options: GraphOptions,
    save_qgraph: str | None,
    show: tuple[str, ...],
    qgraph_dot: str | None,
) -> None:
    """Build a QuantumGraph (or load one with --qgraph), then save and/or show it."""
    graph = source.obtain(existing_run_ok=options.extend_run, options=options)
    if save_qgraph:
        size = cmd.save_graph(graph, save_qgraph)
        click.echo(f"Saved {len(graph)} quanta to {save_qgraph} ({size:,} bytes)", err=True)
    if qgraph_dot:
        cmd.write_text_file(qgraph_dot, pictures.quantum_graph_dot(graph))
        click.echo(f"Wrote a picture of {len(graph)} quanta to {qgraph_dot}", err=True)
    for what in show:
        cmd.show_graph(graph, what)
    if not save_qgraph and not show and not qgraph_dot:
        cmd.show_graph(graph, "summary")


@main.command()
@click.option(
    "-p",
    "--pipeline",
    required=True,
    metavar="PIPELINE.yaml[#SELECTION]",
    help="Pipeline YAML file; '#a,b', '#subset' or '#a..b' selects part of it.",
)
@click.option(
    "-b",
    "--butler-config",
    "repo",
    metavar="REPO",
    help="Repository whose dimension universe checks the pipeline (default: the built-in universe).",
)
@click.option(
    "--show",
    "show",
    multiple=True,
    metavar="WHAT",
    help=f"Print one of: {', '.join(SHOW_CHOICES)} (repeatable). config=PATTERN filters fields with "
    "shell wildcards (case-insensitive), of one task with LABEL::PATTERN.",
)
@click.option("--pipeline-dot", metavar="FILE", help="Write a Graphviz dot picture of the pipeline to FILE.")
@click.option("--pipeline-mermaid", metavar="FILE", help="Write a Mermaid flowchart of the pipeline to FILE.")
@click.option("-s", "--save-pipeline", metavar="FILE", help="Write the expanded pipeline YAML to FILE.")
def build(
    pipeline: str,
    repo: str | None,
    show: tuple[str, ...],
    pipeline_dot: str | None,
    pipeline_mermaid: str | None,
    save_pipeline: str | None,
) -> None:
    """Load and check a pipeline (imports, parameters, contracts, connections) without a graph.

    With no --show and no output file, prints the task graph.
    """
    for what in show:
        check_show(what)
    pgraph = cmd.load_pipeline_graph(pipeline, repo)
    for path, text in (
        (pipeline_dot, pictures.pipeline_dot),
        (pipeline_mermaid, pictures.pipeline_mermaid),
        (save_pipeline, lambda g: g.pipeline.to_yaml()),
    ):
        if path:
            cmd.write_text_file(path, text(pgraph))
            click.echo(f"wrote {path}", err=True)
    for what in show:
        click.echo(render(pgraph, what), nl=False)
    if not (show or pipeline_dot or pipeline_mermaid or save_pipeline):
        click.echo(render(pgraph, "task-graph"), nl=False)


@main.command()
@graph_source_options(repo_required=True)
@click.option("-q", "--save-qgraph", metavar="FILE", help="Also write the graph to FILE.")
@graph_options(execution=True)
@click.option(
    "-j",
    "--processes",
    "jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Number of processes executing quanta in parallel.",
)
@click.option(
    "--clobber-outputs",
    is_flag=True,
    help="Write into an output run that already exists, replacing the outputs (and task configs) it "
    "already holds for this graph: those are removed before execution.",
)
@click.option(
    "--no-versions",
    is_flag=True,
    help="Neither write nor check the run's 'packages' dataset (software versions). Without it, a "
    "run whose packages differ from this process's is refused.",
)
@click.option(
    "--fail-fast",
    is_flag=True,
    help="Start no quantum after the first failure (quanta already running finish); the rest are "
    "reported as not run.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Fail any quantum that runs longer than SECONDS (per quantum); its log records the timeout.",
)
@click.option(
    "--init-only",
    is_flag=True,
    help="Only write (and register) the run's task configs and packages; run no quantum.",
)
def run(
    source: GraphSource,
    options: GraphOptions,
    save_qgraph: str | None,
    jobs: int,
    clobber_outputs: bool,
    init_only: bool,
    no_versions: bool,
    fail_fast: bool,
    timeout: float | None,
) -> None:
    """Build a graph (or load one), execute every quantum here, and register the outputs.

    The output run is reserved before any quantum runs: if it already exists the command stops
    with an error unless --extend-run or --clobber-outputs says to write into it.
    A failed quantum's downstream quanta are skipped; everything else runs and is registered,
    and the command exits with status 1.
    """
    graph = source.obtain(existing_run_ok=True, options=options)  # the run is reserved (or refused) below
    if save_qgraph:
        cmd.save_graph(graph, save_qgraph)
    assert source.repo is not None  # required for run
    ok, failed, pruned, merged = cmd.run_graph(
        source.repo,
        graph,
        save_qgraph or source.qgraph,
        jobs,
        progress_enabled(),
        options=options,
        clobber_outputs=clobber_outputs,
        init_only=init_only,
        no_versions=no_versions,
        fail_fast=fail_fast,
        timeout=timeout,
    )
    where_out = merged.output or merged.output_run
    click.echo(
        f"{ok} quanta succeeded, {failed} failed, {pruned} not run because of upstream failures; "
        f"{merged.found} outputs registered in {where_out}"
    )
    if failed or pruned:
        sys.exit(1)


@main.command()
@click.argument("repo")
@click.argument("graph")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A table and one line per failure, or the same as JSON.",
)
def report(repo: str, graph: str, fmt: str) -> None:
    """Per task, how many quanta of GRAPH succeeded, failed, were blocked or not attempted.

    Read from the {label}_metadata and {label}_log datasets the quanta wrote into the graph's
    output run in REPO (or, before the merge, at their files' predicted paths). Each failure is
    listed with its data ID and the exception message from its log.
    """
    import json

    from butler import Butler

    from .._report import format_report, report_graph

    with Butler(repo, writeable=False) as butler:
        result = report_graph(butler, graph)
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(format_report(result))


@main.command("update-graph-run")
@click.argument("graph")
@click.argument("run")
@click.argument("output_graph", metavar="OUTPUT_GRAPH")
def update_graph_run(graph: str, run: str, output_graph: str) -> None:
    """Write a copy of GRAPH whose outputs go to RUN, with new dataset and quantum IDs.

    The quanta, their inputs and the task configs stay as they are; use it to run a saved graph
    again into a fresh run (the output chain named in the graph is unchanged).
    """
    from .._update_run import update_graph_run as update

    updated = update(cmd.load_graph(graph), run)
    size = cmd.save_graph(updated, output_graph)
    click.echo(
        f"Saved {len(updated)} quanta writing to run {run} to {output_graph} ({size:,} bytes)", err=True
    )


@main.command("pre-exec-init-qbb")
@click.argument("repo")
@click.argument("graph")
@click.option(
    "--no-versions",
    is_flag=True,
    help="Neither write nor check the run's 'packages' dataset (software versions).",
)
def pre_exec_init_qbb(repo: str, graph: str, no_versions: bool) -> None:
    """Write each task's init outputs (its config) and the run's packages before any quantum runs.

    No registry access. If the run already has a packages dataset with other versions of a
    package this process imported, stops with an error (unless --no-versions).
    """
    n = cmd.pre_exec_init_qbb(repo, graph, no_versions=no_versions)
    click.echo(f"wrote {n} init-output dataset(s)", err=True)


@main.command("run-qbb")
@click.argument("repo")
@click.argument("graph")
@click.option(
    "--qgraph-node-id",
    "node_ids",
    multiple=True,
    metavar="ID",
    help="Quantum to run (repeatable or comma-separated, as LSST's {qgraphNodeId}; run in the order "
    "given); default: every quantum in the graph, in order.",
)
@click.option(
    "--job-local",
    "job_local",
    multiple=True,
    metavar="DATASET_TYPE",
    help="Keep outputs of this dataset type in memory for the later quanta of this run instead of "
    "writing them (repeatable). Outputs no later quantum here reads are written anyway. Only for "
    "types nothing outside this run reads: bps adds it to cluster jobs when jobLocalDatasetTypes allows.",
)
@click.option(
    "--clobber-outputs",
    is_flag=True,
    help="Replace output files that already exist with different contents (from an earlier attempt, "
    "perhaps already merged). Without it such a quantum fails and the file is kept. Merge afterwards "
    "with 'butler transfer-from-graph --clobber-outputs' so the records describe the new files.",
)
@click.option(
    "-j",
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run independent quanta of this job at once on this many processes (a quantum still waits "
    "for its inputs' producers). Ignored, with a warning, together with --job-local.",
)
@click.option(
    "--summary",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write a JSON summary of the job to FILE, as LSST's --summary does: overall status and exit "
    "code, and per quantum its id, task label, data ID, status (success, failure, skipped) and "
    "error. Written even when the job fails.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Fail any quantum that runs longer than SECONDS (per quantum); its log records the timeout.",
)
@click.option("--fail-fast", is_flag=True, help="Run no further quantum of this job after the first failure.")
def run_qbb(
    repo: str,
    graph: str,
    node_ids: tuple[str, ...],
    job_local: tuple[str, ...],
    clobber_outputs: bool,
    processes: int,
    summary: str | None,
    timeout: float | None,
    fail_fast: bool,
) -> None:
    """Run quanta from a graph file with a quantum-backed butler (the batch-job entry point).

    Reads inputs and writes outputs through the datastore only; the registry is never opened.
    A quantum whose input comes from a quantum that failed earlier in the same run is skipped.
    Exits with status 1 if any quantum failed or was skipped.
    """
    try:
        job = cmd.run_qbb(
            repo,
            graph,
            node_ids,
            job_local,
            clobber_outputs=clobber_outputs,
            processes=processes,
            timeout=timeout,
            fail_fast=fail_fast,
        )
    except Exception as exc:
        if summary:
            cmd.write_job_summary(summary, None, exc)
        raise
    if summary:
        cmd.write_job_summary(summary, job)
    for line in job.errors:
        click.echo(f"error: {line}", err=True)
    if job.errors:
        sys.exit(1)

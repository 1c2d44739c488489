"""Bodies of the ``pipetask`` commands: typed functions over library calls, no click here.

Keeping them free of click lets tests and other layers (bps) call them directly, and keeps each
click command a thin wrapper.
"""

from __future__ import annotations

import datetime
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._exceptions import GraphBuildError
from .._model import GraphHeader, Quantum, QuantumGraph
from .._options import GraphOptions

if TYPE_CHECKING:
    from butler import Butler, LimitedButler, QuantumBackedButler, StoredFileInfo

    from .._execution import ExecutionOutcome, TaskFactory
    from .._merge import MergeResult
    from .._pipeline_graph import PipelineGraph
    from .._written import WrittenJournal

_log = logging.getLogger("quantumgraph.cli")


def default_output_run(output: str) -> str:
    """``{output}/{UTC timestamp}``: a new RUN for every execution, so reruns never collide.

    The timestamp has microseconds (``20261204T141222.123456Z``): with whole seconds, two runs
    started in the same second -- two ``pipetask run -o u/x`` with different configs -- were
    given one run and mixed their outputs.
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{output}/{stamp}"


def split_collections(values: Sequence[str]) -> list[str]:
    """Accept ``-i a,b -i c`` as [a, b, c]."""
    out: list[str] = []
    for v in values:
        out.extend(part.strip() for part in v.split(",") if part.strip())
    return out


def build_graph(
    repo: str,
    inputs: Sequence[str],
    output: str | None,
    output_run: str | None,
    pipeline_path: str,
    where: str | None,
    *,
    existing_run_ok: bool = False,
    instrument: str | None = None,
    options: GraphOptions | None = None,
) -> QuantumGraph:
    """Open the repository read-only and build the graph for the given pipeline and query.

    ``existing_run_ok``: do not refuse an existing ``output_run`` here (``pipetask run`` reserves
    the run when execution starts and refuses it there, with the options that allow it).
    ``instrument`` (``--instrument``): the pipeline's instrument, replacing its file's; an
    instrument name or the class path recorded for one (LSST passes class paths).
    ``options``: the rerun and pipeline options of ``pipetask qgraph``/``run`` (see :class:`GraphOptions`).
    """
    from butler import Butler, check_collection_name

    from .._builder import build_quantum_graph
    from .._pipeline import Pipeline

    opts = options or GraphOptions()
    pipeline = opts.apply_to_pipeline(Pipeline.from_file(pipeline_path))
    with Butler(repo, writeable=False) as butler:
        if instrument is not None:
            pipeline.instrument = resolve_instrument(butler, instrument)
        collections = split_collections(inputs)
        chain: list[str] = []
        if output:
            existing = dict(butler.registry.query_collections())
            if existing.get(output) == "CHAINED":
                chain = list(butler.registry.get_chain(output))
        if opts.replace_run:
            if not chain:
                raise GraphBuildError(
                    f"--replace-run needs an existing output chain -o/--output (got {output!r})"
                )
            if butler.registry.get_collection_type(chain[0]) != "RUN":
                raise GraphBuildError(
                    f"--replace-run: the first child of {output!r}, {chain[0]!r}, is not a RUN"
                )
        if not collections and chain:
            # Like LSST: with no -i, an existing output chain supplies the inputs (without the run
            # --replace-run takes out of it).
            collections = chain[1:] if opts.replace_run else chain
        if output_run is None and opts.extend_run:
            # Like LSST: --extend-run with -o continues the run at the front of the output chain.
            if not chain:
                raise GraphBuildError(
                    "--extend-run needs --output-run, or -o naming an existing output chain"
                )
            output_run = chain[0]
        if output_run is None:
            if output is None:
                raise GraphBuildError("give -o/--output (a CHAINED collection) or --output-run")
            output_run = default_output_run(output)
        skip_in = split_collections(opts.skip_existing_in)
        if opts.skip_existing and output_run not in skip_in:
            skip_in.append(output_run)
        if opts.skip_existing and output_run not in dict(butler.registry.query_collections()):
            skip_in.remove(output_run)  # a new run holds nothing to skip
        # Names become directories (datastore, submit directories): refuse escaping ones here,
        # before a graph naming them is built or saved.
        for name in (output, output_run):
            if name is not None:
                check_collection_name(name)
        return build_quantum_graph(
            butler,
            pipeline,
            input_collections=collections,
            output_run=output_run,
            output=output,
            where=where,
            existing_run_ok=existing_run_ok,
            skip_existing_in=skip_in,
        )


def resolve_instrument(butler: Butler, given: str) -> str:
    """The name of the repository's instrument ``given`` names, or by whose class path it is known."""
    records = butler.registry.fetch_dimension_records("instrument")
    for record in records:
        if given in (record["name"], record.get("class_name")):
            return str(record["name"])
    known = ", ".join(f"{r['name']} ({r.get('class_name') or 'no class'})" for r in records) or "none"
    raise GraphBuildError(
        f"--instrument {given}: no such instrument in the repository (its instruments: {known})"
    )


def show_graph(graph: QuantumGraph, what: str, out: TextIO | None = None) -> None:
    """Print a graph summary (quanta per task) or one line per quantum (to ``out``, default stdout).

    ``sys.stdout`` is looked up at call time, not bound as a default when this module is
    imported, so output still goes where the caller redirected it (click's CliRunner, say).
    """
    if out is None:
        out = sys.stdout
    if what == "summary":
        by_task = graph.quanta_by_task()
        width = max([len(label) for label in by_task] + [4])
        print(f"{'task':<{width}}  quanta", file=out)
        for label, quanta in by_task.items():
            print(f"{label:<{width}}  {len(quanta)}", file=out)
        print(f"{'total':<{width}}  {len(graph)}", file=out)
        h = graph.header
        print(
            f"output run: {h.output_run}" + (f"   output collection: {h.output}" if h.output else ""),
            file=out,
        )
    elif what == "quanta":
        for q in graph.quanta:
            print(f"{q.id}  {q.task_label}  {q.data_id}", file=out)
    else:
        raise ValueError(f"unknown --show value {what!r}; use summary or quanta")


def load_pipeline_graph(pipeline_spec: str, repo: str | None) -> PipelineGraph:
    """Load ``FILE.yaml[#SELECTION]`` and check it against a dimension universe (no graph built).

    The universe is the repository's when ``repo`` is given, else the built-in default one.
    """
    from butler import Butler, DimensionUniverse

    from .._pipeline import Pipeline
    from .._pipeline_graph import PipelineGraph

    pipeline = Pipeline.from_file(pipeline_spec)
    if repo is None:
        universe = DimensionUniverse.default()
    else:
        with Butler(repo, writeable=False) as butler:
            universe = butler.universe
    return PipelineGraph.build(pipeline, universe)


def write_text_file(path: str | Path, text: str) -> None:
    """Write a picture or YAML the user asked for; a bad path is their error (OSError, one line)."""
    Path(path).write_text(text)


def load_graph(path: str) -> QuantumGraph:
    from .._file import GraphReader

    with GraphReader(path) as reader:
        return reader.read_all()


def save_graph(graph: QuantumGraph, path: str | Path) -> int:
    from .._file import write_graph

    return write_graph(path, graph)


def run_graph(
    repo: str,
    graph: QuantumGraph,
    graph_path: str | None,
    jobs: int,
    progress: bool,
    *,
    options: GraphOptions | None = None,
    clobber_outputs: bool = False,
    init_only: bool = False,
    no_versions: bool = False,
    fail_fast: bool = False,
    timeout: float | None = None,
) -> tuple[int, int, int, MergeResult]:
    """Reserve the output run, execute locally, then merge; returns (succeeded, failed, pruned, merge).

    The run is reserved before any quantum runs (see :mod:`quantumgraph._reserve`): a run that
    already exists is refused unless ``options.extend_run`` or ``clobber_outputs`` says to reuse it.
    With ``init_only`` only the configs and packages are written and merged.
    """
    from butler import Butler
    from butler.progress import progress_bar

    from .._local_run import run_graph_locally
    from .._merge import transfer_from_graph
    from .._pipeline import add_task_search_path
    from .._reserve import reserve_output_run

    # A graph loaded with -g was built elsewhere: find its task modules where the build found them
    # (the laptop counterpart of the PYTHONPATH bps gives batch jobs).
    add_task_search_path(graph.header.metadata.get("python_path") or [])

    opts = options or GraphOptions()
    with Butler(repo) as butler:
        if opts.replace_run:
            replace_output_run(butler, graph.header.output, opts.prune_replaced)
        outputs = [ref for q in graph.quanta for refs in q.outputs.values() for ref in refs]
        reserve_output_run(
            butler,
            graph.header,
            outputs,
            extend_run=opts.extend_run,
            clobber_outputs=clobber_outputs,
            replace_unsuccessful=_skips_run(butler, opts, graph.header.output_run),
        )
    if init_only:
        graph = QuantumGraph(graph.header, [], graph.datastore_records)

    tmpdir = None
    if graph_path is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="pipetask-")
        graph_path = str(Path(tmpdir.name) / "graph.qgraph")
        save_graph(graph, graph_path)
    try:
        with progress_bar(len(graph), "Running quanta", enabled=progress) as bar:
            summary = run_graph_locally(
                graph,
                Path(repo),
                jobs=jobs,
                progress=bar,
                clobber_outputs=clobber_outputs,
                timeout=timeout,
                fail_fast=fail_fast,
                no_versions=no_versions,
            )
        with Butler(repo) as butler:
            result = transfer_from_graph(graph_path, butler, clobber_outputs=clobber_outputs)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    return len(summary.succeeded), len(summary.failed), len(summary.pruned) + len(summary.stopped), result


def _skips_run(butler: Any, options: GraphOptions, run: str) -> bool:
    """Whether the graph left out the quanta that succeeded in ``run`` (--skip-existing(-in))."""
    from butler import MissingCollectionError

    if options.skip_existing:
        return True
    try:
        return run in butler.registry.resolve_collections(split_collections(options.skip_existing_in))
    except MissingCollectionError:
        return False


def replace_output_run(butler: Any, output: str | None, prune: str | None) -> str:
    """``--replace-run``: take the first run out of the ``output`` chain; prune it if asked."""
    if output is None:
        raise GraphBuildError("--replace-run needs -o/--output, the chain whose first run is replaced")
    replaced: list[str] = []

    def drop_first(children: list[str]) -> list[str]:
        replaced[:] = children[:1]
        return children[1:]

    butler.registry.update_chain(output, drop_first)
    if not replaced:
        raise GraphBuildError(f"--replace-run: the output chain {output!r} is empty")
    run = replaced[0]
    if prune is not None:
        refs = [
            ref
            for dt in butler.registry.query_dataset_types()
            for ref in butler.registry.query_datasets(dt.name, [run])
        ]
        if prune == "unstore":
            n = butler.unstore_datasets(refs)
            _log.info("--prune-replaced unstore: deleted the files of %d dataset(s) of %s", n, run)
        else:
            butler.remove_datasets(refs)
            _log.info("--prune-replaced purge: deleted %d dataset(s) of %s", len(refs), run)
    return run


def pre_exec_init_qbb(repo: str, graph_path: str, *, no_versions: bool = False) -> int:
    """Write every task's init outputs (configs) and the run's packages; no registry access."""
    from .._execution import write_init_outputs
    from .._file import GraphReader
    from .._qbb import make_limited_butler

    with GraphReader(graph_path) as reader:
        header = reader.header
        butler = make_limited_butler(Path(repo), header, {})
        return write_init_outputs(header, butler, no_versions=no_versions)


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What ``pipetask run-qbb`` did: the quanta it was given, in order, and what became of each."""

    quanta: list[Quantum]
    outcome: ExecutionOutcome

    @property
    def done(self) -> int:
        return len(self.outcome.succeeded)

    @property
    def errors(self) -> list[str]:
        """Error lines in the order the quanta were given, as a job log reads best."""
        lines = [line for _, line in sorted({**self.outcome.failed, **self.outcome.pruned}.items())]
        return lines + [
            f"quantum {self.quanta[i].id} not run: --fail-fast stopped at the first failure"
            for i in self.outcome.stopped
        ]


# Set in the parent before forking run-qbb's worker processes (-j N); read by the workers.
_JOB_QUANTA: list[tuple[Quantum, dict[uuid.UUID, StoredFileInfo]]] = []
_JOB_SETUP: tuple[Path, GraphHeader, bool, float | None] | None = None
_JOB_WORKER: tuple[QuantumBackedButler, TaskFactory, WrittenJournal] | None = None


def _run_job_quantum(index: int) -> str | None:
    """Worker body for ``run-qbb -j N``: run quantum ``index`` with this process's own butler."""
    global _JOB_WORKER
    from .._execution import TaskFactory, try_execute_quantum
    from .._qbb import make_limited_butler
    from .._written import WrittenJournal

    assert _JOB_SETUP is not None
    repo, header, clobber, timeout = _JOB_SETUP
    if _JOB_WORKER is None:
        qbb = make_limited_butler(repo, header, {}, clobber_outputs=clobber)
        _JOB_WORKER = (qbb, TaskFactory(header.tasks), WrittenJournal(qbb.root, header.id_prefix))
    qbb, tasks, journal = _JOB_WORKER
    quantum, records = _JOB_QUANTA[index]
    qbb.add_records(records)
    return try_execute_quantum(tasks.get(quantum.task_label), quantum, qbb, timeout=timeout, journal=journal)


def run_qbb(
    repo: str,
    graph_path: str,
    node_ids: Sequence[str],
    job_local: Sequence[str] = (),
    *,
    clobber_outputs: bool = False,
    processes: int = 1,
    timeout: float | None = None,
    fail_fast: bool = False,
) -> JobOutcome:
    """Run the given quanta in the given order (all, in file order, when none given).

    A quantum that reads an output of a quantum that failed (or was skipped) earlier in this run
    is skipped, with an error line.  ``job_local`` dataset types: outputs of those types that a
    later quantum of this run reads are kept in memory for it and never written (see
    :mod:`quantumgraph._job_local`).  ``processes`` > 1 runs independent quanta at once on that
    many forked processes (not with ``job_local``: that memory is this process's).
    """
    global _JOB_QUANTA, _JOB_SETUP, _JOB_WORKER
    from .._execution import TaskFactory, execute_quanta, try_execute_quantum
    from .._file import GraphReader
    from .._job_local import JobLocalButler, JobLocalStore, plan_job_local
    from .._qbb import make_limited_butler
    from .._written import WrittenJournal

    with GraphReader(graph_path) as reader:
        header = reader.header
        unknown = [name for name in job_local if name not in header.dataset_types]
        if unknown:
            known = ", ".join(sorted(header.dataset_types))
            raise GraphBuildError(
                f"--job-local {', '.join(unknown)}: not a dataset type of {graph_path} (known: {known})"
            )
        if node_ids:
            try:  # repeatable and comma-separated (LSST's {qgraphNodeId} lists a cluster's ids so)
                ids = [uuid.UUID(n) for value in node_ids for n in value.split(",") if n.strip()]
            except ValueError as exc:
                raise GraphBuildError(f"--qgraph-node-id must be a UUID: {exc}") from None
        else:
            ids = reader.quantum_ids()
        read = [reader.read_quantum(qid) for qid in ids]
    quanta = [quantum for quantum, _ in read]
    if processes > 1 and job_local:
        _log.warning("-j %d ignored: --job-local keeps outputs in this process's memory", processes)
        processes = 1
    if processes > 1:
        _JOB_QUANTA, _JOB_SETUP, _JOB_WORKER = read, (Path(repo), header, clobber_outputs, timeout), None
        try:
            context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
                outcome = execute_quanta(
                    quanta, _run_job_quantum, pool=pool, in_flight=processes * 2, fail_fast=fail_fast
                )
        finally:
            _JOB_QUANTA, _JOB_SETUP = [], None
        return JobOutcome(quanta, outcome)
    store = JobLocalStore(plan_job_local(quanta, job_local)) if job_local else None
    tasks = TaskFactory(header.tasks)
    # One butler for the whole job (universe, datastore and its caches built once); each
    # quantum's input records are added to it as the quantum comes up.
    qbb = make_limited_butler(Path(repo), header, {}, clobber_outputs=clobber_outputs)
    butler: LimitedButler = qbb if store is None else JobLocalButler(qbb, store)
    journal = WrittenJournal(qbb.root, header.id_prefix)

    def run_one(i: int) -> str | None:
        quantum, records = read[i]
        qbb.add_records(records)
        return try_execute_quantum(
            tasks.get(quantum.task_label), quantum, butler, timeout=timeout, journal=journal
        )

    try:
        outcome = execute_quanta(quanta, run_one, fail_fast=fail_fast)
    finally:
        journal.close()
    if store is not None:
        _log.info("kept %d job-local dataset(s) in memory instead of the datastore", store.kept)
    return JobOutcome(quanta, outcome)


def write_job_summary(path: str | Path, job: JobOutcome | None, error: BaseException | None = None) -> None:
    """Write ``run-qbb --summary``'s JSON, in the shape of LSST's execution report.

    ``{"status", "exitCode", "exceptionInfo", "quantaReports": [{"status", "quantumId", "dataId",
    "taskLabel", "exitCode", "exceptionInfo"}]}``, statuses ``success``, ``failure`` and
    ``skipped`` (with its ``reason``); ``exceptionInfo`` is ``{"className", "message"}`` or null.
    ``error``: the job stopped before or outside its quanta (written too, so a failed job always
    leaves a summary).
    Written to a temporary name and renamed, like every file skybatch writes.
    """
    reports: list[dict[str, Any]] = []
    if job is not None:
        for i, quantum in enumerate(job.quanta):
            failure = job.outcome.failed.get(i)
            skipped = job.outcome.pruned.get(i)
            status = "failure" if failure else "skipped" if skipped else "success"
            report: dict[str, Any] = {
                "status": status,
                "quantumId": str(quantum.id),
                "dataId": dict(quantum.data_id),
                "taskLabel": quantum.task_label,
                "exitCode": None,
                "exceptionInfo": None
                if failure is None
                else {"className": "QuantumExecutionError", "message": failure},
            }
            if skipped is not None:
                report["reason"] = skipped
            reports.append(report)
    failed = error is not None or (job is not None and not job.outcome.ok)
    summary = {
        "status": "failure" if failed else "success",
        "exitCode": 1 if failed else 0,
        "exceptionInfo": None
        if error is None
        else {"className": type(error).__name__, "message": str(error)},
        "quantaReports": reports,
    }
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=2, default=str)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

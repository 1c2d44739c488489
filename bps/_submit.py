"""prepare and submit: config -> submit directory -> QuantumGraph -> WorkflowGraph -> plugin.

The submit directory (``submitPath``) holds everything about one run::

    bps_claim.txt          created exclusively first: the directory belongs to this run
    submit_config.yaml     the resolved config (placeholders substituted, paths absolute)
    <uniqProcName>.qgraph  the QuantumGraph every job reads
    workflow.json          the engine-neutral workflow (versioned JSON)
    run.json               the run record (id, plugin, outputs), once submitted
    ...                    whatever the plugin writes (Parsl: state.json, logs/, parsl/)
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ._exceptions import OutputRunTakenError, SubmitDirError
from ._runs import RUN_FILENAME, RunRecord, new_run_id, record_run
from .config._model import BpsConfig
from .wms._loader import load_wms_service_class
from .wms._service import BaseWmsService, WmsWorkflow

CONFIG_FILENAME = "submit_config.yaml"
#: Created exclusively when a run claims its submit directory (holds who claimed it, and when).
CLAIM_FILENAME = "bps_claim.txt"
_LOG = logging.getLogger(__name__)


@dataclass(slots=True)
class PreparedRun:
    """A submit directory with everything rendered, ready for :func:`submit_prepared`."""

    config: BpsConfig
    submit_dir: Path
    graph_path: Path
    service: BaseWmsService
    wms_workflow: WmsWorkflow
    timings: dict[str, float] = field(default_factory=dict)
    output_run: str = ""
    """The graph's output run (it wins over the config's outputRun); reserved at submit."""
    claim: _Claim | None = None
    """This prepare's claim on ``submit_dir``, released if the submit is refused."""

    @property
    def number_of_jobs(self) -> int:
        return len(self.wms_workflow.workflow)


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = time.perf_counter() - start
        _LOG.info("%s took %.3f s", stage, timings[stage])


def _escape(value: Any) -> Any:
    """Re-escape ``{``, ``}`` and ``$`` so the recorded config loads back to the same values."""
    if isinstance(value, str):
        return value.replace("$", "$$").replace("{", "{{").replace("}", "}}")
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value


def _write_config(config: BpsConfig, path: Path) -> None:
    sources = "\n".join(f"#   {p}" for p in config.files)
    header = (
        f"# Resolved bps submit config, written {config.timestamp}.\n"
        f"# Merged from the shipped defaults and, in order:\n{sources}\n"
    )
    text = yaml.safe_dump(_escape(dict(config.resolved)), sort_keys=False, default_flow_style=False)
    path.write_text(header + text, encoding="utf-8")


@dataclass(slots=True)
class _Claim:
    """What :func:`_claim_submit_dir` created, so a failed prepare removes exactly that."""

    path: Path
    created: list[Path]
    """Directories this process made, deepest last (the submit directory itself if it was new)."""

    def release_parents_only(self) -> None:
        for directory in reversed(self.created):
            with contextlib.suppress(OSError):
                directory.rmdir()

    def release(self) -> None:
        """Remove everything in the claimed directory and the directories this process created.

        The directory was empty or new when claimed, and the claim marker kept every other run
        out since, so whatever is inside was written by this prepare.  Parents made on the way
        are removed only while empty (another run may have started using them meanwhile).
        """
        if self.path in self.created:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            for child in self.path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        for directory in reversed(self.created):
            if directory != self.path:
                with contextlib.suppress(OSError):
                    directory.rmdir()


def _make_dirs(path: Path) -> list[Path]:
    """``mkdir -p`` that reports which directories it created, outermost first."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    created = []
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        except OSError as err:
            raise SubmitDirError(
                f"cannot create submit directory {path}: {err.strerror} ({directory})"
            ) from err
        created.append(directory)
    return created


def _claim_submit_dir(path: Path) -> _Claim:
    """Make ``path`` this run's submit directory, atomically, or refuse.

    The check and the claim are one step: the claim marker is created with ``O_CREAT | O_EXCL``,
    so of two processes claiming one directory at once exactly one succeeds.  A directory that
    exists must be empty (a run's directory, or anything else the operator keeps there, is never
    written into).
    """
    if path.exists() and not path.is_dir():
        raise SubmitDirError(f"submitPath {path} exists and is not a directory")
    created = _make_dirs(path)
    if path not in created:
        entries = sorted(p.name for p in path.iterdir())
        used = [
            name
            for name in (CLAIM_FILENAME, RUN_FILENAME, "workflow.json", CONFIG_FILENAME)
            if name in entries
        ]
        if used:
            raise SubmitDirError(
                f"submit directory {path} is already used by another run ({used[0]} exists); "
                "change outputRun or submitPath"
            )
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise SubmitDirError(
                f"submitPath {path} is not empty and holds no bps run ({shown}); "
                "give a new or empty directory"
            )
    claim = _Claim(path, created)
    try:
        fd = os.open(path / CLAIM_FILENAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        claim.created = [d for d in created if d != path]  # the winner owns the directory now
        claim.release_parents_only()
        raise SubmitDirError(
            f"submit directory {path} is already used by another run ({CLAIM_FILENAME} exists); "
            "change outputRun or submitPath"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        stream.write(f"claimed by pid {os.getpid()} on {socket.gethostname()} at {stamp}\n")
    return claim


def prepare(config: BpsConfig, *, progress: bool = False) -> PreparedRun:
    """Build the graph and workflow and let the plugin render it; nothing runs yet.

    The submit directory is claimed first; if anything later fails (a refused config, an empty
    graph, a plugin that rejects the site, Ctrl-C), what this call created is removed again, so
    the corrected retry can use the same directory.
    """
    service_class = load_wms_service_class(config.wms_service_class)  # fail before the slow part
    submit_dir = config.submit_path
    claim = _claim_submit_dir(submit_dir)
    try:
        prepared = _prepare_claimed(config, service_class, submit_dir, progress)
    except BaseException:
        claim.release()
        raise
    prepared.claim = claim
    return prepared


def _prepare_claimed(
    config: BpsConfig, service_class: type[BaseWmsService], submit_dir: Path, progress: bool
) -> PreparedRun:
    from ._graph import make_graph
    from .workflow._build import build_workflow
    from .workflow._io import DOT_FILENAME, WORKFLOW_FILENAME, write_dot, write_workflow

    _write_config(config, submit_dir / CONFIG_FILENAME)
    graph_path = submit_dir / f"{config.uniq_proc_name}.qgraph"
    timings: dict[str, float] = {}
    with _timed(timings, "QuantumGraph"):
        graph = make_graph(config, graph_path)
    output_run = graph.header.output_run
    try:
        with _timed(timings, "WorkflowGraph"):  # clustering included (also timed on its own)
            workflow = build_workflow(config, graph_path, graph, timings=timings)
    finally:
        close = getattr(graph, "close", None)
        if callable(close):
            close()
    with _timed(timings, "render"):
        write_workflow(submit_dir / WORKFLOW_FILENAME, workflow)
        if config.save_dot:
            write_dot(submit_dir / DOT_FILENAME, workflow)
        service = service_class(progress=progress)
        wms_workflow = service.prepare(config, workflow, submit_dir)
    _LOG.info("prepared %d jobs in %s", len(workflow), submit_dir)
    return PreparedRun(config, submit_dir, graph_path, service, wms_workflow, timings, output_run)


def submit_prepared(
    prepared: PreparedRun, on_recorded: Callable[[RunRecord], None] | None = None
) -> RunRecord:
    """Reserve the output run, record the run, then hand it to the plugin (which may run it).

    The output run is registered in the repository first; if it already exists (another submit or
    ``pipetask run`` holds it) the submit is refused with :class:`OutputRunTakenError` and the
    submit directory this prepare claimed is released.  ``prepare`` alone never changes the
    repository.

    ``on_recorded`` is called once the run id exists and before the plugin starts, so a CLI can
    print the id an operator needs for ``bps report`` while a foreground run is still going.
    """
    from ._graph import reserve_output_run

    config = prepared.config
    try:
        reserve_output_run(config, prepared.output_run)
    except OutputRunTakenError:
        # Refused before anything ran or was recorded: leave nothing that blocks a corrected retry.
        if prepared.claim is not None:
            prepared.claim.release()
        raise
    record = RunRecord(
        run_id=new_run_id(),
        submit_dir=str(prepared.submit_dir),
        wms_service_class=config.wms_service_class,
        wms_run_id=prepared.wms_workflow.run_id,
        submit_time=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        operator=config.operator,
        payload_name=config.payload.payload_name,
        butler_config=config.payload.butler_config,
        output=config.payload.output,
        output_run=config.payload.output_run,
        project=config.project,
        campaign=config.campaign,
    )
    record_run(record)
    if on_recorded is not None:
        on_recorded(record)
    wms_run_id = prepared.service.submit(prepared.wms_workflow)
    if wms_run_id != record.wms_run_id:
        record = replace(record, wms_run_id=wms_run_id)
        record_run(record)
    return record

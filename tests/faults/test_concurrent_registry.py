"""Many processes racing on one registry: every chain update lands, first registrations are idempotent.

Each worker is a real forked process with its own engine and connections, started together
behind a barrier so their transactions overlap, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import traceback
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from faults_util import script

from butler import DatasetType, DimensionUniverse
from butler.registry import Registry

WORKERS = 16


def _run_workers(fork: BaseContext, target: Any, args: tuple[Any, ...]) -> list[str]:
    """Start WORKERS processes on ``target(i, barrier, errors, *args)``; returns their error reports."""
    barrier = fork.Barrier(WORKERS)
    errors = fork.Queue()
    procs = [fork.Process(target=target, args=(i, barrier, errors, *args)) for i in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    reports = []
    while not errors.empty():
        reports.append(errors.get())
    reports += [f"worker {i} exited with {p.exitcode}" for i, p in enumerate(procs) if p.exitcode != 0]
    return reports


def _merge_like(i: int, barrier: Any, errors: Any, db_url: str) -> None:
    """What a merge does to the registry: first registration of a type, a run, then prepend it."""
    try:
        reg = Registry.open(db_url)
        try:
            dt = DatasetType.build("calexp", ("instrument", "detector"), "StructuredDataDict", reg.universe)
            barrier.wait(60)
            with reg.transaction():
                reg.register_dataset_type(dt)
                reg.register_run(f"u/x/run{i:02d}")
                reg.register_chain("u/x", [f"u/x/run{i:02d}"], prepend=True)
        finally:
            reg.close()
    except BaseException:
        errors.put(f"worker {i}: {traceback.format_exc()}")
        raise


def test_concurrent_prepends_keep_every_run(db_url: str, fork: BaseContext) -> None:
    Registry.create(db_url, DimensionUniverse.default()).close()
    reports = _run_workers(fork, _merge_like, (db_url,))
    assert reports == []
    reg = Registry.open(db_url)
    try:
        chain = reg.get_chain("u/x")
        assert sorted(chain) == [f"u/x/run{i:02d}" for i in range(WORKERS)]
        assert [t.name for t in reg.query_dataset_types()] == ["calexp"]
    finally:
        reg.close()


def _first_registrations(i: int, barrier: Any, errors: Any, db_url: str) -> None:
    """Every worker registers the same new dataset type, run and chain, each in its own transaction."""
    try:
        reg = Registry.open(db_url)
        try:
            dt = DatasetType.build("postISR", ("instrument", "detector"), "StructuredDataDict", reg.universe)
            barrier.wait(60)
            reg.register_dataset_type(dt)
            reg.register_run("u/shared/run")
            reg.register_chain("u/shared", ["u/shared/run"], prepend=True)
        finally:
            reg.close()
    except BaseException:
        errors.put(f"worker {i}: {traceback.format_exc()}")
        raise


def test_concurrent_first_registration_is_idempotent(db_url: str, fork: BaseContext) -> None:
    Registry.create(db_url, DimensionUniverse.default()).close()
    reports = _run_workers(fork, _first_registrations, (db_url,))
    assert reports == []
    reg = Registry.open(db_url)
    try:
        assert [t.name for t in reg.query_dataset_types()] == ["postISR"]
        assert reg.get_chain("u/shared") == ["u/shared/run"]
        assert sorted(reg.query_collections()) == [("u/shared", "CHAINED"), ("u/shared/run", "RUN")]
    finally:
        reg.close()


def test_concurrent_merges_into_one_chain(
    db_url: str, demo_repo_on: Any, pipeline_file: Path, tmp_path: Path
) -> None:
    """Real ``butler transfer-from-graph`` processes, one per run, all into the output chain ``u/x``."""
    from click.testing import CliRunner

    from quantumgraph.cli import main as pipetask_main

    repo = demo_repo_on(db_url)
    graphs = []
    for i in range(10):
        graph = tmp_path / f"g{i}.qgraph"
        args = ["qgraph", "-b", str(repo), "-i", "DemoCam/defaults", "-o", "u/x", "--output-run"]
        args += [f"u/x/run{i}", "-p", str(pipeline_file), "--save-qgraph", str(graph)]
        result = CliRunner().invoke(pipetask_main, args)
        assert result.exit_code == 0, result.output
        graphs.append(graph)
    butler = script("butler")
    procs = [
        subprocess.Popen(
            [butler, "transfer-from-graph", str(g), str(repo), "--update-output-chain"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for g in graphs
    ]
    # communicate() reads both pipes to the end and closes them (wait() then read() leaks them).
    errors = [p.communicate(timeout=240)[1] for p in procs]
    outcomes = [(p.returncode, err) for p, err in zip(procs, errors, strict=True)]
    assert [(code, err) for code, err in outcomes if code != 0] == []
    from butler import Butler

    with Butler(repo) as b:
        chain = b.registry.get_chain("u/x")
    assert sorted(c for c in chain if c.startswith("u/x/")) == sorted(f"u/x/run{i}" for i in range(10))
    assert chain.count("DemoCam/defaults") == 1

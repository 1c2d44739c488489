"""Many processes putting at once, on SQLite and PostgreSQL: every put lands once, none is mixed.

Real forked processes released together behind a barrier, each with its own Butler.
"""

from __future__ import annotations

import traceback
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from butler import Butler, ConflictingDefinitionError

WORKERS = 8
PUTS = 15


def _setup(root: Path, db_url: str) -> None:
    with Butler.create(root, db_url=db_url) as butler:
        butler.registry.insert_dimension_data(
            {
                "instrument": [{"name": "Cam"}],
                "detector": [{"instrument": "Cam", "id": d} for d in range(WORKERS * PUTS)],
            }
        )
        butler.register_dataset_type("calexp", ("instrument", "detector"), "StructuredDataDict")


def _start(fork: BaseContext, target: Any, *args: Any) -> tuple[list[str], list[Any]]:
    barrier = fork.Barrier(WORKERS)
    queue = fork.Queue()
    procs = [fork.Process(target=target, args=(i, barrier, queue, *args)) for i in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    results = []
    while not queue.empty():
        results.append(queue.get())
    failed = [f"worker {i} exited with {p.exitcode}" for i, p in enumerate(procs) if p.exitcode != 0]
    return failed, results


def _distinct_puts(i: int, barrier: Any, queue: Any, root: str) -> None:
    try:
        with Butler(root, run="u/puts") as butler:
            barrier.wait(60)
            for n in range(PUTS):
                d = i * PUTS + n
                butler.put({"writer": i, "detector": d}, "calexp", instrument="Cam", detector=d)
    except BaseException:
        queue.put(traceback.format_exc())
        raise


def test_concurrent_puts_all_land_once(db_url: str, fork: BaseContext, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _setup(root, db_url)
    failed, errors = _start(fork, _distinct_puts, str(root))
    assert (failed, errors) == ([], [])
    with Butler(root, collections="u/puts") as butler:
        refs = butler.query_datasets("calexp")
        assert sorted(r.data_id["detector"] for r in refs) == list(range(WORKERS * PUTS))
        for ref in refs:
            d = ref.data_id["detector"]
            assert butler.get(ref) == {"writer": d // PUTS, "detector": d}


def _same_dataset(i: int, barrier: Any, queue: Any, root: str) -> None:
    try:
        with Butler(root, run="u/same") as butler:
            barrier.wait(60)
            try:
                butler.put({"writer": i, "payload": [i] * (10 + i)}, "calexp", instrument="Cam", detector=0)
                queue.put(("won", i))
            except ConflictingDefinitionError as err:
                queue.put(("refused", str(err)))
    except BaseException:
        queue.put(("crashed", traceback.format_exc()))
        raise


def test_concurrent_puts_of_one_dataset_one_wins_nothing_mixed(
    db_url: str, fork: BaseContext, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    _setup(root, db_url)
    failed, results = _start(fork, _same_dataset, str(root))
    assert failed == []
    winners = [r[1] for r in results if r[0] == "won"]
    assert len(winners) == 1, results
    assert sorted(r[0] for r in results) == ["refused"] * (WORKERS - 1) + ["won"]
    with Butler(root, collections="u/same") as butler:
        (ref,) = butler.query_datasets("calexp")
        (winner,) = winners
        assert butler.get(ref) == {"writer": winner, "payload": [winner] * (10 + winner)}
        files = list((butler.datastore.root / "u" / "same").rglob("*"))
        assert [f.name for f in files if f.is_file()] == [
            Path(butler.get_records([ref.id])[ref.id].path).name
        ]

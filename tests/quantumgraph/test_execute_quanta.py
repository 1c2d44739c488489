"""The one execution loop (``execute_quanta``) that ``pipetask run`` and ``pipetask run-qbb`` share:
order, waiting on producers and pruning, run here and on a pool."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from butler import DatasetRef, DatasetType, DimensionUniverse
from quantumgraph import Quantum
from quantumgraph._execution import execute_quanta

UNIVERSE = DimensionUniverse.default()
DT = DatasetType.build("thing", ("exposure", "detector"), "StructuredDataDict", UNIVERSE)
DATA_ID = UNIVERSE.data_id(DT.dimensions, {"instrument": "HSC", "exposure": 1, "detector": 2})


def ref() -> DatasetRef:
    return DatasetRef(uuid.uuid4(), DT, DATA_ID, "run")


def chain_and_side() -> list[Quantum]:
    """0 -> 1 -> 2 and 3 (independent, reading an input nobody here produces)."""
    a, b, c = ref(), ref(), ref()
    return [
        Quantum(uuid.uuid4(), "first", DATA_ID, {"in": [ref()]}, {"out": [a]}),
        Quantum(uuid.uuid4(), "second", DATA_ID, {"in": [a]}, {"out": [b]}),
        Quantum(uuid.uuid4(), "third", DATA_ID, {"in": [b]}, {"out": [c]}),
        Quantum(uuid.uuid4(), "side", DATA_ID, {"in": [ref()]}, {"out": [ref()]}),
    ]


@pytest.mark.parametrize("pooled", [False, True], ids=["in-process", "pool"])
def test_a_failure_prunes_only_what_reads_its_outputs(pooled: bool) -> None:
    quanta = chain_and_side()
    ran: list[int] = []
    lock = threading.Lock()

    def run_one(i: int) -> str | None:
        with lock:
            ran.append(i)
        return "boom" if i == 0 else None

    finished: list[tuple[int, str | None]] = []
    if pooled:
        with ThreadPoolExecutor(2) as pool:
            outcome = execute_quanta(
                quanta, run_one, pool=pool, in_flight=4, on_done=lambda i, e: finished.append((i, e))
            )
    else:
        outcome = execute_quanta(quanta, run_one, on_done=lambda i, e: finished.append((i, e)))
    assert sorted(ran) == [0, 3]
    assert outcome.succeeded == [3]
    assert outcome.failed == {0: "boom"}
    assert sorted(outcome.pruned) == [1, 2]
    assert outcome.pruned[1].startswith(f"quantum {quanta[1].id} (second {{")
    assert "thing" in outcome.pruned[1] and "failed in this job" in outcome.pruned[1]
    assert sorted(finished, key=lambda f: f[0]) == [(0, "boom"), (3, None)]
    assert not outcome.ok


def test_in_process_runs_in_the_given_order() -> None:
    quanta = chain_and_side()
    ran: list[int] = []

    def run_one(i: int) -> None:
        ran.append(i)

    outcome = execute_quanta(quanta, run_one)
    assert ran == [0, 1, 2, 3]
    assert outcome.ok and outcome.succeeded == [0, 1, 2, 3]


def test_a_consumer_listed_before_its_producer_does_not_wait_for_it() -> None:
    # As in a batch job given quanta out of order: the consumer runs first (its input must exist).
    quanta = chain_and_side()
    reordered = [quanta[1], quanta[0]]
    ran: list[str] = []

    def run_one(i: int) -> None:
        ran.append(reordered[i].task_label)

    assert execute_quanta(reordered, run_one).ok
    assert ran == ["second", "first"]


def test_the_pool_waits_for_producers() -> None:
    quanta = chain_and_side()
    done: set[int] = set()
    lock = threading.Lock()
    early: list[int] = []

    def run_one(i: int) -> None:
        with lock:
            if i in (1, 2) and i - 1 not in done:
                early.append(i)
            done.add(i)

    with ThreadPoolExecutor(3) as pool:
        outcome = execute_quanta(quanta, run_one, pool=pool, in_flight=8)
    assert early == []
    assert sorted(outcome.succeeded) == [0, 1, 2, 3]

"""Clustering functions named by dotted path (``clusterAlgorithm: bps_cluster_funcs.<name>``) in tests."""

from __future__ import annotations

from collections.abc import Iterator

from bps.config import BpsConfig
from bps.workflow import QuantumCluster, QuantumGraphSummary


def per_exposure(summary: QuantumGraphSummary, config: BpsConfig) -> list[QuantumCluster]:
    """Every quantum of one exposure (isr, calibrate and gather) in one job, listed backwards.

    Listing them backwards checks that bps reorders a cluster's quanta into graph order.
    """
    del config
    groups: dict[object, list] = {}
    for qid in summary.quantum_ids:
        groups.setdefault(summary.data_ids[qid]["exposure"], []).append(qid)
    return [QuantumCluster(f"exp{e}", "exposure", tuple(reversed(ids))) for e, ids in groups.items()]


def isr_pairs_as_tuples(summary: QuantumGraphSummary, config: BpsConfig) -> Iterator[tuple[str, str, list]]:
    """Only isr quanta, two by two, as plain (name, label, ids) tuples; the rest is left to bps."""
    del config
    isr = [qid for qid in summary.quantum_ids if summary.labels[qid] == "isr"]
    for i in range(0, len(isr), 2):
        yield ("pair", "isrPair", isr[i : i + 2])


def twice(summary: QuantumGraphSummary, config: BpsConfig) -> list[QuantumCluster]:
    """A broken function: the first quantum is in two clusters."""
    del config
    first = summary.quantum_ids[0]
    return [QuantumCluster("a", "a", (first,)), QuantumCluster("b", "b", (first,))]


def explodes(summary: QuantumGraphSummary, config: BpsConfig) -> list[QuantumCluster]:
    raise RuntimeError("boom")


NOT_A_FUNCTION = 3

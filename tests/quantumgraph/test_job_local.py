"""``pipetask run-qbb`` with several quanta per job and ``--job-local``: intermediates kept in memory.

What a clustered bps job runs: ``isr`` then ``calibrate`` of one (exposure, detector) in one
process, ``postISR`` handed over in memory and never written, ``calexp`` written as usual.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from butler import Butler
from quantumgraph import GraphReader
from quantumgraph.demo.repo import raw_value

OUTPUT = "u/tester/demo"  # what the saved_graph fixture writes to
RUN = f"{OUTPUT}/run1"


def calexp_value(e: int, d: int) -> float:
    return (raw_value(e, d) + 1.0) * 2.0


def read(butler: Butler, dataset_type: str, **kwargs: Any) -> dict[str, Any]:
    value = butler.get(dataset_type, **kwargs)
    assert isinstance(value, dict)
    return value


def quanta_by_task(graph: Path) -> dict[str, dict[tuple[int, ...], uuid.UUID]]:
    """Task label -> (exposure, detector) or (exposure,) -> quantum ID."""
    out: dict[str, dict[tuple[int, ...], uuid.UUID]] = {}
    with GraphReader(graph) as reader:
        for qid, label, data_id in reader.iter_quantum_summaries():
            key = tuple(int(data_id[d]) for d in ("exposure", "detector") if d in data_id.dimensions)
            out.setdefault(label, {})[key] = qid
    return out


def files_of(repo: Path, dataset_type: str) -> list[Path]:
    return sorted((repo / RUN / dataset_type).glob("*"))


def test_job_local_intermediates_are_not_written(
    demo_repo: Path,
    saved_graph: Path,
    pipetask,
    butler_cli,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
) -> None:
    quanta = quanta_by_task(saved_graph)
    assert pipetask("pre-exec-init-qbb", demo_repo, saved_graph).exit_code == 0
    for key, isr in quanta["isr"].items():
        cal = quanta["calibrate"][key]
        result = pipetask(
            "run-qbb", demo_repo, saved_graph, "--qgraph-node-id", isr, "--qgraph-node-id", cal,
            "--job-local", "postISR",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    assert files_of(demo_repo, "postISR") == []
    assert len(files_of(demo_repo, "calexp")) == len(exposures) * len(detectors)
    for gather in quanta["gather"].values():
        assert pipetask("run-qbb", demo_repo, saved_graph, "--qgraph-node-id", gather).exit_code == 0

    merged = butler_cli("transfer-from-graph", saved_graph, demo_repo)
    assert merged.exit_code == 0, merged.output
    n = len(exposures) * len(detectors)
    # configs and packages; postISR and calexp per chip and a summary per exposure, each quantum
    # with its log and metadata; the job-local postISR are never written
    predicted = 4 + 3 * (2 * n + len(exposures))
    assert f"{predicted - n} of {predicted} predicted outputs found" in merged.output
    assert f"; {n} missing" in merged.output  # the postISRs: missing, not an error
    with Butler(demo_repo, collections=[OUTPUT]) as butler:
        assert butler.find_dataset("postISR", instrument="DemoCam", exposure=1, detector=0) is None
        for e in exposures:
            values = [calexp_value(e, d) for d in detectors]
            for d in detectors:
                calexp = read(butler, "calexp", instrument="DemoCam", exposure=e, detector=d)
                assert calexp == {"exposure": e, "detector": d, "value": calexp_value(e, d)}
            summary = read(butler, "summary", instrument="DemoCam", exposure=e)
            assert summary == {
                "n_detectors": len(detectors),
                "sum": sum(values),
                "mean": sum(values) / len(values),
            }


def test_job_local_outputs_nobody_in_the_job_reads_are_written(
    demo_repo: Path, saved_graph: Path, pipetask
) -> None:
    isr = quanta_by_task(saved_graph)["isr"][(1, 0)]
    result = pipetask("run-qbb", demo_repo, saved_graph, "--qgraph-node-id", isr, "--job-local", "postISR")
    assert result.exit_code == 0, result.output
    assert [p.name.split(".")[0] for p in files_of(demo_repo, "postISR")] == ["postISR_DemoCam_0_1"]


def test_unknown_job_local_type(demo_repo: Path, saved_graph: Path, pipetask) -> None:
    result = pipetask("run-qbb", demo_repo, saved_graph, "--job-local", "postISRR")
    assert result.exit_code != 0
    assert "--job-local postISRR: not a dataset type of" in result.output


def test_quanta_after_a_failed_one_in_the_same_job_are_skipped(
    tmp_path: Path, demo_repo: Path, pipeline_file: Path, pipetask
) -> None:
    failing = tmp_path / "failing.yaml"
    failing.write_text(
        pipeline_file.read_text().replace("scale: 2.0", "scale: 2.0\n      fail_detectors: [1]")
    )
    graph = tmp_path / "failing.qgraph"
    built = pipetask(
        "qgraph", "-b", demo_repo, "-i", "DemoCam/defaults", "--output-run", RUN, "-p", failing,
        "--save-qgraph", graph,
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    quanta = quanta_by_task(graph)
    ids = [quanta["isr"][(1, 1)], quanta["calibrate"][(1, 1)], quanta["gather"][(1,)]]
    args = [a for qid in ids for a in ("--qgraph-node-id", str(qid))]
    result = pipetask("run-qbb", demo_repo, graph, *args, "--job-local", "postISR")
    assert result.exit_code == 1
    assert "calibration failed on detector 1" in result.output
    assert f"quantum {ids[2]} (gather" in result.output and "not run: its input calexp" in result.output
    assert files_of(demo_repo, "summary") == []

"""``pipetask run`` end to end: the numbers a user reads back through the Butler afterwards.

The demo pipeline's outputs are predictable: raw (e, d) = 100 e + d, postISR = raw + offset,
calexp = postISR * scale, and the per-exposure summary is the count, sum and mean of the calexps.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from butler import Butler
from quantumgraph.demo.repo import DEFAULTS, raw_value

OUTPUT = "u/tester/demo"
Invoke = Callable[..., Result]
RunScript = Callable[..., subprocess.CompletedProcess[str]]
TIMESTAMPED_RUN = re.compile(rf"{re.escape(OUTPUT)}/\d{{8}}T\d{{6}}\.\d{{6}}Z")


def read(butler: Butler, dataset_type: str, **kwargs: Any) -> dict[str, Any]:
    """``butler.get`` of one of the demo's dict-valued datasets."""
    value = butler.get(dataset_type, **kwargs)
    assert isinstance(value, dict)
    return value


def calexp_value(e: int, d: int, offset: float = 1.0, scale: float = 2.0) -> float:
    return (raw_value(e, d) + offset) * scale


def check_demo_outputs(
    repo: Path,
    collection: str,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
    run: str,
    offset: float = 1.0,
) -> None:
    """Every output of the demo pipeline is found through ``collection``, in ``run``, with its value."""
    with Butler(repo, collections=[collection]) as butler:
        for e in exposures:
            for d in detectors:
                post_isr = read(butler, "postISR", instrument="DemoCam", exposure=e, detector=d)
                assert post_isr == {"exposure": e, "detector": d, "value": raw_value(e, d) + offset}
                calexp = read(butler, "calexp", instrument="DemoCam", exposure=e, detector=d)
                assert calexp["value"] == calexp_value(e, d, offset)
                ref = butler.find_dataset("calexp", instrument="DemoCam", exposure=e, detector=d)
                assert ref is not None and ref.run == run
            values = [calexp_value(e, d, offset) for d in detectors]
            summary = read(butler, "summary", instrument="DemoCam", exposure=e)
            assert summary == {
                "n_detectors": len(detectors),
                "sum": sum(values),
                "mean": sum(values) / len(values),
            }
        assert read(butler, "isr_config") == {"offset": offset, "connections": {}}
        assert read(butler, "calibrate_config") == {"scale": 2.0, "fail_detectors": [], "connections": {}}
        assert read(butler, "gather_config") == {"connections": {}}


@pytest.mark.parametrize("jobs", [1, 2])
def test_pipetask_run_computes_every_output(
    demo_repo: Path,
    pipeline_file: Path,
    pipetask: Invoke,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
    jobs: int,
) -> None:
    result = pipetask("run", "-b", demo_repo, "-i", DEFAULTS, "-o", OUTPUT, "-p", pipeline_file, "-j", jobs)
    assert result.exit_code == 0, result.output
    n_quanta = 2 * len(exposures) * len(detectors) + len(exposures)
    # per quantum its output, log and metadata; the three task configs and the run's packages
    n_outputs = 3 * n_quanta + 4
    assert (
        f"{n_quanta} quanta succeeded, 0 failed, 0 not run because of upstream failures; "
        f"{n_outputs} outputs registered in {OUTPUT}" in result.stdout
    )
    with Butler(demo_repo) as butler:
        run, inputs = butler.registry.get_chain(OUTPUT)
        assert inputs == DEFAULTS
        assert TIMESTAMPED_RUN.fullmatch(run), run
        assert butler.registry.get_collection_type(run) == "RUN"
        registered = [
            ref
            for name in ("postISR", "calexp", "summary", "isr_config", "calibrate_config", "gather_config")
            for ref in butler.query_datasets(name, [run])
        ]
        provenance = [
            ref
            for label in ("isr", "calibrate", "gather")
            for kind in ("log", "metadata")
            for ref in butler.query_datasets(f"{label}_{kind}", [run])
        ]
        assert len(registered) + len(provenance) + len(butler.query_datasets("packages", [run])) == n_outputs
        assert len(provenance) == 2 * n_quanta
        # The inputs are still there, reachable through the output chain.
        assert (
            read(butler, "raw", instrument="DemoCam", exposure=1, detector=0, collections=[OUTPUT])["value"]
            == 100.0
        )
    check_demo_outputs(demo_repo, OUTPUT, exposures, detectors, run)


def test_pipetask_run_as_a_real_command(
    demo_repo: Path,
    pipeline_file: Path,
    run_script: RunScript,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
) -> None:
    run = f"{OUTPUT}/subprocess"
    proc = run_script(
        "pipetask",
        "run",
        "-b",
        demo_repo,
        "-i",
        DEFAULTS,
        "-o",
        OUTPUT,
        "--output-run",
        run,
        "-p",
        pipeline_file,
        "-j",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 failed" in proc.stdout
    with Butler(demo_repo) as butler:
        assert butler.registry.get_chain(OUTPUT) == [run, DEFAULTS]
    check_demo_outputs(demo_repo, OUTPUT, exposures, detectors, run)


def test_pipetask_run_accepts_the_butler_yaml_path(
    demo_repo: Path,
    pipeline_file: Path,
    pipetask: Invoke,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
) -> None:
    run = f"{OUTPUT}/by-config-file"
    config = demo_repo / "butler.yaml"
    result = pipetask(
        "run", "-b", config, "-i", DEFAULTS, "-o", OUTPUT, "--output-run", run, "-p", pipeline_file
    )
    assert result.exit_code == 0, result.output
    check_demo_outputs(demo_repo, OUTPUT, exposures, detectors, run)


def test_pipetask_run_of_a_saved_graph(
    demo_repo: Path,
    saved_graph: Path,
    pipetask: Invoke,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
) -> None:
    """The laptop workflow of ``pipetask --help``: build and save, look, then run the file."""
    result = pipetask("run", "-b", demo_repo, "--qgraph", saved_graph, "-j", "2")
    assert result.exit_code == 0, result.output
    check_demo_outputs(demo_repo, OUTPUT, exposures, detectors, f"{OUTPUT}/run1")
    with Butler(demo_repo) as butler:
        assert butler.registry.get_chain(OUTPUT) == [f"{OUTPUT}/run1", DEFAULTS]


def test_second_run_into_the_same_chain_prepends_a_new_run(
    tmp_path: Path,
    demo_repo: Path,
    pipeline_file: Path,
    pipetask: Invoke,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
) -> None:
    first = pipetask("run", "-b", demo_repo, "-i", DEFAULTS, "-o", OUTPUT, "-p", pipeline_file)
    assert first.exit_code == 0, first.output
    with Butler(demo_repo) as butler:
        (first_run, _inputs) = butler.registry.get_chain(OUTPUT)

    # Rerun exposure 1 with a different offset; no -i: the existing chain supplies the inputs.
    # (An explicit run name: two default, timestamped names in the same second would collide.)
    second_run = f"{OUTPUT}/second"
    pipeline = tmp_path / "offset11.yaml"
    pipeline.write_text(
        textwrap.dedent(
            """\
            description: the demo pipeline with a larger ISR offset
            tasks:
              isr:
                class: quantumgraph.demo.tasks.Isr
                config:
                  offset: 11.0
              calibrate: quantumgraph.demo.tasks.Calibrate
              gather: quantumgraph.demo.tasks.Gather
            """
        )
    )
    second = pipetask(
        "run", "-b", demo_repo, "-o", OUTPUT, "--output-run", second_run, "-p", pipeline, "-d", "exposure = 1"
    )
    assert second.exit_code == 0, second.output

    with Butler(demo_repo, collections=[OUTPUT]) as butler:
        assert butler.registry.get_chain(OUTPUT) == [second_run, first_run, DEFAULTS]
        for d in detectors:
            newest = butler.find_dataset("calexp", instrument="DemoCam", exposure=1, detector=d)
            assert newest is not None and newest.run == second_run
            newest_value = read(butler, "calexp", instrument="DemoCam", exposure=1, detector=d)["value"]
            assert newest_value == calexp_value(1, d, offset=11.0)
            older = read(
                butler, "calexp", collections=[first_run], instrument="DemoCam", exposure=1, detector=d
            )
            assert older["value"] == calexp_value(1, d)
            # Exposures the second run did not touch still come from the first.
            for e in exposures[1:]:
                ref = butler.find_dataset("calexp", instrument="DemoCam", exposure=e, detector=d)
                assert ref is not None and ref.run == first_run
        assert read(butler, "isr_config")["offset"] == 11.0


@pytest.mark.parametrize("jobs", [1, 2])
def test_failing_quantum_skips_only_what_depends_on_it(
    tmp_path: Path,
    demo_repo: Path,
    pipetask: Invoke,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
    jobs: int,
) -> None:
    pipeline = tmp_path / "failing.yaml"
    pipeline.write_text(
        textwrap.dedent(
            """\
            description: calibrate fails on detector 1
            tasks:
              isr: quantumgraph.demo.tasks.Isr
              calibrate:
                class: quantumgraph.demo.tasks.Calibrate
                config:
                  fail_detectors: [1]
              gather: quantumgraph.demo.tasks.Gather
            """
        )
    )
    output = "u/tester/failing"
    result = pipetask("run", "-b", demo_repo, "-i", DEFAULTS, "-o", output, "-p", pipeline, "-j", jobs)

    assert result.exit_code == 1, result.output
    n_e, n_d = len(exposures), len(detectors)
    succeeded = n_e * n_d + n_e * (n_d - 1)  # every isr, and calibrate on the other detectors
    # every quantum that ran writes its log and metadata, failed or not; configs and packages
    registered = 3 * succeeded + 2 * n_e + 4
    assert (
        f"{succeeded} quanta succeeded, {n_e} failed, {n_e} not run because of upstream failures; "
        f"{registered} outputs registered in {output}" in result.stdout
    )
    for e in exposures:
        assert f"calibrate {{instrument=DemoCam, detector=1, exposure={e}}}" in result.stderr
    assert "calibration failed on detector 1 (fail_detectors)" in result.stderr
    assert "Traceback" not in result.output

    with Butler(demo_repo, collections=[output]) as butler:
        (run, inputs) = butler.registry.get_chain(output)
        assert inputs == DEFAULTS
        for e in exposures:
            for d in detectors:
                post_isr = read(butler, "postISR", instrument="DemoCam", exposure=e, detector=d)
                assert post_isr["value"] == raw_value(e, d) + 1.0
            calexp = read(butler, "calexp", instrument="DemoCam", exposure=e, detector=0)
            assert calexp["value"] == calexp_value(e, 0)
            assert butler.find_dataset("calexp", instrument="DemoCam", exposure=e, detector=1) is None
            assert butler.find_dataset("summary", instrument="DemoCam", exposure=e) is None
        assert read(butler, "calibrate_config")["fail_detectors"] == [1]
    # The gather quanta never ran: nothing was written for them, registered or not.
    assert not (demo_repo / run / "summary").exists()
    assert len(list((demo_repo / run / "calexp").iterdir())) == n_e * (n_d - 1)  # none for detector 1

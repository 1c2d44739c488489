"""The ``pipetask`` command line as a user meets it: what ``qgraph --show`` prints, and how bad input
(corrupted graph files, broken pipeline YAML, bad data queries) is reported: exit status 1 and one
``error:`` line on stderr that names the file and the problem, never a traceback.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from butler import Butler
from quantumgraph import GraphReader
from quantumgraph.cli import main as pipetask_main
from quantumgraph.demo.repo import DEFAULTS, RAW_RUN, make_demo_repo

Invoke = Callable[..., Result]
RunScript = Callable[..., subprocess.CompletedProcess[str]]

OUTPUT = "u/tester/demo"
OUTPUT_RUN = "u/tester/demo/run1"


@pytest.fixture(scope="module")
def shared_repo(
    tmp_path_factory: pytest.TempPathFactory, exposures: tuple[int, ...], detectors: tuple[int, ...]
) -> Path:
    """One repository for the tests here: none of them may change it (they only build or fail)."""
    path = tmp_path_factory.mktemp("cli") / "repo"
    make_demo_repo(path, len(exposures), len(detectors)).close()
    return path


@pytest.fixture(scope="module")
def graph_bytes(tmp_path_factory: pytest.TempPathFactory, shared_repo: Path, pipeline_file: Path) -> bytes:
    """The bytes of a good graph file over ``shared_repo``, saved by ``pipetask qgraph``."""
    path = tmp_path_factory.mktemp("graph") / "good.qgraph"
    args = ["qgraph", "-b", shared_repo, "-i", DEFAULTS, "-o", OUTPUT, "--output-run", OUTPUT_RUN]
    result = CliRunner().invoke(
        pipetask_main, [str(a) for a in [*args, "-p", pipeline_file, "--save-qgraph", path]]
    )
    assert result.exit_code == 0, result.output
    return path.read_bytes()


@pytest.fixture
def graph_file(tmp_path: Path, graph_bytes: bytes) -> Path:
    """A private copy of the good graph file, free to corrupt."""
    path = tmp_path / "graph.qgraph"
    path.write_bytes(graph_bytes)
    return path


def build_args(repo: Path, pipeline: Path, *extra: str) -> list[str | Path]:
    return ["-b", repo, "-i", DEFAULTS, "-o", OUTPUT, "--output-run", OUTPUT_RUN, "-p", pipeline, *extra]


def parse_summary(stdout: str) -> dict[str, int]:
    """``task  quanta`` table -> {label: count} (``total`` included)."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["task", "quanta"]
    counts: dict[str, int] = {}
    for line in lines[1:]:
        if line.startswith("output run:"):
            break
        label, count = line.split()
        counts[label] = int(count)
    return counts


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit status 1, a clean exit (no exception escaped), one ``error:`` line holding ``fragments``."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    message = result.stderr
    assert message.startswith("error: ") and message.count("\n") == 1, message
    for fragment in fragments:
        assert fragment in message
    assert "Traceback" not in result.output
    return message


# -- showing graphs -------------------------------------------------------------------------------


def test_qgraph_show_summary_counts_quanta_per_task(
    shared_repo: Path,
    pipeline_file: Path,
    pipetask: Invoke,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
) -> None:
    result = pipetask("qgraph", *build_args(shared_repo, pipeline_file), "--show", "summary")
    assert result.exit_code == 0, result.output
    n_e, n_d = len(exposures), len(detectors)
    expected = {"isr": n_e * n_d, "calibrate": n_e * n_d, "gather": n_e, "total": 2 * n_e * n_d + n_e}
    assert parse_summary(result.stdout) == expected
    assert f"output run: {OUTPUT_RUN}   output collection: {OUTPUT}" in result.stdout
    # With nothing to save and nothing asked for, the summary is what qgraph prints.
    plain = pipetask("qgraph", *build_args(shared_repo, pipeline_file))
    assert plain.exit_code == 0, plain.output
    assert parse_summary(plain.stdout) == expected


def test_qgraph_show_quanta_lists_one_line_per_quantum(
    tmp_path: Path,
    shared_repo: Path,
    pipeline_file: Path,
    pipetask: Invoke,
    exposures: tuple[int, ...],
    detectors: tuple[int, ...],
) -> None:
    saved = tmp_path / "shown.qgraph"
    result = pipetask(
        "qgraph", *build_args(shared_repo, pipeline_file, "--save-qgraph", str(saved)), "--show", "quanta"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 * len(exposures) * len(detectors) + len(exposures)
    shown = []
    for line in lines:
        qid, label, data_id = re.split(r"\s{2,}", line)
        shown.append((uuid.UUID(qid), label, data_id))
    expected = {
        (label, f"instrument=DemoCam, detector={d}, exposure={e}")
        for label in ("isr", "calibrate")
        for e, d in itertools.product(exposures, detectors)
    } | {("gather", f"instrument=DemoCam, exposure={e}") for e in exposures}
    assert {(label, data_id) for _, label, data_id in shown} == expected
    # The IDs printed are the ones to give run-qbb: those of the saved file, in its order.
    with GraphReader(saved) as reader:
        assert [qid for qid, _, _ in shown] == reader.quantum_ids()
    assert re.fullmatch(
        rf"Saved {len(lines)} quanta to {re.escape(str(saved))} \([\d,]+ bytes\)\n", result.stderr
    )


def test_qgraph_show_with_a_data_query(shared_repo: Path, pipeline_file: Path, pipetask: Invoke) -> None:
    result = pipetask(
        "qgraph",
        *build_args(shared_repo, pipeline_file, "-d", "detector = 1 AND exposure IN (2, 3)"),
        "--show",
        "quanta",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 + 2 + 2
    assert all("detector=1" in line for line in lines if "gather" not in line)


def test_show_summary_of_a_saved_graph_file(
    graph_file: Path, pipetask: Invoke, exposures: tuple[int, ...], detectors: tuple[int, ...]
) -> None:
    result = pipetask("qgraph", "--qgraph", graph_file, "--show", "summary", "--show", "quanta")
    assert result.exit_code == 0, result.output
    n_e, n_d = len(exposures), len(detectors)
    expected = {"isr": n_e * n_d, "calibrate": n_e * n_d, "gather": n_e, "total": 2 * n_e * n_d + n_e}
    assert parse_summary(result.stdout) == expected
    with GraphReader(graph_file) as reader:
        ids = [str(qid) for qid in reader.quantum_ids()]
    quanta_lines = result.stdout.splitlines()[-len(ids) :]
    assert [line.split()[0] for line in quanta_lines] == ids


def test_qgraph_needs_a_graph_or_a_repo_and_pipeline(pipetask: Invoke) -> None:
    result = pipetask("qgraph", "--show", "summary")
    assert result.exit_code == 2
    assert "give either --qgraph FILE, or -b REPO and -p PIPELINE" in result.stderr


# -- corrupted graph files ------------------------------------------------------------------------


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def corrupt(path: Path, how: str) -> str:
    """Damage the graph file at ``path``; returns the problem the error message must name."""
    size = path.stat().st_size
    if how == "flipped byte in the middle":
        _flip(path, size // 2)
        return "checksum mismatch"
    if how == "flipped byte in a quantum block":
        with GraphReader(path) as reader:
            ((offset, length),) = [(o, n) for part, o, n in reader.layout() if part == "block 0"]
        _flip(path, offset + length // 2)
        return "block 0: checksum mismatch"
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: size // 2])
        return "truncated"
    if how == "garbage":
        path.write_bytes(b"QGRAPH? no, just some text a user saved by mistake\n" * 40)
        return "bad magic"
    raise AssertionError(how)


CORRUPTIONS = ["flipped byte in the middle", "flipped byte in a quantum block", "truncated", "garbage"]


def commands(repo: Path, graph: Path) -> dict[str, tuple[str, list[str | Path]]]:
    """Every command that reads a graph file: name -> (console script, arguments)."""
    return {
        "qgraph": ("pipetask", ["qgraph", "--qgraph", graph]),
        "run": ("pipetask", ["run", "-b", repo, "--qgraph", graph]),
        "pre-exec-init-qbb": ("pipetask", ["pre-exec-init-qbb", repo, graph]),
        "run-qbb": ("pipetask", ["run-qbb", repo, graph]),
        "transfer-from-graph": ("butler", ["transfer-from-graph", graph, repo]),
    }


@pytest.fixture
def untouched(shared_repo: Path) -> Iterator[None]:
    """Checks the shared repository gained no collection and no output files."""
    with Butler(shared_repo) as butler:
        before = butler.registry.query_collections()
    yield
    with Butler(shared_repo) as butler:
        assert butler.registry.query_collections() == before
    assert not (shared_repo / OUTPUT_RUN).exists()


# pre-exec-init-qbb reads only the header, so a damaged quantum block is for the jobs reading it.
CASES = [
    (command, how)
    for command, how in itertools.product(
        ["qgraph", "run", "pre-exec-init-qbb", "run-qbb", "transfer-from-graph"], CORRUPTIONS
    )
    if (command, how) != ("pre-exec-init-qbb", "flipped byte in a quantum block")
]


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(("command", "how"), CASES)
def test_corrupted_graph_file_is_one_error_line(
    shared_repo: Path, graph_file: Path, pipetask: Invoke, butler_cli: Invoke, how: str, command: str
) -> None:
    problem = corrupt(graph_file, how)
    script, args = commands(shared_repo, graph_file)[command]
    result = (pipetask if script == "pipetask" else butler_cli)(*args)
    message = assert_one_line_error(result, f"QuantumGraph file {graph_file}: ", problem)
    assert "msgpack" not in message.lower() and "zstd" not in message.lower()


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("command", ["qgraph", "run-qbb", "transfer-from-graph"])
def test_corrupted_graph_file_in_a_real_process(
    shared_repo: Path, graph_file: Path, run_script: RunScript, command: str
) -> None:
    problem = corrupt(graph_file, "flipped byte in the middle")
    script, args = commands(shared_repo, graph_file)[command]
    proc = run_script(script, *args)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"error: QuantumGraph file {graph_file}: ")
    assert problem in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_missing_graph_file(tmp_path: Path, shared_repo: Path, pipetask: Invoke) -> None:
    missing = tmp_path / "nowhere.qgraph"
    assert_one_line_error(pipetask("run-qbb", shared_repo, missing), str(missing), "No such file")


# -- bad pipelines and queries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("description: x\ntasks: {isr: [quantumgraph.demo.tasks.Isr\n", "not valid YAML (line 3"),
        ("- isr\n- calibrate\n", "a pipeline must be a mapping"),
        ("description: x\ntasks: {isr: quantumgraph.demo.tasks.Nope}\n", "has no attribute 'Nope'"),
        (
            "description: x\ntasks: {isr: {class: quantumgraph.demo.tasks.Isr, config: {ofset: 2}}}\n",
            "unknown config field(s) ofset",
        ),
    ],
)
@pytest.mark.parametrize("command", ["qgraph", "run"])
def test_bad_pipeline_yaml_names_the_file(
    tmp_path: Path, shared_repo: Path, pipetask: Invoke, text: str, problem: str, command: str
) -> None:
    pipeline = tmp_path / "broken.yaml"
    pipeline.write_text(text)
    result = pipetask(command, *build_args(shared_repo, pipeline))
    assert_one_line_error(result, f"error: {pipeline}: ", problem)


def test_missing_pipeline_file(tmp_path: Path, shared_repo: Path, pipetask: Invoke) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = pipetask("run", *build_args(shared_repo, missing))
    assert_one_line_error(result, f"cannot read pipeline file {missing}")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["-d", "exposure IN (1,"], "at position 15"),
        (["-d", "filter = 'r'"], "unknown dimension 'filter'"),
        (["-d", "exposure = 42"], "the graph is empty"),
        (["-i", "DemoCam/nowhere"], "collection 'DemoCam/nowhere' does not exist"),
        (["--output-run", RAW_RUN], f"output run '{RAW_RUN}' already exists"),
    ],
)
def test_bad_build_options_are_reported(
    shared_repo: Path, pipeline_file: Path, pipetask: Invoke, options: list[str], problem: str
) -> None:
    result = pipetask("qgraph", *build_args(shared_repo, pipeline_file), *options)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: ") and problem in result.stderr

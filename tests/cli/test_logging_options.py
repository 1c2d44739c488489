"""The logging options LSST users bring, on all three command lines (``butler.cli_support``).

``--log-level`` (LSST's levels, VERBOSE and TRACE included, and ``LOGGER=LEVEL``), ``--long-log``,
``--log-file`` (``.json``: JSON lines read back here record by record; anything else: text;
both appended), ``--log-tty/--no-log-tty``, ``--log-label`` and ``-h``.  Every command here is a
real one on a real demo repository, logging what it really logs.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from bps.cli import main as bps_main
from butler import TRACE, VERBOSE
from butler.cli import main as butler_main
from quantumgraph.cli import main as pipetask_main
from quantumgraph.demo.repo import make_demo_repo

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = REPO_ROOT / "submit_configs" / "quickstart_pipeline.yaml"


def invoke(main: click.Group, *args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo repository (1 exposure x 2 detectors), a saved graph over it, and the quickstart YAML."""
    top = tmp_path_factory.mktemp("logging")
    make_demo_repo(top / "demo_repo", 1, 2)
    built = invoke(
        pipetask_main, "qgraph", "-b", top / "demo_repo", "-i", "DemoCam/defaults", "-o", "u/me/g",
        "-p", PIPELINE, "--save-qgraph", top / "g.qgraph",
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    configs = top / "submit_configs"
    configs.mkdir()
    for name in ("quickstart.yaml", "quickstart_pipeline.yaml"):
        shutil.copy(REPO_ROOT / "submit_configs" / name, configs / name)
    return top


_COUNTER = iter(range(1_000_000))


def _command(cli: str, demo: Path) -> tuple[click.Group, list[str | Path], str, str]:
    """(group, arguments, a logger the command logs through, text one of its messages contains).

    Each call is a fresh command that writes something new (a new output run), so it can be run
    again and log again.
    """
    n = next(_COUNTER)
    repo = demo / "demo_repo"
    if cli == "butler":
        return butler_main, ["transfer-from-graph", demo / "g.qgraph", repo], "quantumgraph._merge", "merged"
    if cli == "pipetask":
        args: list[str | Path] = [
            "run", "-b", repo, "-i", "DemoCam/defaults", "-o", f"u/me/log{n}", "-p", PIPELINE,
        ]  # fmt: skip
        return pipetask_main, args, "quantumgraph._merge", "merged"
    config = demo / "submit_configs" / "quickstart.yaml"
    return bps_main, ["prepare", config, "--output-run", f"u/me/prep{n}"], "bps._submit", "prepared"


@pytest.fixture
def in_demo(demo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(demo)  # bps prepare writes ./submit
    monkeypatch.setenv("SKYBATCH_RUNS_DIR", str(demo / "runs"))
    return demo


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("cli", ["butler", "pipetask", "bps"])
def test_log_files_json_and_text_with_labels_appended(cli: str, in_demo: Path, tmp_path: Path) -> None:
    as_json, as_text = tmp_path / "run.json", tmp_path / "run.log"
    runs = []
    for attempt in ("1", "2"):
        main, args, logger, text = _command(cli, in_demo)
        # The options go before the subcommand the first time and after it the second time.
        options = [
            "--log-level", "INFO", "--log-file", as_json, "--log-file", as_text, "--no-log-tty",
            "--log-label", f"attempt={attempt}", "--log-label", "site=here",
        ]  # fmt: skip
        result = invoke(main, *options, *args) if attempt == "1" else invoke(main, *args, *options)
        assert result.exit_code == 0, result.output
        assert text not in result.stderr  # --no-log-tty: records go to the files only
        runs.append(result)
    records = _records(as_json)
    ours = [r for r in records if r["name"] == logger and text in r["message"]]
    assert [r["MDC"] for r in ours] == [
        {"attempt": "1", "site": "here"},
        {"attempt": "2", "site": "here"},
    ]  # one record per run, appended in order
    for record in records:
        assert record["levelno"] >= logging.INFO
        assert record["levelname"] == logging.getLevelName(record["levelno"])
        assert set(record) >= {"name", "asctime", "message", "filename", "lineno", "funcName", "process"}
        assert record["MDC"]["site"] == "here"
    lines = [line for line in as_text.read_text().splitlines() if text in line]
    assert len(lines) == 2 and all(f" {logger}: " in line for line in lines)
    assert lines[0].startswith("INFO ")


def test_logger_level_scoping_and_the_verbose_and_trace_levels(in_demo: Path, tmp_path: Path) -> None:
    assert logging.getLevelName(VERBOSE) == "VERBOSE" and VERBOSE == 15
    assert logging.getLevelName(TRACE) == "TRACE" and TRACE == 5
    main, args, _, _ = _command("pipetask", in_demo)
    scoped = tmp_path / "scoped.json"
    # Root at WARNING, one logger (and those below it) at TRACE.
    result = invoke(main, *args, "--log-file", scoped, "--log-level", "WARNING,quantumgraph._execution=TRACE")
    assert result.exit_code == 0, result.output
    records = _records(scoped)
    assert {r["name"] for r in records} == {"quantumgraph._execution"}  # the merge's INFO is not there
    levels = {r["levelname"]: r["levelno"] for r in records}
    assert levels == {"VERBOSE": 15, "TRACE": 5}
    assert sum(1 for r in records if r["levelname"] == "VERBOSE") == 5  # one per quantum

    main, args, _, _ = _command("pipetask", in_demo)
    verbose = tmp_path / "verbose.json"
    result = invoke(main, "--log-level", "verbose", *args, "--log-file", verbose, "--no-log-tty")
    assert result.exit_code == 0, result.output
    levels = {r["levelname"] for r in _records(verbose)}
    assert levels == {"VERBOSE", "INFO"}  # nothing at DEBUG or TRACE
    # LSST's spelling of the root logger, '.', is the same as a bare level.
    main, args, _, _ = _command("pipetask", in_demo)
    root = tmp_path / "root.json"
    assert invoke(main, "--log-level", ".=INFO", *args, "--log-file", root).exit_code == 0
    assert {r["levelname"] for r in _records(root)} == {"INFO"}


@pytest.mark.parametrize("cli", ["butler", "pipetask", "bps"])
def test_long_and_short_formats_on_stderr(cli: str, in_demo: Path) -> None:
    main, args, logger, text = _command(cli, in_demo)
    long = invoke(main, "--long-log", "--log-level", "INFO", "--log-label", "k=v", *args)
    assert long.exit_code == 0, long.output
    line = next(line for line in long.stderr.splitlines() if text in line and logger in line)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"
    assert re.fullmatch(rf"INFO {stamp} {re.escape(logger)} \(k=v\)\(\w+\.py:\d+\) - .*{text}.*", line), line
    main, args, logger, text = _command(cli, in_demo)
    short = invoke(main, *args, "--log-level", f"{logger}=INFO")
    line = next(line for line in short.stderr.splitlines() if text in line)
    assert re.fullmatch(rf"INFO {stamp} {re.escape(logger)}: .*{text}.*", line), line


def _script(name: str) -> str:
    import os
    import sys

    exe = shutil.which(name, path=os.path.dirname(sys.executable))
    assert exe is not None, f"console script {name} is not installed"
    return exe


@pytest.mark.parametrize("cli", ["butler", "pipetask", "bps"])
def test_dash_h_is_help_everywhere(cli: str) -> None:
    sub = {"butler": "create", "pipetask": "run-qbb", "bps": "report"}[cli]
    for args in (["-h"], [sub, "-h"]):
        done = subprocess.run([_script(cli), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Usage: ") and "--log-file FILE" in done.stdout


def test_console_script_writes_the_json_log_a_script_can_read(in_demo: Path, tmp_path: Path) -> None:
    log = tmp_path / "merge.json"
    done = subprocess.run(
        [
            _script("butler"), "transfer-from-graph", in_demo / "g.qgraph", in_demo / "demo_repo",
            "--log-level", "INFO", "--log-file", log, "--log-label", "job=final",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "merged" in done.stderr  # also on the terminal by default
    (record,) = [r for r in _records(log) if r["name"] == "quantumgraph._merge"]
    assert record["levelname"] == "INFO" and record["MDC"] == {"job": "final"}
    assert record["process"] != 0 and record["asctime"].endswith("+00:00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--log-level", "LOUD"],
            "level must be one of CRITICAL, ERROR, WARNING, INFO, VERBOSE, DEBUG, TRACE",
        ),
        (["--log-label", "nokey"], "'nokey' is not KEY=VALUE"),
    ],
)
def test_bad_logging_options_are_usage_errors(args: list[str], message: str) -> None:
    for main in (butler_main, pipetask_main, bps_main):
        result = invoke(main, *args)
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_a_log_file_that_cannot_be_opened_is_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.json"
    checks: list[tuple[click.Group, list[str]]] = [
        (butler_main, ["query-collections", str(tmp_path)]),
        (pipetask_main, ["qgraph", "--qgraph", str(tmp_path / "g.qgraph")]),
        (bps_main, ["report"]),
    ]
    for main, args in checks:
        result = invoke(main, "--log-file", str(missing), *args)
        expected = f"error: --log-file {missing}: cannot append to it (No such file or directory)"
        assert result.exit_code != 0 and result.stderr.strip().splitlines() == [expected], result.output

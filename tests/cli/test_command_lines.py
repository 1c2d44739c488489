"""The one error boundary every skybatch command line shares (``butler.cli_support``).

What a user sees: their mistakes are one ``error:`` line; a bug in our code keeps its traceback and
says it is a bug; a closed output pipe (``| head``) ends the command quietly; the global options
work before and after the subcommand.  Checked for all three command lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import bps.config
import butler
import quantumgraph
from bps.cli import main as bps_main
from butler.cli import main as butler_main
from butler.cli_support import EXIT_CLOSED_PIPE, register_error_root
from quantumgraph.cli import main as pipetask_main

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = REPO_ROOT / "submit_configs" / "quickstart_pipeline.yaml"


def invoke(main: click.Group, *args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def script(name: str) -> str:
    """The installed console script ``name`` (the same one a user runs)."""
    exe = shutil.which(name, path=os.path.dirname(sys.executable))
    assert exe is not None, f"console script {name} is not installed in this environment"
    return exe


def _raiser(exc: BaseException) -> Callable[..., Any]:
    def raise_it(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return raise_it


@pytest.fixture(autouse=True)
def _runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYBATCH_RUNS_DIR", str(tmp_path / "runs"))


def _inject(cli: str, exc: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Result:
    """Make a function deep inside ``cli``'s command raise ``exc``, then run that command."""
    if cli == "butler":
        monkeypatch.setattr(butler.Butler, "create", _raiser(exc))
        return invoke(butler_main, "create", tmp_path / "repo")
    if cli == "pipetask":
        monkeypatch.setattr(quantumgraph.GraphReader, "__init__", _raiser(exc))
        return invoke(pipetask_main, "qgraph", "--qgraph", tmp_path / "some.qgraph")
    config = tmp_path / "submit.yaml"
    config.write_text("pipelineYaml: pipeline.yaml\n")
    monkeypatch.setattr(bps.config, "load_bps_config", _raiser(exc))
    return invoke(bps_main, "prepare", config)


@pytest.mark.parametrize("cli", ["butler", "pipetask", "bps"])
def test_an_internal_bug_keeps_its_traceback_and_says_it_is_a_bug(
    cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _inject(cli, IndexError("list index out of range (injected)"), tmp_path, monkeypatch)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "IndexError: list index out of range (injected)" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: This is a bug in skybatch") and "report it" in last


@pytest.mark.parametrize("cli", ["butler", "pipetask", "bps"])
@pytest.mark.parametrize(
    "exc",
    [ValueError("bad value (injected)"), KeyError("key (injected)"), LookupError("lookup (injected)")],
    ids=["ValueError", "KeyError", "LookupError"],
)
def test_builtin_errors_are_never_taken_for_user_errors(
    cli: str, exc: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _inject(cli, exc, tmp_path, monkeypatch)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "This is a bug in skybatch" in result.stderr


@pytest.mark.parametrize("cli", ["butler", "pipetask", "bps"])
def test_a_missing_file_the_user_did_not_name_is_a_bug(
    cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exc = FileNotFoundError(2, "No such file or directory", "/usr/share/skybatch-internal/table.yaml")
    result = _inject(cli, exc, tmp_path, monkeypatch)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "This is a bug in skybatch" in result.stderr


@pytest.mark.parametrize("cli", ["butler", "pipetask", "bps"])
def test_our_errors_and_the_users_paths_are_one_line(
    cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / ("repo" if cli == "butler" else "some.qgraph" if cli == "pipetask" else "submit.yaml")
    for exc, message in [
        (butler.MissingCollectionError("collection 'x' does not exist"), "collection 'x' does not exist"),
        (PermissionError(13, "Permission denied", str(named)), f"[Errno 13] Permission denied: '{named}'"),
    ]:
        result = _inject(cli, exc, tmp_path, monkeypatch)
        assert result.exit_code == 1
        assert result.stderr == f"error: {message}\n"


def test_a_layer_registers_its_root_never_a_builtin() -> None:
    with pytest.raises(TypeError, match="builtin"):
        register_error_root(ValueError)


def test_bps_keeps_its_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bps

    for exc, code in [
        (bps.BpsConfigError("requestMemory: expected an integer"), 2),
        (bps.RunNotFoundError("no run 'x'"), 2),
        (bps.EmptyGraphError("the graph is empty"), 1),
        (quantumgraph.GraphBuildError("no inputs"), 1),
        (KeyboardInterrupt(), 130),
    ]:
        result = _inject("bps", exc, tmp_path, monkeypatch)
        assert result.exit_code == code, (exc, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


# --------------------------------------------------------------------------- closed pipes


def _run_into_closed_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run a console script whose stdout is a pipe the reader has already closed (``| head`` done)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(args, stdout=write_end, stderr=subprocess.PIPE, cwd=cwd, timeout=120)
    finally:
        os.close(write_end)


def test_a_closed_pipe_ends_every_command_line_quietly(tmp_path: Path) -> None:
    repo = tmp_path / "demo_repo"
    made = subprocess.run(
        [script("butler"), "make-demo-repo", str(repo), "--exposures", "2", "--detectors", "2"],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    commands = [
        [script("butler"), "query-datasets", str(repo), "raw", "--collections", "DemoCam/defaults"],
        [
            script("pipetask"),
            "qgraph",
            "-b",
            str(repo),
            "-i",
            "DemoCam/defaults",
            "-o",
            "u/me/x",
            "-p",
            str(PIPELINE),
            "--show",
            "quanta",
        ],  # fmt: skip
        [script("bps"), "report"],
    ]
    for args in commands:
        result = _run_into_closed_pipe(args, tmp_path)
        assert result.stderr == b"", (args, result.stderr.decode())
        assert result.returncode == EXIT_CLOSED_PIPE, args


def test_pipetask_show_quanta_into_head_is_quiet(tmp_path: Path) -> None:
    """The case users hit: many lines of output, and ``head`` leaving after the first one."""
    repo = tmp_path / "demo_repo"
    made = subprocess.run(
        [script("butler"), "make-demo-repo", str(repo), "--exposures", "40", "--detectors", "10"],
        capture_output=True,
    )
    assert made.returncode == 0
    shown = subprocess.run(
        f"set -o pipefail; '{script('pipetask')}' qgraph -b '{repo}' -i DemoCam/defaults -o u/me/x "
        f"-p '{PIPELINE}' --show quanta | head -n 1",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.stdout.count("\n") == 1
    assert shown.stderr == ""
    assert shown.returncode in (0, EXIT_CLOSED_PIPE)  # 0 only if head read slower than we wrote


# --------------------------------------------------------------------------- global options


def test_global_options_after_the_subcommand(tmp_path: Path) -> None:
    repo = tmp_path / "big_repo"
    result = invoke(
        butler_main, "make-demo-repo", repo, "--exposures", "2", "--detectors", "1", "--progress",
        "--log-level", "butler=INFO",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Writing raws: [" in result.stderr and "2/2" in result.stderr
    before = invoke(butler_main, "--progress", "make-demo-repo", tmp_path / "r2", "--exposures", "1")
    assert before.exit_code == 0 and "Writing raws: [" in before.stderr
    quiet = invoke(butler_main, "make-demo-repo", tmp_path / "r3", "--exposures", "1")
    assert quiet.exit_code == 0 and "Writing raws" not in quiet.stderr
    bad = invoke(pipetask_main, "qgraph", "--qgraph", "x.qgraph", "--log-level", "LOUD")
    assert bad.exit_code == 2 and "level must be one of" in bad.stderr
    listed = invoke(bps_main, "report", "--log-level", "DEBUG", "--no-progress")
    assert listed.exit_code == 0 and "No runs recorded" in listed.stdout


@pytest.mark.parametrize(
    ("main", "command"), [(butler_main, "create"), (pipetask_main, "qgraph"), (bps_main, "report")]
)
def test_help_says_the_global_options_go_anywhere(main: click.Group, command: str) -> None:
    for args in (["--help"], [command, "--help"]):
        text = " ".join(invoke(main, *args).output.split())
        assert "--log-level" in text and "--progress" in text
        assert "accepted before or after the subcommand" in text

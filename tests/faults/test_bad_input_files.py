"""Damaged or wrong input files get one-line errors naming the file, through the real CLIs (issue 7, item 14).

A graph path that is a directory, a CSV table or a ``butler.yaml`` that is not UTF-8, and a
``butler.yaml`` that is not YAML: each ends in a single ``error:`` line that names the file, never
a traceback or a bare ``[Errno 21]``.  (Submit YAML encoding: ``test_bps_config_bombs.py``.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name(argv[0]))
    return subprocess.run([exe, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=300)


def one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].lower().startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr and "Errno" not in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo_mod = pytest.importorskip("quantumgraph.demo.repo")
    root = tmp_path_factory.mktemp("badinput")
    repo_mod.make_demo_repo(root / "repo", exposures=1, detectors=1)
    (root / "dir.qgraph").mkdir()
    return root


@pytest.mark.parametrize(
    "argv",
    [
        ("pipetask", "qgraph", "-g", "dir.qgraph", "--show", "summary"),
        ("pipetask", "run-qbb", "repo", "dir.qgraph"),
    ],
)
def test_a_graph_path_that_is_a_directory(demo: Path, argv: tuple[str, ...]) -> None:
    one_line(run(*argv, cwd=demo), "dir.qgraph", "is a directory")


def test_bps_qgraph_file_that_is_a_directory(demo: Path) -> None:
    config = demo / "graph_dir.yaml"
    config.write_text(
        "qgraphFile: dir.qgraph\npayload: {payloadName: x, butlerConfig: repo, output: u/a/b}\n"
    )
    one_line(
        run("bps", "prepare", str(config), cwd=demo),
        "qgraphFile",
        str(demo / "dir.qgraph"),
        "not a regular file",
    )


def test_a_csv_table_that_is_not_utf8(demo: Path) -> None:
    table = demo / "latin1.csv"
    table.write_bytes(b"file,exposure\n" + "caf\xe9.json,1\n".encode("latin-1"))
    one_line(
        run("butler", "ingest-files", "repo", "raw", "Cam/raw/all", str(table), cwd=demo),
        str(table),
        "line 2",
        "UTF-8",
    )


@pytest.mark.parametrize(
    ("content", "fragment"), [(b"{{{: [\n", "not valid YAML at line 1"), (b"\xff\xfe\x00", "not valid UTF-8")]
)
def test_a_broken_butler_yaml(demo: Path, tmp_path: Path, content: bytes, fragment: str) -> None:
    broken = tmp_path / "broken_repo"
    shutil.copytree(demo / "repo", broken)
    (broken / "butler.yaml").write_bytes(content)
    one_line(
        run("butler", "query-collections", str(broken), cwd=tmp_path), str(broken / "butler.yaml"), fragment
    )

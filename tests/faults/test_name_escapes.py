"""A run or collection name can never move a file outside its root (issue 7, item 5).

Names are refused where they enter -- the registry, ``pipetask`` options, the submit YAML -- and
the submit directory built from them is checked to stay under the directory its template names.
Everything goes through the real command lines, as an operator would meet it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from butler import Butler, ButlerError, InvalidNameError, check_collection_name

REPO_ROOT = Path(__file__).resolve().parents[2]
BAD_NAMES = [
    "u/../x",
    "u/../../../x/ESCAPED",
    "..",
    "/abs/run",
    "u//double",
    "u/trailing/",
    "u/./here",
    "nul\x00byte",
    "new\nline",
    "tab\there",
    "",
]


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, USER="alice", SKYBATCH_RUNS_DIR=str(cwd / "runs-index"))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_public_validator_refuses_escaping_names(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_collection_name(name)
    assert isinstance(info.value, ButlerError) and isinstance(info.value, ValueError)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize(
    "name", ["u/alice/run1/20261126T040000Z", "DemoCam/raw/all", "a.b-c+d:e@f", "u/x..y"]
)
def test_the_public_validator_accepts_ordinary_names(name: str) -> None:
    check_collection_name(name)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo_mod = pytest.importorskip("quantumgraph.demo.repo")
    root = tmp_path_factory.mktemp("names")
    repo_mod.make_demo_repo(root / "demo_repo", exposures=1, detectors=1)
    (root / "configs").mkdir()
    for name in ("quickstart.yaml", "quickstart_pipeline.yaml"):
        shutil.copy(REPO_ROOT / "submit_configs" / name, root / "configs" / name)
    return root


def test_registry_refuses_escaping_run_names(demo: Path) -> None:
    butler = Butler(demo / "demo_repo", writeable=True)
    with pytest.raises(InvalidNameError):
        butler.registry.register_run("u/../../x")
    assert "u/../../x" not in dict(butler.registry.query_collections())


@pytest.mark.parametrize("option", ["--output-run", "-o"])
def test_pipetask_qgraph_refuses_an_escaping_output_and_saves_nothing(demo: Path, option: str) -> None:
    graph = demo / f"escaped{option}.qgraph"
    result = run(
        _tool("pipetask"),
        "qgraph",
        "-b",
        str(demo / "demo_repo"),
        "-i",
        "DemoCam/defaults",
        option,
        "u/../../x",
        "-p",
        str(demo / "configs" / "quickstart_pipeline.yaml"),
        "--save-qgraph",
        str(graph),
        cwd=demo,
    )
    line = one_error_line(result)
    assert "'u/../../x'" in line and "'..'" in line
    assert not graph.exists()


@pytest.mark.parametrize(
    ("key", "option", "value"),
    [
        ("payload.outputRun", "--output-run", "u/../../../x/ESCAPED"),
        ("payload.output", "--output", "u/../../../x/ESCAPED"),
        ("payload.inCollection", "--input", "DemoCam/../../ESCAPED"),
    ],
)
def test_bps_prepare_refuses_escaping_names_and_writes_nothing(
    demo: Path, key: str, option: str, value: str
) -> None:
    work = demo / f"work{option}"
    work.mkdir()
    result = run(_tool("bps"), "prepare", str(demo / "configs" / "quickstart.yaml"), option, value, cwd=work)
    line = one_error_line(result)
    assert result.returncode == 2 and key in line and repr(value) in line, line
    assert not list(demo.rglob("ESCAPED")) and not (work / "submit").exists()


def test_bps_prepare_refuses_a_submit_path_that_a_placeholder_moves_outside_its_root(demo: Path) -> None:
    work = demo / "work-submitpath"
    work.mkdir()
    config = demo / "configs" / "sub.yaml"
    config.write_text(
        "includeConfigs: [quickstart.yaml]\n"
        "vars: {where: ../../elsewhere}\n"
        'submitPath: "submit/{where}/{outputRun}"\n',
        encoding="utf-8",
    )
    result = run(_tool("bps"), "prepare", str(config), cwd=work)
    line = one_error_line(result)
    assert result.returncode == 2 and "submitPath" in line and "outside" in line
    assert str(demo / "configs" / "submit") in line  # submitPath set in a file is relative to it
    assert not (demo / "elsewhere").exists()

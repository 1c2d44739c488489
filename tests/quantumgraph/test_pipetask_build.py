"""``pipetask build --show ...``, the pipeline pictures (checked by Graphviz's ``dot`` and by a
strict Mermaid syntax check written here), and ``pipetask qgraph --qgraph-dot``.

Graphviz: the tests use ``dot`` from Debian's ``graphviz`` package, installing it with apt-get
when it is missing and apt-get can run (CI is a fresh Debian as root); otherwise they skip and say
why.  No pip-installable Mermaid parser works offline, so :func:`check_mermaid` checks the subset
of Mermaid flowchart syntax the picture uses, strictly: every line must be one of the forms below.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantumgraph import Pipeline
from quantumgraph._pictures import _dot_quote, _mermaid_quote
from quantumgraph.demo.repo import DEFAULTS

Invoke = Callable[..., Any]
RunScript = Callable[..., "subprocess.CompletedProcess[str]"]

#: The demo pipeline's edges as (source, target) names: dataset types and task labels.
DEMO_EDGES = {
    ("raw", "isr"),
    ("isr", "postISR"),
    ("postISR", "calibrate"),
    ("calibrate", "calexp"),
    ("calexp", "gather"),
    ("gather", "summary"),
}


@pytest.fixture(scope="session")
def dot() -> str:
    """The path of Graphviz's ``dot``, installed with apt-get if needed; skips saying why if it cannot be."""
    found = shutil.which("dot")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip(
            "Graphviz 'dot' is not installed and there is no apt-get to install it (Debian: graphviz)"
        )
    if os.geteuid() != 0:
        pytest.skip("Graphviz 'dot' is not installed and installing it with apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "graphviz"]
    result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run([apt, "update"], capture_output=True, text=True, env=env, timeout=600)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    found = shutil.which("dot")
    if found is None:
        pytest.skip(f"apt-get could not install graphviz: {(result.stderr or result.stdout).strip()[-300:]}")
    return found


def dot_plain(dot: str, path: Path) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """Lay ``path`` out with ``dot -Tplain`` (fails on any syntax error): node id -> label, edges."""
    result = subprocess.run([dot, "-Tplain", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr, result.stderr
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    for line in result.stdout.splitlines():
        if line.startswith("node "):
            # node NAME X Y W H LABEL STYLE SHAPE COLOR FILL; a label with spaces is quoted
            name, rest = line.split(" ", 2)[1:]
            label = re.match(r'(?:\S+ ){4}("(?:[^"\\]|\\.)*"|\S+)', rest)
            assert label is not None, line
            nodes[name] = label.group(1).strip('"').replace("\\n", "\n")
        elif line.startswith("edge "):
            tail, head = line.split()[1:3]
            edges.add((tail, head))
    return nodes, edges


_MERMAID_ID = r"[A-Za-z][A-Za-z0-9_]*"
_MERMAID_LABEL = r'"[^"\n]*"'
_MERMAID_NODE = re.compile(rf"^    ({_MERMAID_ID})(\[{_MERMAID_LABEL}\]|\(\[{_MERMAID_LABEL}\]\))$")
_MERMAID_EDGE = re.compile(rf"^    ({_MERMAID_ID}) --> ({_MERMAID_ID})$")
_MERMAID_CLASSDEF = re.compile(rf"^    classDef ({_MERMAID_ID}) [a-z-]+:[^\s,;]+(,[a-z-]+:[^\s,;]+)*$")
_MERMAID_CLASS = re.compile(rf"^    class ({_MERMAID_ID}(?:,{_MERMAID_ID})*) ({_MERMAID_ID})$")
_MERMAID_RESERVED = {"end", "graph", "flowchart", "subgraph", "class", "classDef", "style", "click"}


def check_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """Check the flowchart subset the picture uses; return node id -> label text and the edges.

    Rules: a ``flowchart TD`` header; nodes ``ID["label"]`` (box) or ``ID(["label"])`` (stadium),
    each declared once, IDs not Mermaid keywords, labels without raw quotes; edges ``A --> B``
    between declared nodes; ``classDef NAME prop:value,...``; ``class A,B NAME`` naming declared
    nodes and a defined class.  Anything else fails.
    """
    lines = text.splitlines()
    assert lines[0] == "flowchart TD", lines[0]
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    classes: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        if m := _MERMAID_NODE.match(line):
            node_id, shape = m.groups()
            assert node_id not in nodes and node_id not in _MERMAID_RESERVED, f"line {number}: {line}"
            label = shape[shape.index('"') + 1 : shape.rindex('"')]
            nodes[node_id] = label.replace("<br>", "\n")
        elif m := _MERMAID_EDGE.match(line):
            assert set(m.groups()) <= set(nodes), f"line {number}: edge to an undeclared node: {line}"
            edges.add((m.group(1), m.group(2)))
        elif m := _MERMAID_CLASSDEF.match(line):
            classes.add(m.group(1))
        elif m := _MERMAID_CLASS.match(line):
            assert set(m.group(1).split(",")) <= set(nodes) and m.group(2) in classes, (
                f"line {number}: {line}"
            )
        else:
            raise AssertionError(f"line {number} is not valid flowchart syntax here: {line!r}")
    return nodes, edges


def named_edges(nodes: dict[str, str], edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Edges by the first line of each node's label (task label or dataset type name)."""
    first = {node: label.split("\n")[0] for node, label in nodes.items()}
    return {(first[a], first[b]) for a, b in edges}


@pytest.fixture(scope="module")
def tricky_pipeline(tmp_path_factory: pytest.TempPathFactory, pipeline_file: Path) -> Path:
    """The demo pipeline with a task labelled ``end``, a Mermaid keyword that breaks a node ID."""
    text = pipeline_file.read_text().replace(
        "  gather: quantumgraph.demo.tasks.Gather", "  end: quantumgraph.demo.tasks.Gather"
    )
    path = tmp_path_factory.mktemp("tricky") / "tricky.yaml"
    path.write_text(text)
    return path


def test_show_pipeline_is_the_expanded_yaml_and_loads_back(pipetask: Invoke, pipeline_file: Path) -> None:
    result = pipetask("build", "-p", pipeline_file, "--show", "pipeline")
    assert result.exit_code == 0, result.output
    again = Pipeline.from_yaml(result.stdout)
    assert list(again.tasks) == ["isr", "calibrate", "gather"]
    assert again.tasks["calibrate"].config.scale == 2.0


def test_show_config_with_patterns(pipetask: Invoke, pipeline_file: Path) -> None:
    everything = pipetask("build", "-p", pipeline_file, "--show", "config").stdout
    assert "### Configuration for task `calibrate' (quantumgraph.demo.tasks.Calibrate)" in everything
    assert "config.fail_detectors=[]" in everything and "config.connections.raw='raw'" in everything
    one = pipetask("build", "-p", pipeline_file, "--show", "config=isr::OFF*").stdout
    assert one.splitlines() == [
        "### Configuration for task `isr' (quantumgraph.demo.tasks.Isr)",
        "config.offset=1.0",
    ]
    bad = pipetask("build", "-p", pipeline_file, "--show", "config=nope::x")
    assert bad.exit_code == 1 and "no task labelled 'nope'" in bad.output


def test_show_dataset_types_task_graph_and_subsets(pipetask: Invoke, pipeline_file: Path) -> None:
    result = pipetask(
        "build", "-p", pipeline_file, "--show", "dataset-types", "--show", "task-graph", "--show", "subsets"
    )
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["raw"][-4:] == ["StructuredDataDict", "overall", "input", "isr"]
    assert rows["calexp"][-2:] == ["calibrate", "gather"]
    assert rows["summary"][1:3] == ["(instrument,", "exposure)"]
    assert "calibrate (quantumgraph.demo.tasks.Calibrate)  <- isr" in result.stdout
    assert "(no subsets)" in result.stdout


def test_unknown_show_and_selection_are_one_line_errors(pipetask: Invoke, pipeline_file: Path) -> None:
    result = pipetask("build", "-p", pipeline_file, "--show", "graph")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: --show graph: unknown view; choose from pipeline, config, config=[LABEL::]PATTERN, "
        "dataset-types, task-graph, pipeline-graph, subsets"
    )
    result = pipetask("build", "-p", f"{pipeline_file}#..nope")
    assert result.exit_code == 1 and "range end 'nope' is not a task label" in result.output


def test_pipeline_dot_renders_with_graphviz(
    pipetask: Invoke, pipeline_file: Path, tmp_path: Path, dot: str
) -> None:
    out = tmp_path / "p.dot"
    assert pipetask("build", "-p", pipeline_file, "--pipeline-dot", out).exit_code == 0
    nodes, edges = dot_plain(dot, out)
    assert named_edges(nodes, edges) == DEMO_EDGES
    svg = subprocess.run([dot, "-Tsvg", str(out)], capture_output=True, text=True, timeout=60)
    assert svg.returncode == 0 and "<svg" in svg.stdout and "calibrate" in svg.stdout


def test_pictures_use_generated_ids_and_escape_labels(
    pipetask: Invoke, tricky_pipeline: Path, tmp_path: Path, dot: str
) -> None:
    result = pipetask(
        "build",
        "-p",
        tricky_pipeline,
        "--pipeline-dot",
        tmp_path / "t.dot",
        "--pipeline-mermaid",
        tmp_path / "t.mmd",
    )
    assert result.exit_code == 0, result.output
    nodes, _ = dot_plain(dot, tmp_path / "t.dot")
    assert any(label.startswith("end\n") for label in nodes.values()), nodes
    mermaid_nodes, _ = check_mermaid((tmp_path / "t.mmd").read_text())
    assert any(label.startswith("end\n") for label in mermaid_nodes.values())
    # Names are checked (no quotes in labels or dataset types), but labels are escaped anyway.
    weird = 'say "hi" \\ back\nslash'
    (tmp_path / "w.dot").write_text(f"digraph w {{ a [label={_dot_quote(weird)}]; }}\n")
    # dot parses it as one label (-Tplain echoes the escapes back)
    assert dot_plain(dot, tmp_path / "w.dot")[0]["a"] == _dot_quote(weird)[1:-1].replace("\\n", "\n")
    check_mermaid(f"flowchart TD\n    a[{_mermaid_quote(weird)}]\n")


def test_pipeline_mermaid_is_a_valid_flowchart_of_the_pipeline(
    pipetask: Invoke, pipeline_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.mmd"
    assert pipetask("build", "-p", pipeline_file, "--pipeline-mermaid", out).exit_code == 0
    nodes, edges = check_mermaid(out.read_text())
    assert named_edges(nodes, edges) == DEMO_EDGES
    assert nodes["t0"].startswith("isr\nIsr\n")


def test_mermaid_check_rejects_what_mermaid_would(tmp_path: Path) -> None:
    """The checker above is strict: each of these breaks a real Mermaid parser."""
    for bad in (
        'flowchart TD\n    a["x"]\n    a --> b\n',
        'flowchart TD\n    end["x"]\n',
        'flowchart TD\n    a["say "hi""]\n',
        'graph XY\n    a["x"]\n',
    ):
        with pytest.raises(AssertionError):
            check_mermaid(bad)


def test_qgraph_dot_shows_every_quantum(
    pipetask: Invoke, demo_repo: Path, pipeline_file: Path, tmp_path: Path, dot: str
) -> None:
    out = tmp_path / "q.dot"
    result = pipetask(
        "qgraph",
        "-b",
        demo_repo,
        "-i",
        DEFAULTS,
        "-o",
        "u/me/pic",
        "-p",
        pipeline_file,
        "-d",
        "exposure = 1",
        "--qgraph-dot",
        out,
    )
    assert result.exit_code == 0, result.output
    nodes, edges = dot_plain(dot, out)
    quanta = {n: label for n, label in nodes.items() if n.startswith("q")}
    assert sorted(label.split("\n")[0] for label in quanta.values()) == [
        "calibrate",
        "calibrate",
        "gather",
        "isr",
        "isr",
    ]
    gather = next(n for n, label in quanta.items() if label.startswith("gather"))
    assert sum(1 for a, b in edges if b == gather) == 2  # both detectors' calexp
    assert "exposure=1" in quanta[gather]


def test_instrument_restricts_the_graph_to_that_instrument(
    pipetask: Invoke, demo_repo: Path, tmp_path: Path, pipeline_file: Path
) -> None:
    def qgraph(instrument: str) -> object:
        path = tmp_path / f"{instrument}.yaml"
        path.write_text(f"instrument: {instrument}\n" + pipeline_file.read_text())
        return pipetask(
            "qgraph", "-b", demo_repo, "-i", DEFAULTS, "-o", "u/me/inst", "-p", path, "-d", "exposure = 1"
        )

    ok = qgraph("DemoCam")
    assert ok.exit_code == 0 and "total      5" in ok.stdout, ok.output
    other = qgraph("OtherCam")
    assert other.exit_code == 1
    assert "data query: instrument = 'OtherCam' AND (exposure = 1)" in other.output


def test_saved_graph_runs_where_its_task_module_is_not_importable(
    run_script: RunScript, demo_repo: Path, tmp_path: Path
) -> None:
    """`pipetask run -g` in a fresh process, elsewhere, finds a module that lived next to the pipeline."""
    module = f"nearby_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "campaign"
    folder.mkdir()
    (folder / f"{module}.py").write_text(
        "from quantumgraph.demo.tasks import Isr\n\nclass MyIsr(Isr):\n    pass\n"
    )
    (folder / "p.yaml").write_text(f"description: d\ntasks: {{isr: {module}.MyIsr}}\n")
    graph = tmp_path / "g.qgraph"
    built = run_script(
        "pipetask",
        "qgraph",
        "-b",
        demo_repo,
        "-i",
        DEFAULTS,
        "-o",
        "u/me/near",
        "-p",
        folder / "p.yaml",
        "--save-qgraph",
        graph,
    )
    assert built.returncode == 0, built.stderr
    ran = run_script("pipetask", "run", "-b", demo_repo, "-g", graph)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("6 quanta succeeded, 0 failed")

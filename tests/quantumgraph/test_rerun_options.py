"""The execution and planning options of ``pipetask`` that partial reruns rely on.

``--fail-fast``, ``--timeout``, ``--init-only``, ``-c``/``-C``, ``--select-tasks``,
``update-graph-run`` and the parsing bps uses for ``extraQgraphOptions``; each checked by what a
user sees (the summary line, the registered datasets, the failed quantum's log).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from butler import Butler
from quantumgraph import GraphBuildError, parse_graph_options
from quantumgraph.demo.repo import DEFAULTS

Invoke = Callable[..., Result]

SLEEPY = """
import time
from quantumgraph.demo.tasks import Calibrate as _Demo


class Calibrate(_Demo):
    def run(self, post_isr):
        if post_isr["detector"] == 1:
            time.sleep(30)
        return super().run(post_isr)
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _registered(repo: Path, collection: str) -> dict[str, int]:
    with Butler(repo) as butler:
        return {
            dt.name: n
            for dt in butler.registry.query_dataset_types()
            if (n := len(butler.query_datasets(dt.name, collections=[collection])))
        }


def test_timeout_fails_the_slow_quantum_and_its_log_says_so(
    tmp_path: Path, demo_repo: Path, pipetask: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "sleepy_cal.py", SLEEPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    pipeline = _write(
        tmp_path,
        "p.yaml",
        """\
        tasks:
          isr: quantumgraph.demo.tasks.Isr
          calibrate: sleepy_cal.Calibrate
        """,
    )
    out = "u/t/timeout"
    result = pipetask("run", "-b", demo_repo, "-i", DEFAULTS, "-o", out, "-p", pipeline, "--timeout", "0.5")
    assert result.exit_code == 1
    assert "9 quanta succeeded, 3 failed, 0 not run" in result.stdout
    with Butler(demo_repo, collections=[out]) as butler:
        last = butler.get("calibrate_log", instrument="DemoCam", exposure=2, detector=1)[-1]
        assert last["exception"]["type"] == "quantumgraph._exceptions.QuantumTimeoutError"
        assert "exceeded the per-quantum time limit of 0.5 s (--timeout)" in last["exception"]["message"]
        meta = butler.get("calibrate_metadata", instrument="DemoCam", exposure=2, detector=1)
        assert meta["succeeded"] is False and meta["wall_seconds"] < 10


def test_fail_fast_starts_nothing_after_the_first_failure(
    tmp_path: Path, demo_repo: Path, pipetask: Invoke
) -> None:
    pipeline = _write(
        tmp_path,
        "p.yaml",
        """\
        tasks:
          isr: quantumgraph.demo.tasks.Isr
          calibrate:
            class: quantumgraph.demo.tasks.Calibrate
            config:
              fail_detectors: [0]
          gather: quantumgraph.demo.tasks.Gather
        """,
    )
    result = pipetask("run", "-b", demo_repo, "-i", DEFAULTS, "-o", "u/t/ff", "-p", pipeline, "--fail-fast")
    assert result.exit_code == 1
    # The six isr quanta come first; the first calibrate fails; nothing else starts.
    assert "6 quanta succeeded, 1 failed, 8 not run" in result.stdout
    counts = _registered(demo_repo, "u/t/ff")
    assert counts["calibrate_metadata"] == 1 and "calexp" not in counts


def test_init_only_registers_configs_and_packages_and_runs_nothing(
    demo_repo: Path, pipeline_file: Path, pipetask: Invoke
) -> None:
    out = "u/t/init"
    result = pipetask(
        "run", "-b", demo_repo, "-i", DEFAULTS, "--output-run", out, "-p", pipeline_file, "--init-only"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("0 quanta succeeded, 0 failed")
    assert _registered(demo_repo, out) == {
        "isr_config": 1,
        "calibrate_config": 1,
        "gather_config": 1,
        "packages": 1,
    }


def test_config_overrides_and_task_selection(
    tmp_path: Path, demo_repo: Path, pipeline_file: Path, pipetask: Invoke
) -> None:
    override = _write(tmp_path, "cal.yaml", "scale: 5.0\n")
    base = ("qgraph", "-b", demo_repo, "-i", DEFAULTS, "-o", "u/t/cfg", "-p", pipeline_file)
    result = pipetask(
        *base, "-C", f"calibrate:{override}", "-c", "isr:offset=10", "--save-qgraph", tmp_path / "g"
    )
    assert result.exit_code == 0, result.output
    listed = pipetask("qgraph", "--qgraph", tmp_path / "g", "--show", "summary")
    assert listed.exit_code == 0
    from quantumgraph.cli._commands import load_graph

    configs = {label: dict(t.config) for label, t in load_graph(str(tmp_path / "g")).header.tasks.items()}
    assert configs["calibrate"]["scale"] == 5.0 and configs["isr"]["offset"] == 10.0

    selected = pipetask(*base, "--select-tasks", "isr", "--show", "summary")
    assert selected.exit_code == 0, selected.output
    assert [line.split()[0] for line in selected.stdout.splitlines()[1:-1]] == ["isr", "total"]

    bad_label = pipetask(*base, "-c", "nosuch:scale=1")
    assert bad_label.exit_code == 1
    assert bad_label.stderr.strip().splitlines()[-1] == (
        "error: -c 'nosuch:scale=1': no task labelled 'nosuch' in the pipeline "
        "(labels: isr, calibrate, gather)"
    )
    bad_field = pipetask(*base, "-c", "calibrate:scale=fast")
    assert bad_field.exit_code == 1
    assert "scale" in bad_field.stderr and "fast" in bad_field.stderr


def test_update_graph_run_gives_a_saved_graph_a_new_run_and_new_ids(
    tmp_path: Path, saved_graph: Path, demo_repo: Path, pipetask: Invoke, butler_cli: Invoke
) -> None:
    from quantumgraph.cli._commands import load_graph

    moved = tmp_path / "moved.qgraph"
    result = pipetask("update-graph-run", saved_graph, "u/tester/demo/run2", moved)
    assert result.exit_code == 0, result.output
    old, new = load_graph(str(saved_graph)), load_graph(str(moved))
    old_ids = {r.id for q in old.quanta for r in q.output_refs()} | {q.id for q in old.quanta}
    new_outputs = [r for q in new.quanta for r in q.output_refs()]
    assert {r.run for r in new_outputs} == {"u/tester/demo/run2"}
    assert old_ids.isdisjoint({r.id for r in new_outputs} | {q.id for q in new.quanta})
    for graph in (saved_graph, moved):  # both run, into their own runs
        assert pipetask("pre-exec-init-qbb", demo_repo, graph).exit_code == 0
        assert pipetask("run-qbb", demo_repo, graph).exit_code == 0
        merged = butler_cli("transfer-from-graph", graph, demo_repo)
        assert merged.exit_code == 0, merged.output
    assert _registered(demo_repo, "u/tester/demo/run2") == _registered(demo_repo, "u/tester/demo/run1")


def test_extra_qgraph_options_parse_like_the_command_line() -> None:
    options = parse_graph_options(
        "--skip-existing-in u/op/campaign -c 'calibrate:scale=3.0' --select-tasks isr"
    )
    assert options.skip_existing_in == ("u/op/campaign",)
    assert options.config_overrides == ("calibrate:scale=3.0",)
    assert options.select_tasks == ("isr",)
    with pytest.raises(GraphBuildError, match=r"^extraQgraphOptions '--no-such': No such option '--no-such'"):
        parse_graph_options("--no-such")

"""Pipeline YAML as LSST authors write it: imports, subsets, parameters, contracts, instrument,
``FILE#selection``, and where task modules are found.  Each feature also with a broken file whose
error must name the file and the key."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from quantumgraph import Pipeline, PipelineError

ISR = "quantumgraph.demo.tasks.Isr"
CAL = "quantumgraph.demo.tasks.Calibrate"
GATHER = "quantumgraph.demo.tasks.Gather"

BASE = f"""\
description: the demo chain
instrument: DemoCam
parameters:
  offset: 5.0
tasks:
  isr:
    class: {ISR}
    config:
      offset: parameters.offset
  calibrate: {CAL}
  gather: {GATHER}
subsets:
  perDetector: [isr, calibrate]
  summaries:
    subset: [gather]
    description: per-exposure summaries
contracts:
  - contract: calibrate.scale > 0
    msg: a negative scale flips every value
  - isr.connections.post_isr == 'postISR'
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write(tmp_path, "base.yaml", BASE)


def error_of(spec: str | Path) -> str:
    with pytest.raises(PipelineError) as info:
        Pipeline.from_file(spec)
    return str(info.value)


def test_base_file_loads_every_key(base: Path) -> None:
    p = Pipeline.from_file(base)
    assert list(p.tasks) == ["isr", "calibrate", "gather"]
    assert p.tasks["isr"].config.offset == 5.0  # parameters.offset substituted
    assert p.instrument == "DemoCam"
    assert p.subsets["perDetector"].labels == ("isr", "calibrate")
    assert p.subsets["summaries"].description == "per-exposure summaries"
    assert len(p.contracts) == 2
    assert base.parent in p.python_path


def test_import_with_exclude_extends_a_label_and_overrides_a_parameter(base: Path) -> None:
    top = write(
        base.parent,
        "top.yaml",
        f"""\
        description: top
        imports:
          - location: base.yaml
            exclude: [summaries]
        parameters:
          offset: 7.5
        tasks:
          calibrate:
            class: {CAL}
            config:
              scale: 3.0
        """,
    )
    p = Pipeline.from_file(top)
    assert list(p.tasks) == ["isr", "calibrate"]
    assert p.tasks["isr"].config.offset == 7.5  # the importing file's parameter wins
    assert p.tasks["calibrate"].config.scale == 3.0  # same class: the declaration is extended
    assert set(p.subsets) == {"perDetector"}  # 'summaries' named an excluded label
    assert p.instrument == "DemoCam" and p.description == "top"


def test_import_include_without_contracts_and_a_redeclared_label(base: Path) -> None:
    top = write(
        base.parent,
        "top.yaml",
        f"""\
        description: top
        imports:
          - location: base.yaml
            include: [perDetector]
            importContracts: false
        tasks:
          calibrate:
            class: {ISR}
            config:
              connections.raw: postISR
              connections.post_isr: otherCalexp
        """,
    )
    p = Pipeline.from_file(top)
    assert list(p.tasks) == ["isr", "calibrate"]
    assert p.tasks["calibrate"].class_path == ISR  # another class: replaced, not merged
    assert p.contracts == []


def test_contract_false_names_file_index_and_message(base: Path) -> None:
    top = write(
        base.parent,
        "top.yaml",
        f"""\
        description: top
        imports: [base.yaml]
        tasks:
          calibrate:
            class: {CAL}
            config: {{scale: -1.0}}
        """,
    )
    msg = error_of(top)
    assert f"{base}: contracts[0]" in msg
    assert "not satisfied: a negative scale flips every value" in msg


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        ("isr.offset ==", "contracts[0]: not a Python expression"),
        ("__import__('os').system('true')", "calls something other than"),
        ("isr.__class__", "private attribute"),
        ("[x for x in isr.offset]", "uses ListComp"),
        ("lambda: 1", "uses Lambda"),
        ("nosuch.offset > 0", "'nosuch', which is not a task label"),
        ("isr.ofset > 0", "task 'isr' has no config field 'ofset'"),
        ("isr.offset > 'a'", "could not be evaluated: TypeError"),
        ("'x' * 10000000 == ''", "repeats a sequence"),
    ],
)
def test_bad_contracts_are_refused_without_running_code(tmp_path: Path, contract: str, expected: str) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        f"description: c\ntasks:\n  isr: {ISR}\ncontracts:\n  - {contract!r}\n",
    )
    msg = error_of(path)
    assert str(path) in msg and expected in msg


def test_contracts_see_fields_connections_and_safe_functions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        f"""\
        description: c
        tasks:
          isr: {ISR}
          calibrate:
            class: {CAL}
            config: {{fail_detectors: [1, 2]}}
        contracts:
          - len(calibrate.fail_detectors) == 2 and max(calibrate.fail_detectors) < 3
          - isr.connections.post_isr == calibrate.connections.post_isr
          - not (isr.offset < 0) if calibrate.scale else False
          - "calibrate.fail_detectors[0] in (1, 2) and {{'a': 1}}['a'] == 1"
        """,
    )
    assert len(Pipeline.from_file(path).contracts) == 4


def test_python_config_block_is_refused_with_the_declarative_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        f"""\
        description: p
        tasks:
          isr:
            class: {ISR}
            config:
              python: |
                config.offset = 3.0
                config.scale = 2
        """,
    )
    msg = error_of(path)
    assert f"{path}: tasks.isr.config.python: executable configuration is not supported" in msg
    assert msg.endswith("set the fields as YAML values instead: config: {offset: 3.0, scale: 2}")
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("imports: [nope.yaml]\n", "imports[0].location: no pipeline file at"),
        ("imports: [{location: base.yaml, include: [isr], exclude: [gather]}]\n", "not both"),
        ("imports: [{location: base.yaml, include: [isrr]}]\n", "imports[0].include: 'isrr' is neither"),
        ("imports: [{location: base.yaml, exclude: [nope]}]\n", "imports[0].exclude: 'nope' is neither"),
        ("imports: [{location: base.yaml, importContracts: maybe}]\n", "importContracts: expected true"),
        ("imports: [{place: base.yaml}]\n", "imports[0]: unknown key(s) place"),
        (f"tasks: {{isr: {ISR}}}\nsubsets: {{s: [isr, nope]}}\n", "subsets.s: unknown task label(s) nope"),
        (f"tasks: {{isr: {ISR}}}\nsubsets: {{isr: [isr]}}\n", "subsets.isr: the name is also a task label"),
        (f"tasks: {{isr: {{class: {ISR}, config: {{offset: parameters.nope}}}}}}\n", "parameter 'nope'"),
        (f"tasks: {{isr: {ISR}}}\ninstrument: 'a b'\n", "instrument: 'a b' is not an instrument name"),
        (f"tasks: {{isr: {ISR}}}\npython_path: [missing]\n", "python_path[0]:"),
        (f"tasks: {{isr: {ISR}}}\ncontracts: [{{contract: 'isr.offset > 0', mesg: x}}]\n", "contracts[0]:"),
    ],
)
def test_broken_files_name_the_file_and_key(base: Path, text: str, expected: str) -> None:
    path = write(base.parent, "broken.yaml", "description: broken\n" + text)
    msg = error_of(path)
    assert str(path) in msg, msg
    assert expected in msg, msg


def test_parameter_missing_in_an_imported_file_names_that_file(tmp_path: Path) -> None:
    inner = write(
        tmp_path,
        "inner.yaml",
        f"description: i\ntasks: {{isr: {{class: {ISR}, config: {{offset: parameters.o}}}}}}\n",
    )
    outer = write(tmp_path, "outer.yaml", "description: o\nimports: [inner.yaml]\n")
    assert f"{inner}: tasks.isr.config.offset: parameter 'o' is not defined" in error_of(outer)
    fixed = write(tmp_path, "fixed.yaml", "description: o\nimports: [inner.yaml]\nparameters: {o: 4}\n")
    assert Pipeline.from_file(fixed).tasks["isr"].config.offset == 4.0


def test_import_cycle_and_duplicate_labels(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "description: a\nimports: [b.yaml]\n")
    b = write(tmp_path, "b.yaml", f"description: b\nimports: [a.yaml]\ntasks: {{isr: {ISR}}}\n")
    msg = error_of(tmp_path / "a.yaml")
    assert f"{b}: imports[0].location: import cycle:" in msg
    write(tmp_path, "x.yaml", f"description: x\ntasks: {{isr: {ISR}}}\n")
    write(tmp_path, "y.yaml", f"description: y\ntasks: {{isr: {ISR}}}\n")
    both = write(tmp_path, "both.yaml", "description: both\nimports: [x.yaml, y.yaml]\n")
    assert "imports[1]: task label 'isr' is declared by both" in error_of(both)


@pytest.mark.parametrize(
    ("selection", "labels"),
    [
        ("isr", ["isr"]),
        ("gather,isr", ["isr", "gather"]),
        ("perDetector", ["isr", "calibrate"]),
        ("summaries,isr", ["isr", "gather"]),
        ("..calibrate", ["isr", "calibrate"]),
        ("calibrate..", ["calibrate", "gather"]),
        ("isr..calibrate", ["isr", "calibrate"]),
        ("isr..gather", ["isr", "calibrate", "gather"]),
    ],
)
def test_selection_after_hash(base: Path, selection: str, labels: list[str]) -> None:
    p = Pipeline.from_file(f"{base}#{selection}")
    assert list(p.tasks) == labels
    assert all(set(s.labels) <= set(labels) for s in p.subsets.values())
    assert all(c.labels() <= set(labels) for c in p.contracts)
    assert p.instrument == "DemoCam"


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("nope", "'nope' is neither a task label"),
        ("isr..nope", "range end 'nope' is not a task label"),
        ("", "empty selection"),
    ],
)
def test_bad_selection(base: Path, selection: str, expected: str) -> None:
    msg = error_of(f"{base}#{selection}")
    assert f"{base}#{selection}" in msg and expected in msg


def test_selection_keeps_contracts_only_about_kept_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        f"""\
        description: p
        tasks:
          isr: {{class: {ISR}, config: {{offset: 9.0}}}}
          calibrate: {CAL}
        contracts: ["isr.offset == calibrate.scale"]
        """,
    )
    assert "not satisfied" in error_of(path)
    assert list(Pipeline.from_file(f"{path}#calibrate").tasks) == ["calibrate"]


def test_with_config_rechecks_contracts(base: Path) -> None:
    p = Pipeline.from_file(base)
    assert p.with_config("calibrate", {"scale": 4.0}).tasks["calibrate"].config.scale == 4.0
    with pytest.raises(PipelineError, match="negative scale"):
        p.with_config("calibrate", {"scale": -4.0})
    assert p.with_config("isr", {"offset": "parameters.offset"}).tasks["isr"].config.offset == 5.0


def task_module(directory: Path) -> str:
    """Write a task module with a fresh name into ``directory``; return its name."""
    name = f"mystats_{uuid.uuid4().hex[:8]}"
    write(
        directory,
        f"{name}.py",
        """\
        from quantumgraph import Input, Output, PipelineTask

        class Stats(PipelineTask):
            dimensions = ("instrument", "exposure", "detector")
            raw = Input("raw", "StructuredDataDict", ("instrument", "exposure", "detector"))
            stats = Output("rawStats", "StructuredDataDict", ("instrument", "exposure", "detector"))

            def run(self, raw):
                return {"stats": {"twice": raw["value"] * 2}}
        """,
    )
    return name


def test_task_module_next_to_the_pipeline_imports_without_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir("/")
    name = task_module(tmp_path / "work")
    path = write(tmp_path / "work", "p.yaml", f"description: p\ntasks: {{stats: {name}.Stats}}\n")
    p = Pipeline.from_file(path)
    assert p.tasks["stats"].task_class.__module__ == name
    assert (tmp_path / "work").resolve() in p.python_path


def test_python_path_key_is_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir("/")
    name = task_module(tmp_path / "code")
    path = write(tmp_path / "pipelines", "p.yaml", f"description: p\ntasks: {{s: {name}.Stats}}\n")
    msg = error_of(path)
    assert f"cannot import module {name!r}" in msg and "python_path" in msg
    path.write_text(f"description: p\npython_path: ../code\ntasks: {{s: {name}.Stats}}\n")
    assert (tmp_path / "code").resolve() in Pipeline.from_file(path).python_path


def test_conflicting_imported_parameters_need_the_importing_file_to_decide(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", f"description: a\nparameters: {{o: 1}}\ntasks: {{isr: {ISR}}}\n")
    write(tmp_path, "b.yaml", f"description: b\nparameters: {{o: 2}}\ntasks: {{cal: {CAL}}}\n")
    both = write(tmp_path, "both.yaml", "description: both\nimports: [a.yaml, b.yaml]\n")
    assert "imports[1]: parameter 'o' has different values" in error_of(both)
    both.write_text("description: both\nimports: [a.yaml, b.yaml]\nparameters: {o: 3}\n")
    assert Pipeline.from_file(both).parameters["o"] == 3


def test_to_yaml_round_trips_the_expanded_pipeline(base: Path) -> None:
    p = Pipeline.from_file(f"{base}#perDetector").with_config("calibrate", {"fail_detectors": (3, 4)})
    again = Pipeline.from_yaml(p.to_yaml())
    assert list(again.tasks) == ["isr", "calibrate"]
    assert again.tasks["isr"].config.offset == 5.0 and again.tasks["calibrate"].config.fail_detectors == [
        3,
        4,
    ]
    assert list(again.subsets) == ["perDetector"] and again.instrument == "DemoCam"
    assert [c.expression for c in again.contracts] == [c.expression for c in p.contracts]


def test_with_parameters_reaches_yaml_values_and_command_line_overrides(base: Path) -> None:
    p = Pipeline.from_file(base).with_config("calibrate", {"scale": "parameters.offset"})
    assert p.tasks["calibrate"].config.scale == 5.0
    q = p.with_parameters({"offset": 8.0})
    assert q.tasks["isr"].config.offset == 8.0 and q.tasks["calibrate"].config.scale == 8.0
    assert q.parameters["offset"] == 8.0 and p.tasks["isr"].config.offset == 5.0  # p is unchanged
    with pytest.raises(PipelineError, match=r"parameter\(s\) ofset not defined"):
        p.with_parameters({"ofset": 1.0})
    with pytest.raises(PipelineError, match="negative scale"):
        p.with_parameters({"offset": -1.0})
    with pytest.raises(PipelineError, match="config override for task 'isr': config.offset: parameter 'x'"):
        p.with_config("isr", {"offset": "parameters.x"})

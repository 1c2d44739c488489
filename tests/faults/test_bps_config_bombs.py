"""Submit-config inputs built to exhaust memory or time end quickly with one clear error.

Each bomb goes through the real ``bps prepare`` in a subprocess, so a regression that hangs or
eats memory fails the test (the subprocess timeout is a hang guard, not a speed assertion) and the
operator-visible output is what is checked: one ``error:`` line naming the file and the key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEADER = """\
pipelineYaml: pipeline.yaml
payload:
  payloadName: demo
  butlerConfig: repo
  inCollection: DemoCam/defaults
  output: "u/alice/demo"
"""
HANG_GUARD_SECONDS = 120


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _write(tmp_path / "pipeline.yaml", "tasks: {}\n")
    (tmp_path / "repo").mkdir()
    return tmp_path


def bps_prepare(config: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, USER="alice", SKYBATCH_RUNS_DIR=str(config.parent / "runs-index"))
    return subprocess.run(
        [str(Path(sys.executable).with_name("bps")), "prepare", str(config)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: submit config: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_include_of_dev_zero_is_refused_as_not_a_regular_file(folder: Path) -> None:
    config = _write(folder / "bomb.yaml", HEADER + "includeConfigs: [/dev/zero]\n")
    assert_one_line_error(
        bps_prepare(config), "includeConfigs[0]", "/dev/zero", "not a regular file", str(config)
    )


def test_huge_include_is_refused_by_size(folder: Path) -> None:
    big = folder / "big.yaml"
    with big.open("w") as stream:
        stream.write("vars:\n  pad: '")
        stream.write("x" * (11 * 1024 * 1024))
        stream.write("'\n")
    config = _write(folder / "bomb.yaml", HEADER + "includeConfigs: [big.yaml]\n")
    assert_one_line_error(bps_prepare(config), "includeConfigs[0]", str(big), "larger than")


def test_submit_yaml_that_is_a_directory(folder: Path) -> None:
    config = _write(folder / "bomb.yaml", HEADER + "includeConfigs: [repo]\n")
    assert_one_line_error(
        bps_prepare(config), "includeConfigs[0]", str(folder / "repo"), "not a regular file"
    )


def test_placeholders_doubling_forty_times_stop_at_the_length_cap(folder: Path) -> None:
    lines = ["vars:", "  v0: ab"] + [f'  v{i}: "{{v{i - 1}}}{{v{i - 1}}}"' for i in range(1, 41)]
    config = _write(folder / "bomb.yaml", HEADER + "\n".join(lines) + "\n")
    assert_one_line_error(bps_prepare(config), "vars.v", "expands to more than", str(config))


def test_yaml_alias_bomb_is_refused(folder: Path) -> None:
    bomb = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    text = HEADER + "vars:\n" + textwrap.indent("\n".join(bomb), "  ") + "\n"
    config = _write(folder / "bomb.yaml", text)
    assert_one_line_error(bps_prepare(config), str(config), "aliases expand to more than")


def test_nesting_depth_5000_is_a_clear_error_not_a_recursion_traceback(folder: Path) -> None:
    config = _write(folder / "bomb.yaml", HEADER + "vars:\n  deep: " + "[" * 5000 + "]" * 5000 + "\n")
    line = assert_one_line_error(bps_prepare(config), str(config), "nested deeper than")
    assert "RecursionError" not in line


def test_include_diamond_of_50_levels_loads_each_file_once(folder: Path) -> None:
    """Each level includes both files of the next: 2**50 loads without memoisation."""
    levels = 50
    _write(folder / f"inc{levels}a.yaml", "requestCpus: 1\n")
    _write(folder / f"inc{levels}b.yaml", "requestCpus: 1\n")
    for i in range(levels - 1, -1, -1):
        for side in "ab":
            _write(folder / f"inc{i}{side}.yaml", f"includeConfigs: [inc{i + 1}a.yaml, inc{i + 1}b.yaml]\n")
    config = _write(
        folder / "diamond.yaml",
        HEADER + "includeConfigs: [inc0a.yaml, inc0b.yaml]\nwmsServiceClass: no.such.Plugin\n",
    )
    result = bps_prepare(config)
    # The config itself loads; the (deliberately) unknown plugin is the first thing refused.
    assert result.returncode == 2 and "no.such.Plugin" in result.stderr, result.stderr[-3000:]


def test_include_cycle_is_named(folder: Path) -> None:
    _write(folder / "one.yaml", "includeConfigs: [two.yaml]\n")
    _write(folder / "two.yaml", "includeConfigs: [one.yaml]\n")
    config = _write(folder / "cyc.yaml", HEADER + "includeConfigs: [one.yaml]\n")
    assert_one_line_error(bps_prepare(config), "includeConfigs cycle", "one.yaml -> ", "two.yaml")


def test_submit_yaml_with_invalid_utf8_names_the_file(folder: Path) -> None:
    config = folder / "latin1.yaml"
    config.write_bytes(HEADER.encode() + "operator: Jos\xe9\n".encode("latin-1"))
    assert_one_line_error(bps_prepare(config), str(config), "not valid UTF-8", "byte")

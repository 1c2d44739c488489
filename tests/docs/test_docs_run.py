"""Docs that run: every shell command the docs mark runnable is executed, in order, and must succeed.

The convention (docs/architecture.md, "Docs that run"): a fenced code block directly below an HTML
comment containing ``runnable`` holds shell commands, one per line (``\\`` continues a line;
``#`` starts a comment).  Each Markdown file (README.md, docs/*.md) runs in its own scratch
directory holding a copy of ``submit_configs/``, with the installed console scripts first on
``PATH``, so ``butler``, ``pipetask``, ``bps`` and ``python`` are the ones under test.  Setting up
the environment (``python3 -m venv ...``, ``. .venv/bin/activate``, ``pip install ...``) is what
this test environment already is, so those steps of a ``&&`` chain are left out.
``<!-- runnable exit=N -->`` says a command is expected to exit with status N (a demonstrated
failure); otherwise it must exit 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
_MARKER = re.compile(r"<!--.*\brunnable\b(?:.*\bexit=(\d+))?.*-->")
_SETUP = re.compile(r"^(python3? -m venv\b|\. \S*/bin/activate$|source \S*/bin/activate$|pip install\b)")


@dataclass(frozen=True)
class DocCommand:
    line: int
    command: str
    exit_code: int


def runnable_commands(path: Path) -> list[DocCommand]:
    """The commands of ``path``'s runnable blocks, in document order, setup steps left out."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[DocCommand] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        # the comment lines directly above the fence decide whether the block runs
        j, marker = i - 1, None
        while j >= 0 and lines[j].strip().startswith("<!--"):
            marker = marker or _MARKER.search(lines[j])
            j -= 1
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if marker is not None:
            expected = int(marker.group(1) or 0)
            pending, start = "", 0
            for k in range(i + 1, end):
                text = lines[k].rstrip()
                if not pending:
                    start = k + 1
                if text.endswith("\\"):
                    pending += text[:-1] + " "
                    continue
                command, pending = (pending + text).strip(), ""
                if command and not command.startswith("#"):
                    kept = [part for part in command.split(" && ") if not _SETUP.match(part.strip())]
                    if kept:
                        found.append(DocCommand(start, " && ".join(kept), expected))
        i = end + 1
    return found


def test_the_docs_mark_their_commands_runnable() -> None:
    """The marker is in use where the quickstart lives (a typo would silently run nothing)."""
    for name in ("README.md", "quickstart.md", "bps.md"):
        path = REPO_ROOT / name if name == "README.md" else REPO_ROOT / "docs" / name
        assert runnable_commands(path), f"{name} has no runnable commands"


_RUNNABLE_DOCS = [p for p in DOC_FILES if runnable_commands(p)]


@pytest.mark.parametrize("doc", _RUNNABLE_DOCS, ids=[p.name for p in _RUNNABLE_DOCS])
def test_every_runnable_command_in_the_docs_succeeds(doc: Path, tmp_path: Path) -> None:
    commands = runnable_commands(doc)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    shutil.copytree(REPO_ROOT / "submit_configs", scratch / "submit_configs")
    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SKYBATCH_RUNS_DIR": str(tmp_path / "runs"),
        "VIRTUAL_ENV": os.path.dirname(bin_dir),
    }
    for cmd in commands:
        result = subprocess.run(
            ["bash", "-c", cmd.command],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == cmd.exit_code, (
            f"{doc.relative_to(REPO_ROOT)}:{cmd.line}: `{cmd.command}` exited {result.returncode} "
            f"(expected {cmd.exit_code})\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}"
        )

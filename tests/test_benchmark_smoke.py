"""Smoke test of ``benchmarks/workload.py``: it runs at W(2,2) and prints every stage it was asked for.

Only that the command works is checked; timings never go in tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "workload.py"

# The fast stages: everything but pipetask run, the merge and bps prepare.
STAGES = {
    1: "repo + dimension records",
    2: "E*D puts of raw",
    3: "QuantumGraph build",
    4: "graph file size",
    5: "whole-graph load",
    6: "one-quantum load",
    8: "one run-qbb job",
}


def test_workload_runs_at_w_2_2(tmp_path: Path) -> None:
    workdir = tmp_path / "bench"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--exposures",
            "2",
            "--detectors",
            "2",
            "--repeat",
            "1",
            "--stages",
            ",".join(str(n) for n in STAGES),
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for number, title in STAGES.items():
        assert f"[{number}] {title}:" in out, out
    assert "FAILED" not in out, out
    assert "W(2,2) against the targets" in out
    assert not workdir.exists(), "a work directory the script created must be removed without --keep"

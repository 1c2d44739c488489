"""Golden files for the htcondor plugin tests: where they live and how to refresh them.

Run the tests with ``SKYBATCH_UPDATE_GOLDEN=1`` to rewrite the expected files from the current
code (then read the diff before committing it: the golden files are the review).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "data" / "htcondor"
UPDATE = os.environ.get("SKYBATCH_UPDATE_GOLDEN") == "1"


def check_text(path: Path, actual: str) -> None:
    if UPDATE or not path.exists():
        if not UPDATE:
            raise AssertionError(
                f"missing golden file {path}; run with SKYBATCH_UPDATE_GOLDEN=1 to create it"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path} differs (SKYBATCH_UPDATE_GOLDEN=1 rewrites it; review the diff)"


def check_json(path: Path, actual: Any) -> None:
    check_text(path, json.dumps(actual, indent=1, sort_keys=True) + "\n")

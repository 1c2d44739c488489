"""Where the Parsl plugin keeps things inside a submit directory (one place, used by run and report)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bps.wms import STATE_FILENAME


@dataclass(frozen=True, slots=True)
class ParslLayout:
    submit_dir: Path

    @property
    def state_file(self) -> Path:
        return self.submit_dir / STATE_FILENAME

    @property
    def events_file(self) -> Path:
        """Append-only ``start`` events from workers (JSON lines)."""
        return self.submit_dir / "parsl_events.jsonl"

    @property
    def site_file(self) -> Path:
        """The validated site settings, so ``restart`` rebuilds the same executors."""
        return self.submit_dir / "parsl_site.json"

    @property
    def parsl_dir(self) -> Path:
        """Parsl's own run directory (its logs, per-run subfolders)."""
        return self.submit_dir / "parsl"

    def stdout(self, label: str, name: str) -> Path:
        return self.submit_dir / "logs" / label / f"{name}.out"

    def stderr(self, label: str, name: str) -> Path:
        return self.submit_dir / "logs" / label / f"{name}.err"

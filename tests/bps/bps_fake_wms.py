"""A WMS plugin for tests: found by dotted path, keeps its runs in the submit directory as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from bps.config import BpsConfig
from bps.wms import BaseWmsService, JobReport, JobState, RunReport, WmsWorkflow
from bps.workflow import WorkflowGraph


class FakeService(BaseWmsService):
    """Pretends to hand the workflow to a scheduler: every job is PENDING until ``cancel``."""

    def prepare(self, config: BpsConfig, workflow: WorkflowGraph, submit_dir: Path) -> WmsWorkflow:
        (submit_dir / "fake.json").write_text(json.dumps({j.name: j.label for j in workflow}))
        return WmsWorkflow(workflow.name, submit_dir, workflow)

    def submit(self, wms_workflow: WmsWorkflow) -> str:
        (wms_workflow.submit_dir / "fake.submitted").write_text("PENDING")
        return f"fake:{wms_workflow.submit_dir}"

    def _dir(self, run_id: str) -> Path:
        return Path(run_id.removeprefix("fake:"))

    def report(self, run_id: str | None = None) -> list[RunReport]:
        if run_id is None:
            return []
        folder = self._dir(run_id)
        state = JobState((folder / "fake.submitted").read_text())
        jobs = json.loads((folder / "fake.json").read_text())
        reports = tuple(JobReport(name, label, state) for name, label in jobs.items())
        return [RunReport(run_id, state, folder, reports)]

    def cancel(self, run_id: str) -> None:
        (self._dir(run_id) / "fake.submitted").write_text("DELETED")

    def restart(self, run_id: str) -> str:
        (self._dir(run_id) / "fake.submitted").write_text("PENDING")
        return run_id


class NotAService:
    """Not a BaseWmsService subclass."""

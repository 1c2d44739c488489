"""The task module of docs/pipelines.md: it lives next to its pipeline file, not in a package.

``pipetask`` and bps find it because the pipeline's directory is on the task search path (see
docs/pipelines.md, "How tasks are found"); nothing is installed and PYTHONPATH is not set.
"""

from __future__ import annotations

from typing import Any

from quantumgraph import Input, Output, PipelineTask


class DetectorStats(PipelineTask):
    """Per (exposure, detector): the calibrated value scaled by ``gain``, with the quantum's data ID."""

    dimensions = ("instrument", "exposure", "detector")
    calexp = Input("calexp", "StructuredDataDict", ("instrument", "exposure", "detector"))
    stats = Output("detectorStats", "StructuredDataDict", ("instrument", "exposure", "detector"))

    class Config(PipelineTask.Config):
        gain: float = 1.0

    def run(self, calexp: dict[str, Any], *, data_id: Any) -> dict[str, Any]:
        return {
            "stats": {
                "exposure": data_id["exposure"],
                "detector": data_id["detector"],
                "value": calexp["value"] * self.config.gain,
            }
        }


class ExposureStats(PipelineTask):
    """Per exposure: the largest detector value, gathered over every detector of the exposure."""

    dimensions = ("instrument", "exposure")
    stats = Input(
        "detectorStats", "StructuredDataDict", ("instrument", "exposure", "detector"), multiple=True
    )
    peak = Output("exposurePeak", "StructuredDataDict", ("instrument", "exposure"))

    def run(self, stats: list[dict[str, Any]]) -> dict[str, Any]:
        best = max(stats, key=lambda s: s["value"])
        return {"peak": {"detector": best["detector"], "value": best["value"]}}

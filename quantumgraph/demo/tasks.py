"""The demo pipeline's tasks: ``isr`` and ``calibrate`` per (exposure, detector), ``gather`` per exposure.

They do trivial arithmetic on small dicts, so a campaign of thousands of quanta runs in seconds
and every number in the outputs can be checked by hand.
"""

from __future__ import annotations

from typing import Any

from quantumgraph import Input, Output, PipelineTask


class Isr(PipelineTask):
    """Instrument signature removal: adds ``offset`` to the raw value."""

    dimensions = ("instrument", "exposure", "detector")
    raw = Input("raw", "StructuredDataDict", ("instrument", "exposure", "detector"))
    post_isr = Output("postISR", "StructuredDataDict", ("instrument", "exposure", "detector"))

    class Config(PipelineTask.Config):
        offset: float = 1.0

    def run(self, raw: dict[str, Any]) -> dict[str, Any]:
        post_isr = {k: v for k, v in raw.items() if k in ("exposure", "detector")}
        post_isr["value"] = raw["value"] + self.config.offset
        return {"post_isr": post_isr}


class Calibrate(PipelineTask):
    """Scales the ISR-corrected value; raises on the detectors listed in ``fail_detectors``.

    ``fail_detectors`` exists so operators and tests can see what a failed quantum looks like.
    """

    dimensions = ("instrument", "exposure", "detector")
    post_isr = Input("postISR", "StructuredDataDict", ("instrument", "exposure", "detector"))
    calexp = Output("calexp", "StructuredDataDict", ("instrument", "exposure", "detector"))

    class Config(PipelineTask.Config):
        scale: float = 2.0
        fail_detectors: list[int] = []

    def run(self, post_isr: dict[str, Any]) -> dict[str, Any]:
        if post_isr.get("detector") in self.config.fail_detectors:
            raise RuntimeError(f"calibration failed on detector {post_isr['detector']} (fail_detectors)")
        calexp = dict(post_isr)
        calexp["value"] = post_isr["value"] * self.config.scale
        return {"calexp": calexp}


class Gather(PipelineTask):
    """Summarises all detectors of one exposure: count, sum and mean of the calibrated values."""

    dimensions = ("instrument", "exposure")
    calexps = Input("calexp", "StructuredDataDict", ("instrument", "exposure", "detector"), multiple=True)
    summary = Output("summary", "StructuredDataDict", ("instrument", "exposure"))

    def run(self, calexps: list[dict[str, Any]]) -> dict[str, Any]:
        values = [c["value"] for c in calexps]
        return {
            "summary": {"n_detectors": len(values), "sum": sum(values), "mean": sum(values) / len(values)}
        }

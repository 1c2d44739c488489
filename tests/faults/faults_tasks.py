"""Tasks the fault-injection tests run through real pipelines (importable by class path)."""

from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np

from quantumgraph import Input, Output, PipelineTask


class BigImage(PipelineTask):
    """Turns a post-ISR value into an image of ``size`` floats: big enough to fill a small disk."""

    dimensions = ("instrument", "exposure", "detector")
    post_isr = Input("postISR", "StructuredDataDict", ("instrument", "exposure", "detector"))
    image = Output("image", "NumpyArray", ("instrument", "exposure", "detector"))

    class Config(PipelineTask.Config):
        size: int = 512 * 1024

    def run(self, post_isr: dict[str, Any]) -> dict[str, Any]:
        return {"image": np.full(self.config.size, float(post_isr["value"]))}


#: Environment variable naming the detector whose quantum kills its own process with SIGKILL.
KILL_DETECTOR_ENV = "SKYBATCH_TEST_KILL_DETECTOR"
#: Environment variable that overrides the scale: a rerun that produces different bytes.
SCALE_ENV = "SKYBATCH_TEST_SCALE"


class CalibrateOrDie(PipelineTask):
    """The demo's calibrate (value * scale), but SIGKILLs its process on one chosen detector.

    The chosen point is "inside run(), before any output of this quantum is written": what a
    batch job killed by the scheduler (memory, wall time, pre-emption) looks like.
    """

    dimensions = ("instrument", "exposure", "detector")
    post_isr = Input("postISR", "StructuredDataDict", ("instrument", "exposure", "detector"))
    calexp = Output("calexp", "StructuredDataDict", ("instrument", "exposure", "detector"))

    class Config(PipelineTask.Config):
        scale: float = 2.0

    def run(self, post_isr: dict[str, Any]) -> dict[str, Any]:
        if os.environ.get(KILL_DETECTOR_ENV) == str(post_isr["detector"]):
            os.kill(os.getpid(), signal.SIGKILL)
        calexp = dict(post_isr)
        calexp["value"] = post_isr["value"] * float(os.environ.get(SCALE_ENV, self.config.scale))
        return {"calexp": calexp}

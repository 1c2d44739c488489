"""Tasks the fault-injection tests run through real pipelines (importable by class path)."""

from __future__ import annotations

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

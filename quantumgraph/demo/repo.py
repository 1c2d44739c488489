"""Make a demo repository: one instrument, E exposures x D detectors of synthetic ``raw`` data.

The raw value of (exposure e, detector d) is ``100 * e + d`` so that every downstream number in
the demo pipeline can be predicted: postISR = raw + offset, calexp = postISR * scale.

:func:`make_demo_repo` does it all; its two steps are also public so that the benchmark
(``benchmarks/workload.py``) can time them apart: :func:`create_demo_repo` (the repository, the
dimension records, the ``raw`` dataset type and collections) and :func:`put_demo_raws` (the puts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from butler import Butler

INSTRUMENT = "DemoCam"
RAW_RUN = f"{INSTRUMENT}/raw/all"
DEFAULTS = f"{INSTRUMENT}/defaults"
FILTERS = (("g_01", "g"), ("r_03", "r"), ("i_06", "i"))
DAY_OBS = 20261126
RAW = "raw"
RAW_DIMENSIONS = ("instrument", "exposure", "detector")
RAW_STORAGE_CLASS = "StructuredDataDict"


def raw_value(exposure: int, detector: int) -> float:
    """The synthetic raw value the demo stores for one (exposure, detector)."""
    return float(100 * exposure + detector)


def insert_demo_dimension_records(butler: Butler, exposures: int, detectors: int) -> None:
    """Insert the instrument, bands, physical filters, detectors, day_obs and exposures, in one transaction.

    Exposures are numbered 1..E and cycle through the g, r, i filters; detectors are 0..D-1.
    """
    reg = butler.registry
    with reg.transaction():
        reg.insert_dimension_records(
            "instrument",
            [
                {
                    "name": INSTRUMENT,
                    "detector_max": detectors,
                    "visit_max": 10**6,
                    "class_name": "quantumgraph.demo.DemoCam",
                }
            ],
        )
        reg.insert_dimension_records("band", [{"name": band} for _, band in FILTERS])
        reg.insert_dimension_records(
            "physical_filter", [{"instrument": INSTRUMENT, "name": pf, "band": band} for pf, band in FILTERS]
        )
        reg.insert_dimension_records(
            "detector",
            [
                {"instrument": INSTRUMENT, "id": d, "full_name": f"S{d:03d}", "purpose": "SCIENCE"}
                for d in range(detectors)
            ],
        )
        reg.insert_dimension_records("day_obs", [{"instrument": INSTRUMENT, "id": DAY_OBS}])
        reg.insert_dimension_records(
            "exposure",
            [
                {
                    "instrument": INSTRUMENT,
                    "id": e,
                    "physical_filter": FILTERS[(e - 1) % len(FILTERS)][0],
                    "day_obs": DAY_OBS,
                    "obs_id": f"DC_O_{DAY_OBS}_{e:06d}",
                    "exposure_time": 15.0 if e % 2 else 30.0,
                    "observation_type": "science",
                    "seq_num": e,
                }
                for e in range(1, exposures + 1)
            ],
        )


def register_demo_collections(butler: Butler) -> None:
    """Register the ``raw`` dataset type, the RUN ``DemoCam/raw/all`` and the chain ``DemoCam/defaults``."""
    from butler import DatasetType

    reg = butler.registry
    reg.register_dataset_type(DatasetType.build(RAW, RAW_DIMENSIONS, RAW_STORAGE_CLASS, butler.universe))
    reg.register_run(RAW_RUN)
    reg.register_chain(DEFAULTS, [RAW_RUN])


def create_demo_repo(path: str | Path, exposures: int = 4, detectors: int = 4) -> Butler:
    """Create ``path`` with everything but the raws; returns the Butler.  Refuses an existing repo."""
    from butler import Butler

    butler = Butler.create(path)
    insert_demo_dimension_records(butler, exposures, detectors)
    register_demo_collections(butler)
    return butler


def put_demo_raws(
    butler: Butler, exposures: int, detectors: int, progress: Callable[[int], None] | None = None
) -> int:
    """Put one ``raw`` per (exposure, detector) into ``DemoCam/raw/all``; returns how many were put."""
    raw = butler.registry.get_dataset_type(RAW)
    count = 0
    for e in range(1, exposures + 1):
        for d in range(detectors):
            butler.put(
                {"value": raw_value(e, d), "exposure": e, "detector": d},
                raw,
                run=RAW_RUN,
                instrument=INSTRUMENT,
                exposure=e,
                detector=d,
            )
            count += 1
            if progress is not None:
                progress(1)
    return count


def make_demo_repo(
    path: str | Path, exposures: int = 4, detectors: int = 4, progress: Callable[[int], None] | None = None
) -> Butler:
    """Create ``path`` and fill it; returns the Butler.  Refuses a path that already holds a repo.

    Exposures are numbered 1..E and cycle through the g, r, i filters; detectors are 0..D-1.
    Raws go to the RUN ``DemoCam/raw/all``; the CHAINED collection ``DemoCam/defaults`` points
    at it and is the input collection the quickstart uses.
    """
    butler = create_demo_repo(path, exposures, detectors)
    put_demo_raws(butler, exposures, detectors, progress)
    return butler

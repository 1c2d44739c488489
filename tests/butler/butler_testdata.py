"""Test data shared by the butler tests (a module, not conftest, so tests can import it by name)."""

from __future__ import annotations

from typing import Any

#: Exposures 1..6: odd ones through r_01 (band r), even ones through g_01 (band g);
#: exposure_time = 5 * id, so "exposure.exposure_time > 10" selects exposures 3..6.
EXPOSURES = tuple(range(1, 7))
DETECTORS = (1, 2, 3)


def dimension_data() -> dict[str, list[dict[str, Any]]]:
    """A small instrument with two filters, three detectors and six exposures."""
    return {
        "instrument": [{"name": "Cam", "detector_max": 3, "class_name": "test.Cam"}],
        "band": [{"name": "r"}, {"name": "g"}],
        "physical_filter": [
            {"instrument": "Cam", "name": "r_01", "band": "r"},
            {"instrument": "Cam", "name": "g_01", "band": "g"},
        ],
        "day_obs": [
            {"instrument": "Cam", "id": 20260101, "timespan": {"begin": "2026-01-01", "end": "2026-01-02"}}
        ],
        "detector": [{"instrument": "Cam", "id": d, "full_name": f"S{d:02d}"} for d in DETECTORS],
        "exposure": [
            {
                "instrument": "Cam",
                "id": e,
                "physical_filter": "r_01" if e % 2 else "g_01",
                "day_obs": 20260101,
                "exposure_time": 5.0 * e,
                "observation_type": "science" if e < 6 else "flat",
                "seq_num": e,
            }
            for e in EXPOSURES
        ],
        "skymap": [{"name": "sky"}],
        "tract": [{"skymap": "sky", "id": 0}],
        "patch": [{"skymap": "sky", "tract": 0, "id": p} for p in range(2)],
    }

"""The Parsl plugin's typed reading of ``site: {<computeSite>: {...}}``.

Keys (all optional)::

    executor:   threads (default) | htex
    maxThreads: worker threads of the threads executor (default 2)
    maxWorkers: worker processes of the HighThroughputExecutor (default 2)
    workerInit: shell lines run before an htex worker pool starts (default: put this Python's
                bin directory first on PATH so the pool and the job commands are found)
    address:    address htex workers use to reach the interchange (default 127.0.0.1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bps.config import SiteConfig

ExecutorKind = Literal["threads", "htex"]
_KEYS = ("executor", "maxThreads", "maxWorkers", "workerInit", "address")


@dataclass(frozen=True, slots=True)
class ParslSiteSettings:
    executor: ExecutorKind = "threads"
    max_threads: int = 2
    max_workers: int = 2
    worker_init: str = ""
    address: str = "127.0.0.1"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParslSiteSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _positive_int(site: SiteConfig, key: str, default: int) -> int:
    value = site.settings.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise site.error(key, f"expected a positive integer, got {value!r}")
    return value


def _string(site: SiteConfig, key: str, default: str) -> str:
    value = site.settings.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise site.error(key, f"expected a string, got {value!r}")
    return value


def site_settings(site: SiteConfig) -> ParslSiteSettings:
    """Validate the compute site's settings; unknown keys are errors (typos must not pass silently)."""
    for key in site.settings:
        if key not in _KEYS:
            raise site.error(key, f"unknown key for the parsl plugin; known keys: {', '.join(_KEYS)}")
    executor = _string(site, "executor", "threads").lower()
    if executor not in ("threads", "htex"):
        raise site.error("executor", f"expected threads or htex, got {executor!r}")
    return ParslSiteSettings(
        executor="htex" if executor == "htex" else "threads",
        max_threads=_positive_int(site, "maxThreads", 2),
        max_workers=_positive_int(site, "maxWorkers", 2),
        worker_init=_string(site, "workerInit", ""),
        address=_string(site, "address", "127.0.0.1"),
    )

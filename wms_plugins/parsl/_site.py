"""The Parsl plugin's typed reading of ``site: {<computeSite>: {...}}``.

Keys (all optional)::

    executor:   threads (default) | htex
    maxThreads: worker threads of the threads executor (default 2)
    maxWorkers: worker processes of the HighThroughputExecutor (default 2)
    workerInit: shell lines run before an htex worker pool starts (default: put this Python's
                bin directory first on PATH so the pool and the job commands are found)
    address:    address htex workers use to reach the interchange (default 127.0.0.1; with
                provider slurm: every address of this host)
    provider:   where htex gets its workers: local (default, this machine) | slurm (batch jobs)

With ``provider: slurm`` (a Parsl SlurmProvider; each block is one SLURM job of ``nodes`` nodes)::

    partition:        SLURM partition (required)
    account, qos:     SLURM account and quality of service (optional)
    nodes:            nodes per block (default 1)
    maxBlocks:        at most this many blocks (SLURM jobs) at once (default 1)
    walltime:         wall time of each block, HH:MM:SS (default 01:00:00)
    schedulerOptions: extra ``#SBATCH`` lines, as written
    exclusive:        ask for whole nodes (default true)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bps.config import SiteConfig

ExecutorKind = Literal["threads", "htex"]
ProviderKind = Literal["local", "slurm"]
_KEYS = ("executor", "maxThreads", "maxWorkers", "workerInit", "address", "provider")
_SLURM_KEYS = (
    "partition",
    "account",
    "qos",
    "nodes",
    "maxBlocks",
    "walltime",
    "schedulerOptions",
    "exclusive",
)
_WALLTIME = re.compile(r"^(\d+-)?\d{1,3}:[0-5]\d:[0-5]\d$")


@dataclass(frozen=True, slots=True)
class SlurmSettings:
    """A SlurmProvider's settings (``provider: slurm``)."""

    partition: str
    account: str = ""
    qos: str = ""
    nodes: int = 1
    max_blocks: int = 1
    walltime: str = "01:00:00"
    scheduler_options: str = ""
    exclusive: bool = True


@dataclass(frozen=True, slots=True)
class ParslSiteSettings:
    executor: ExecutorKind = "threads"
    max_threads: int = 2
    max_workers: int = 2
    worker_init: str = ""
    address: str = "127.0.0.1"
    slurm: SlurmSettings | None = None
    """Set for ``provider: slurm``: htex workers come from SLURM jobs."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParslSiteSettings:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if values.get("slurm") is not None:
            slurm = values["slurm"]
            values["slurm"] = SlurmSettings(
                **{k: v for k, v in slurm.items() if k in SlurmSettings.__dataclass_fields__}
            )
        return cls(**values)


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


def _slurm(site: SiteConfig) -> SlurmSettings:
    partition = _string(site, "partition", "")
    if not partition:
        raise site.error("partition", "required with provider: slurm (the SLURM partition to submit to)")
    walltime = _string(site, "walltime", "01:00:00")
    if not _WALLTIME.match(walltime):
        raise site.error("walltime", f"expected HH:MM:SS (or D-HH:MM:SS), got {walltime!r}")
    exclusive = site.settings.get("exclusive", True)
    if not isinstance(exclusive, bool):
        raise site.error("exclusive", f"expected true or false, got {exclusive!r}")
    return SlurmSettings(
        partition=partition,
        account=_string(site, "account", ""),
        qos=_string(site, "qos", ""),
        nodes=_positive_int(site, "nodes", 1),
        max_blocks=_positive_int(site, "maxBlocks", 1),
        walltime=walltime,
        scheduler_options=_string(site, "schedulerOptions", ""),
        exclusive=exclusive,
    )


def site_settings(site: SiteConfig) -> ParslSiteSettings:
    """Validate the compute site's settings; unknown keys are errors (typos must not pass silently)."""
    provider = _string(site, "provider", "local").lower()
    if provider not in ("local", "slurm"):
        raise site.error("provider", f"expected local or slurm, got {provider!r}")
    known = _KEYS + _SLURM_KEYS if provider == "slurm" else _KEYS
    for key in site.settings:
        if key not in known:
            hint = " (SLURM keys need provider: slurm)" if key in _SLURM_KEYS else ""
            raise site.error(key, f"unknown key for the parsl plugin{hint}; known keys: {', '.join(known)}")
    executor = _string(site, "executor", "threads").lower()
    if executor not in ("threads", "htex"):
        raise site.error("executor", f"expected threads or htex, got {executor!r}")
    if provider == "slurm" and executor != "htex":
        raise site.error("provider", "provider: slurm needs executor: htex")
    return ParslSiteSettings(
        executor="htex" if executor == "htex" else "threads",
        max_threads=_positive_int(site, "maxThreads", 2),
        max_workers=_positive_int(site, "maxWorkers", 2),
        worker_init=_string(site, "workerInit", ""),
        # SLURM workers run elsewhere: without an address Parsl offers all of this host's.
        address=_string(site, "address", "" if provider == "slurm" else "127.0.0.1"),
        slurm=_slurm(site) if provider == "slurm" else None,
    )

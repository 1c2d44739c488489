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

import logging
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
_LOG = logging.getLogger(__name__)

#: LSST ctrl_bps_parsl's generic site classes and what they are here.
LSST_LOCAL_CLASS = "lsst.ctrl.bps.parsl.sites.Local"
LSST_SLURM_CLASS = "lsst.ctrl.bps.parsl.sites.Slurm"
#: LSST ctrl_bps_parsl site keys -> ours (same meaning).
_LSST_RENAMES = {
    "cores": "maxThreads",
    "max_blocks": "maxBlocks",
    "scheduler_options": "schedulerOptions",
}
#: LSST ctrl_bps_parsl site keys accepted with a warning: what the plugin does instead.
_LSST_ACCEPTED = {
    "retries": "jobs are retried per numberOfRetries (and retryUnlessExit), not by Parsl",
    "run_dir": "Parsl's run directory is always <submit dir>/parsl/",
    "monitorEnable": "Parsl monitoring is not started; bps report reads the plugin's journal",
    "monitorInterval": "Parsl monitoring is not started",
    "monitorFilename": "Parsl monitoring is not started",
    "environment": "local workers inherit bps's environment; list variables under environment: instead",
    "commandPrefix": "jobs run their command directly; put setup in the environment or workerInit",
    "mem_per_node": "memory is left to SLURM's default for the partition",
    "cores_per_node": "htex starts maxWorkers workers per node",
    "cmd_timeout": "Parsl's default scheduler timeout is used",
    "strategy": "Parsl's default scaling strategy is used",
}


def translate_lsst_site(site: SiteConfig) -> SiteConfig:
    """An LSST ctrl_bps_parsl ``site:`` entry (``class:`` and its keys) as this plugin's settings.

    ``class: lsst.ctrl.bps.parsl.sites.Local`` is the threads executor (``cores`` threads);
    ``...sites.Slurm`` is htex on a SlurmProvider.  LSST's classes for one named site (Princeton's
    Tiger, SLAC's Sdf, NERSC's Cori, CC-IN2P3, work queue) are refused: they hold that site's
    settings, which skybatch does not ship.  Other LSST keys warn once and say what happens instead.
    """
    settings = dict(site.settings)
    if "class" not in settings and not any(k in settings for k in (*_LSST_RENAMES, *_LSST_ACCEPTED)):
        return site
    cls = settings.pop("class", None)
    if cls == LSST_LOCAL_CLASS:
        settings.setdefault("executor", "threads")
    elif cls == LSST_SLURM_CLASS:
        settings.setdefault("executor", "htex")
        settings.setdefault("provider", "slurm")
    elif cls is not None:
        raise site.error(
            "class",
            f"{cls} is LSST's configuration of one particular site, which skybatch does not ship; use class "
            f"{LSST_SLURM_CLASS} (or provider: slurm) with that site's partition, or {LSST_LOCAL_CLASS}",
        )
    for lsst_key, ours in _LSST_RENAMES.items():
        if lsst_key in settings:
            settings.setdefault(ours, settings.pop(lsst_key))
    for key, instead in _LSST_ACCEPTED.items():
        if key in settings:
            settings.pop(key)
            where = site.sources.get(key) or site.sources.get("", "the submit config")
            _LOG.warning(
                "site.%s.%s: accepted for LSST compatibility and not used; %s (in %s)",
                site.name,
                key,
                instead,
                where,
            )
    return SiteConfig(site.name, settings, site.sources)


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
    site = translate_lsst_site(site)
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

"""The HTCondor plugin's typed reading of ``site: {<computeSite>: {...}}``.

Keys (all optional)::

    requirements:      a ClassAd expression every job's slot must satisfy
                       (e.g. ``(OpSys == "LINUX") && (Arch == "X86_64")``)
    accountingGroup:   ``accounting_group`` of every job (fair-share group)
    accountingUser:    ``accounting_group_user`` (defaults to the submitting user)
    submitCommands:    mapping of extra submit-description commands added to every job, as written
                       (``+ProjectName: '"survey"'``, ``rank: Memory``); they come last, so they win
    getenv:            true | false | a comma list of variable names (default true: jobs see the
                       environment DAGMan runs with, which condor_submit_dag took from ``bps submit``)
    environment:       mapping NAME: value, set in every job's environment
    maxIdle:           DAGMAN_MAX_JOBS_IDLE: DAGMan stops submitting while this many jobs are idle
                       (default 1000)
    maxJobs:           DAGMAN_MAX_JOBS_SUBMITTED: at most this many node jobs in the queue (default 0:
                       no limit)
    dagmanConfig:      mapping of further DAGMan configuration knobs written into the DAG's config
                       file (``DAGMAN_USER_LOG_SCAN_INTERVAL: 1``)
    nodeStatusInterval: seconds between rewrites of the node status file ``bps report`` reads
                       (default 10; DAGMan also rewrites it when the DAG ends)
    batchName:         the DAG's JobBatchName in condor_q (default: the workflow name)
    schedd:            name of the schedd to submit to (default: the local one)
    enforceMemory:     hold-and-remove any job whose MemoryUsage exceeds its request_memory even
                       when it has no memoryMultiplier (default false; see docs/operator-guide.md)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bps.config import SiteConfig

_KEYS = (
    "requirements",
    "accountingGroup",
    "accountingUser",
    "submitCommands",
    "getenv",
    "environment",
    "maxIdle",
    "maxJobs",
    "dagmanConfig",
    "nodeStatusInterval",
    "batchName",
    "schedd",
    "enforceMemory",
)
#: Submit commands the plugin writes itself; overriding them would break reporting or retries.
RESERVED_SUBMIT_COMMANDS = frozenset(
    {"executable", "arguments", "output", "error", "log", "initialdir", "queue", "universe"}
)
_SUBMIT_KEY = re.compile(r"^\+?[A-Za-z_][A-Za-z0-9_.]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DAGMAN_KNOB = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HTCondorSiteSettings:
    """Validated site settings (defaults are what an empty ``site`` entry means)."""

    requirements: str = ""
    accounting_group: str = ""
    accounting_user: str = ""
    submit_commands: tuple[tuple[str, str], ...] = ()
    getenv: str = "true"
    environment: tuple[tuple[str, str], ...] = ()
    max_idle: int = 1000
    max_jobs: int = 0
    dagman_config: tuple[tuple[str, str], ...] = ()
    node_status_interval: int = 10
    batch_name: str = ""
    schedd: str = ""
    enforce_memory: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "requirements": self.requirements,
            "accounting_group": self.accounting_group,
            "accounting_user": self.accounting_user,
            "submit_commands": [list(kv) for kv in self.submit_commands],
            "getenv": self.getenv,
            "environment": [list(kv) for kv in self.environment],
            "max_idle": self.max_idle,
            "max_jobs": self.max_jobs,
            "dagman_config": [list(kv) for kv in self.dagman_config],
            "node_status_interval": self.node_status_interval,
            "batch_name": self.batch_name,
            "schedd": self.schedd,
            "enforce_memory": self.enforce_memory,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HTCondorSiteSettings:
        pairs = ("submit_commands", "environment", "dagman_config")
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in pairs:
            if key in values:
                values[key] = tuple((str(a), str(b)) for a, b in values[key])
        return cls(**values)


def _string(site: SiteConfig, key: str) -> str:
    value = site.settings.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise site.error(key, f"expected a string, got {value!r}")
    text = str(value)
    if "\n" in text:
        raise site.error(key, "must be a single line")
    return text.strip()


def _int(site: SiteConfig, key: str, default: int, minimum: int) -> int:
    value = site.settings.get(key, default)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise site.error(key, f"expected an integer of at least {minimum}, got {value!r}")
    return value


def _bool(site: SiteConfig, key: str, default: bool) -> bool:
    value = site.settings.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise site.error(key, f"expected true or false, got {value!r}")
    return value


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _mapping(
    site: SiteConfig, key: str, name_pattern: re.Pattern[str], what: str
) -> tuple[tuple[str, str], ...]:
    value = site.settings.get(key)
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise site.error(key, f"expected a mapping of {what} to values, got {value!r}")
    out = []
    for name, item in value.items():
        name = str(name)
        if not name_pattern.match(name):
            raise site.error(f"{key}.{name}", f"not a valid {what}")
        text = _scalar_text(item)
        if text is None or "\n" in text:
            raise site.error(f"{key}.{name}", f"expected a single-line string or number, got {item!r}")
        out.append((name, text))
    return tuple(out)


def _getenv(site: SiteConfig) -> str:
    value = site.settings.get("getenv", True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip():
        names = [n.strip() for n in value.split(",") if n.strip()]
        if value.strip().lower() in ("true", "false"):
            return value.strip().lower()
        if all(_ENV_NAME.match(n.rstrip("*")) for n in names):
            return ", ".join(names)
    if isinstance(value, list) and value and all(isinstance(n, str) and _ENV_NAME.match(n) for n in value):
        return ", ".join(value)
    raise site.error("getenv", f"expected true, false or a list of variable names, got {value!r}")


#: LSST ctrl_bps_htcondor keys a site (or the top level) may hold, accepted with a warning.
_LSST_ACCEPTED = {
    "overwriteJobFiles": "every attempt keeps its own stdout/stderr (logs/<label>/<job>.<cluster>.out|.err)",
}


def lsst_site(site: SiteConfig, top: Mapping[str, Any]) -> SiteConfig:
    """LSST's HTCondor keys as this plugin's: ``profile.condor.*``, ``wmsConfig``, top-level values.

    LSST looks a job's ``accountingGroup``, ``accountingUser`` and ``profile`` up in the compute
    site's section, then at the top level; the site wins here too.  ``profile.condor.<command>``
    is a submit command (``requirements`` joins the site's requirements); ``wmsConfig`` holds
    DAGMan configuration knobs.  ``&quot;`` in a profile value is read as ``"``: LSST's user
    guide prints its examples that way, and operators copy them.
    """
    merged: dict[str, Any] = {}
    for key in ("accountingGroup", "accountingUser", "profile", "wmsConfig"):
        if top.get(key) not in (None, {}, ""):
            merged[key] = top[key]
    merged.update(site.settings)
    if not any(k in merged for k in ("profile", "wmsConfig", *_LSST_ACCEPTED)) and merged == dict(
        site.settings
    ):
        return site
    sources = dict(site.sources)
    profile = merged.pop("profile", None)
    if profile is not None:
        if not isinstance(profile, Mapping) or not isinstance(profile.get("condor", {}), Mapping):
            raise site.error("profile", "expected a mapping with a condor: mapping of submit commands")
        commands = dict(merged.get("submitCommands") or {})
        for name, value in (profile.get("condor") or {}).items():
            text = str(value).replace("&quot;", '"')
            if name == "requirements":
                current = merged.get("requirements")
                merged["requirements"] = f"({current}) && ({text})" if current else text
            else:
                commands.setdefault(str(name), text)
        if commands:
            merged["submitCommands"] = commands
        sources.setdefault("submitCommands", sources.get("profile", ""))
    wms_config = merged.pop("wmsConfig", None)
    if wms_config is not None:
        if not isinstance(wms_config, Mapping):
            raise site.error("wmsConfig", "expected a mapping of DAGMan configuration knobs")
        knobs = {
            str(k): ("true" if v is True else "false" if v is False else v) for k, v in wms_config.items()
        }
        knobs.update(merged.get("dagmanConfig") or {})
        merged["dagmanConfig"] = knobs
    for key, instead in _LSST_ACCEPTED.items():
        if key in merged:
            merged.pop(key)
            _LOG.warning("%s: accepted for LSST compatibility and not used; %s", key, instead)
    return SiteConfig(site.name, merged, sources)


def site_settings(site: SiteConfig) -> HTCondorSiteSettings:
    """Validate the compute site's settings; unknown keys are errors (typos must not pass silently)."""
    for key in site.settings:
        if key not in _KEYS:
            raise site.error(key, f"unknown key for the htcondor plugin; known keys: {', '.join(_KEYS)}")
    commands = _mapping(site, "submitCommands", _SUBMIT_KEY, "submit command")
    for name, _ in commands:
        if name.lower() in RESERVED_SUBMIT_COMMANDS:
            raise site.error(
                f"submitCommands.{name}", "is written by the htcondor plugin itself and cannot be set here"
            )
    environment = _mapping(site, "environment", _ENV_NAME, "environment variable name")
    for name, text in environment:
        if "'" in text or '"' in text:
            raise site.error(f"environment.{name}", "values must not contain quotes")
    return HTCondorSiteSettings(
        requirements=_string(site, "requirements"),
        accounting_group=_string(site, "accountingGroup"),
        accounting_user=_string(site, "accountingUser"),
        submit_commands=commands,
        getenv=_getenv(site),
        environment=environment,
        max_idle=_int(site, "maxIdle", 1000, 0),
        max_jobs=_int(site, "maxJobs", 0, 0),
        dagman_config=_mapping(site, "dagmanConfig", _DAGMAN_KNOB, "configuration knob"),
        node_status_interval=_int(site, "nodeStatusInterval", 10, 1),
        batch_name=_string(site, "batchName"),
        schedd=_string(site, "schedd"),
        enforce_memory=_bool(site, "enforceMemory", False),
    )

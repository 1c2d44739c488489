"""The typed submit config: what the rest of bps reads instead of looking keys up by string.

:func:`bps.config.load_bps_config` builds one :class:`BpsConfig` per submit, validated and fully
resolved (no placeholders left, paths absolute).  Everything downstream (workflow building,
plugins, the submit directory) takes this object, so a typo in a key is caught once, at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .._exceptions import BpsConfigError


class FinalJobWhen(StrEnum):
    """When the final merge job (``butler transfer-from-graph``) runs."""

    ALWAYS = "ALWAYS"
    """After every other job has finished, whatever their states (the default: register what exists)."""
    SUCCESS = "SUCCESS"
    """Only if every other job succeeded; otherwise it is PRUNED."""
    NEVER = "NEVER"
    """No final job in the workflow; the operator runs the merge by hand."""


@dataclass(frozen=True, slots=True)
class JobResources:
    """What one batch job asks of the workflow engine."""

    request_memory: int
    """Megabytes."""
    request_cpus: int
    number_of_retries: int
    """Extra attempts after a failed one (0: run once)."""


@dataclass(frozen=True, slots=True)
class TaskResources:
    """Per-task-label overrides from ``pipetask: {<label>: {...}}``; None keeps the global value."""

    request_memory: int | None = None
    request_cpus: int | None = None
    number_of_retries: int | None = None

    def apply(self, base: JobResources) -> JobResources:
        return JobResources(
            request_memory=base.request_memory if self.request_memory is None else self.request_memory,
            request_cpus=base.request_cpus if self.request_cpus is None else self.request_cpus,
            number_of_retries=(
                base.number_of_retries if self.number_of_retries is None else self.number_of_retries
            ),
        )


@dataclass(frozen=True, slots=True)
class PayloadConfig:
    """The ``payload`` section: what to run over which data, and where outputs go."""

    payload_name: str
    butler_config: str
    """Absolute repository path (or a URI, kept as written)."""
    in_collection: tuple[str, ...]
    data_query: str
    output: str
    output_run: str


@dataclass(frozen=True, slots=True)
class FinalJobConfig:
    """The ``finalJob`` section: the merge job that registers what the workflow produced."""

    when_run: FinalJobWhen
    update_output_chain: bool
    resources: JobResources


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """Engine settings of one ``site: {<name>: {...}}`` entry, already placeholder-resolved.

    bps does not know what these keys mean: the WMS plugin turns them into its own typed settings
    and uses :meth:`error` so its messages name the key path and file like bps's own.
    """

    name: str
    settings: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)
    """Key -> the file that set it."""

    def error(self, key: str, message: str) -> BpsConfigError:
        where = self.sources.get(key) or self.sources.get("", "the submit config")
        return BpsConfigError(f"site.{self.name}.{key}: {message} (in {where})")


@dataclass(frozen=True, slots=True)
class BpsConfig:
    """One submit's complete, validated configuration."""

    submit_yaml: Path
    payload: PayloadConfig
    pipeline_yaml: Path | None
    """None when ``qgraphFile`` gives a pre-built graph."""
    qgraph_file: Path | None
    operator: str
    project: str
    campaign: str
    wms_service_class: str
    compute_site: str
    site: SiteConfig
    """Settings of ``computeSite``."""
    submit_path: Path
    """Absolute submit directory."""
    resources: JobResources
    task_resources: Mapping[str, TaskResources]
    final_job: FinalJobConfig
    timestamp: str
    """UTC ``YYYYMMDDTHHMMSSZ``, fixed once per submit."""
    uniq_proc_name: str
    """``outputRun`` made safe for file names."""
    variables: Mapping[str, Any]
    """The ``vars`` section: user keys that exist only to be used as placeholders."""
    files: tuple[Path, ...]
    """Every YAML file merged (includes first, the submit YAML last)."""
    resolved: Mapping[str, Any]
    """The merged, substituted key tree (what the submit directory records)."""

    def resources_for(self, label: str) -> JobResources:
        """Resources of a quantum job of task ``label``: global values with per-task overrides."""
        override = self.task_resources.get(label)
        return self.resources if override is None else override.apply(self.resources)

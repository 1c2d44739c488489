"""The typed submit config: what the rest of bps reads instead of looking keys up by string.

:func:`bps.config.load_bps_config` builds one :class:`BpsConfig` per submit, validated and fully
resolved (no placeholders left, paths absolute).  Everything downstream (workflow building,
plugins, the submit directory) takes this object, so a typo in a key is caught once, at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
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


#: ``memoryLimit`` when ``memoryMultiplier`` is set and no limit is given: this many times
#: the job's ``requestMemory`` (a plugin may lower it further to what its site can offer).
DEFAULT_MEMORY_LIMIT_FACTOR = 4


@dataclass(frozen=True, slots=True)
class JobResources:
    """What one batch job asks of the workflow engine, and how it is retried."""

    request_memory: int
    """Megabytes."""
    request_cpus: int
    number_of_retries: int
    """Extra attempts after a failed one (0: run once)."""
    request_disk: int = 0
    """Megabytes of local scratch disk; 0: the engine's default."""
    request_walltime: int | None = None
    """Seconds; None: no limit asked for."""
    retry_unless_exit: tuple[int, ...] = ()
    """Exit codes after which the job is NOT retried, whatever ``number_of_retries`` allows."""
    memory_multiplier: float | None = None
    """> 1: an attempt killed or held for exceeding its memory is retried with the memory
    multiplied by this (again on each such retry).  None: memory never grows."""
    memory_limit: int | None = None
    """Megabytes the multiplied memory never exceeds; None: see :meth:`effective_memory_limit`."""
    request_memory_max: int | None = None
    """LSST's ``requestMemoryMax``: the most one job may ask for while scaling (capped by
    ``memory_limit`` when both are set)."""

    def effective_memory_limit(self) -> int | None:
        """The cap of the growing memory: the smaller of ``request_memory_max`` and ``memory_limit``
        where set, else :data:`DEFAULT_MEMORY_LIMIT_FACTOR` x ``request_memory``; None without a
        multiplier."""
        if self.memory_multiplier is None:
            return None
        caps = [c for c in (self.memory_limit, self.request_memory_max) if c is not None]
        if caps:
            return max(min(caps), self.request_memory)
        return self.request_memory * DEFAULT_MEMORY_LIMIT_FACTOR


@dataclass(frozen=True, slots=True)
class TaskResources:
    """Overrides of the global resources (``pipetask.<label>``, ``finalJob``, ``cluster.<name>``).

    None (or, for ``retry_unless_exit``, None too) keeps the value of the level beneath.
    """

    request_memory: int | None = None
    request_cpus: int | None = None
    number_of_retries: int | None = None
    request_disk: int | None = None
    request_walltime: int | None = None
    retry_unless_exit: tuple[int, ...] | None = None
    memory_multiplier: float | None = None
    memory_limit: int | None = None
    request_memory_max: int | None = None
    multiplier_off: bool = False
    """``memoryMultiplier`` <= 1 set here: scaling is off at this level whatever the level beneath says."""

    def apply(self, base: JobResources) -> JobResources:
        """``base`` with every value this override sets replaced."""
        return JobResources(
            request_memory=_pick(self.request_memory, base.request_memory),
            request_cpus=_pick(self.request_cpus, base.request_cpus),
            number_of_retries=_pick(self.number_of_retries, base.number_of_retries),
            request_disk=_pick(self.request_disk, base.request_disk),
            request_walltime=_pick(self.request_walltime, base.request_walltime),
            retry_unless_exit=_pick(self.retry_unless_exit, base.retry_unless_exit),
            memory_multiplier=(
                None if self.multiplier_off else _pick(self.memory_multiplier, base.memory_multiplier)
            ),
            memory_limit=_pick(self.memory_limit, base.memory_limit),
            request_memory_max=_pick(self.request_memory_max, base.request_memory_max),
        )

    @property
    def is_empty(self) -> bool:
        """Whether this override sets nothing."""
        return not self.multiplier_off and all(
            getattr(self, f.name) is None for f in fields(self) if f.name != "multiplier_off"
        )


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


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
    commands: tuple[str, ...] = ()
    """``command1``, ``command2``... rendered for the final job (job placeholders such as
    ``{qgraphFile}`` left for the workflow builder); empty: skybatch's own merge command."""


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


#: The built-in values of ``clusterAlgorithm``; anything else must be a dotted path
#: ``package.module.function`` to a clustering function (see :mod:`bps.workflow._cluster`).
BUILTIN_CLUSTER_ALGORITHMS = ("single", "dimension", "chain")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """One ``cluster: {<name>: {...}}`` entry.

    ``pipetasks`` and ``dimensions`` drive ``clusterAlgorithm: dimension``; ``resources`` apply to
    every job whose label is ``name``, whichever algorithm made it.
    """

    name: str
    pipetasks: tuple[str, ...] = ()
    dimensions: tuple[str, ...] = ()
    """As written (order kept: it orders the data-ID values in job names)."""
    resources: TaskResources = field(default_factory=TaskResources)
    sources: Mapping[str, str] = field(default_factory=dict)
    """Key -> the file that set it; ``""`` -> the file that set the entry."""
    equal_dimensions: tuple[tuple[str, str], ...] = ()
    """LSST's ``equalDimensions`` (``visit:exposure``): a task lacking one of a pair is grouped by
    the other's value."""

    def error(self, key: str, message: str) -> BpsConfigError:
        """A config error about ``cluster.<name>.<key>`` naming the file that set it."""
        where = self.sources.get(key) or self.sources.get("", "the submit config")
        path = f"cluster.{self.name}.{key}" if key else f"cluster.{self.name}"
        return BpsConfigError(f"{path}: {message} (in {where})")


@dataclass(frozen=True, slots=True)
class ClusteringConfig:
    """How quanta are grouped into batch jobs: ``clusterAlgorithm``, ``cluster``, ``jobLocalDatasetTypes``."""

    algorithm: str = "single"
    """``single``, ``dimension``, ``chain``, or a dotted path to a function."""
    clusters: Mapping[str, ClusterSpec] = field(default_factory=dict)
    job_local_dataset_types: tuple[str, ...] = ()
    """Dataset types kept in memory inside a job when every reader of them runs in that job."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """``clusterAlgorithm`` / ``jobLocalDatasetTypes`` -> the file that set it."""

    def error(self, key: str, message: str) -> BpsConfigError:
        """A config error about the top-level key ``key``, naming the file that set it."""
        where = self.sources.get(key, "the submit config")
        return BpsConfigError(f"{key}: {message} (in {where})")


@dataclass(frozen=True, slots=True)
class CommandTemplates:
    """Command lines the operator wrote (LSST's ``runQuantumCommand`` and friends), per job context.

    Each is already rendered for its context (options spliced in, keys substituted); what is left
    are LSST's job placeholders (``{qgraphFile}``, ``{qgraphNodeId}``, ``{qgraphId}``, ...), which
    the workflow builder fills per job, and ``${VAR}`` the submitting shell did not set, which the
    job's own environment fills when it runs.
    """

    run_quantum: Mapping[str, str]
    """Context ("" for the default, a task label or a cluster name) -> the quantum job's command."""
    init: str
    """The init job's command (``pipetask.pipetaskInit.runQuantumCommand``)."""

    def quantum_template(self, label: str) -> str:
        return self.run_quantum.get(label, self.run_quantum[""])


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
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    warnings: tuple[str, ...] = ()
    """One line per LSST key accepted but handled otherwise, and per setting that cannot take
    effect (also logged at WARNING when the config is loaded)."""
    run_init: bool = True
    """``payload.runInit``: whether the workflow has the init job."""
    init_resources: JobResources | None = None
    """The init job's resources (``pipetask.pipetaskInit``); None: the global ones."""
    commands: CommandTemplates | None = None
    """The operator's command templates; None: skybatch's own commands."""
    environment: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    """``environment`` per job context ("" for every job, a task label, a cluster name,
    ``pipetaskInit``, ``finalJob``), already merged over the top level; values resolved."""
    save_dot: bool = False
    """``saveDot``: also write the workflow as ``bps_generic_workflow.dot``."""
    pipeline_fragment: str = ""
    """What followed ``#`` in ``pipelineYaml`` (LSST's label selection), passed to the pipeline loader."""

    def environment_for(self, label: str) -> tuple[tuple[str, str], ...]:
        """The environment a job labelled ``label`` gets from ``environment:`` keys."""
        found = self.environment.get(label)
        return self.environment.get("", ()) if found is None else found

    def resources_for(self, label: str) -> JobResources:
        """Resources of a quantum job of task ``label``: global values with per-task overrides."""
        override = self.task_resources.get(label)
        return self.resources if override is None else override.apply(self.resources)

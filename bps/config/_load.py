"""Loading a submit YAML into a :class:`BpsConfig`: merge, check keys, substitute, convert.

Precedence, highest first: command-line overrides > the submit YAML > its ``includeConfigs``
(later entries over earlier ones, each include over its own includes) > the shipped defaults.
The environment is consulted only for ``${ENV}`` and for ``{placeholders}`` no key defines.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import getpass
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from butler import InvalidNameError, check_collection_name

from .._exceptions import BpsConfigError
from ._layers import KeyPath, MergedTree, format_path, load_tree
from ._model import (
    BUILTIN_CLUSTER_ALGORITHMS,
    BpsConfig,
    ClusteringConfig,
    ClusterSpec,
    FinalJobConfig,
    FinalJobWhen,
    JobResources,
    PayloadConfig,
    SiteConfig,
    TaskResources,
)
from ._placeholders import PlaceholderResolver

#: Keys allowed at the top level, under ``pipetask.<label>``, ``finalJob`` and ``cluster.<name>``.
RESOURCE_KEYS = frozenset(
    {
        "requestMemory",
        "requestCpus",
        "numberOfRetries",
        "requestDisk",
        "requestWalltime",
        "retryUnlessExit",
        "memoryMultiplier",
        "memoryLimit",
    }
)
#: Keys allowed at the top level of a submit YAML.
TOP_LEVEL_KEYS = (
    frozenset(
        {
            "pipelineYaml",
            "qgraphFile",
            "payload",
            "operator",
            "project",
            "campaign",
            "wmsServiceClass",
            "computeSite",
            "site",
            "submitPath",
            "includeConfigs",
            "finalJob",
            "pipetask",
            "clusterAlgorithm",
            "cluster",
            "jobLocalDatasetTypes",
            "vars",
        }
    )
    | RESOURCE_KEYS
)
PAYLOAD_KEYS = frozenset({"payloadName", "butlerConfig", "inCollection", "dataQuery", "output", "outputRun"})
FINAL_JOB_KEYS = frozenset({"whenRun", "updateOutputChain"}) | RESOURCE_KEYS
CLUSTER_KEYS = frozenset({"pipetasks", "dimensions"}) | RESOURCE_KEYS
#: Placeholders computed by bps rather than set by keys.
BUILTIN_PLACEHOLDERS = ("timestamp", "uniqProcName")

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
#: The first ``{placeholder}`` in a value (not ``${ENV}``, not an escaped ``{{``).
_FIRST_PLACEHOLDER = re.compile(r"(?<![${])\{[A-Za-z_][A-Za-z0-9_]*\}")
_CLUSTER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_DOTTED_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
#: LSST ctrl_bps spellings of the built-in algorithms, accepted so campaign configs carry over.
_CLUSTER_ALGORITHM_ALIASES = {
    "single_quantum_clustering": "single",
    "dimension_clustering": "dimension",
    "lsst.ctrl.bps.quantum_clustering_funcs.single_quantum_clustering": "single",
    "lsst.ctrl.bps.quantum_clustering_funcs.dimension_clustering": "dimension",
}
#: Task labels of bps's own jobs; no cluster may take them (see ``bps.workflow._job``).
_RESERVED_CLUSTER_NAMES = frozenset({"pipetaskInit", "finalJob"})


def default_environ() -> dict[str, str]:
    """The process environment, with ``USER`` filled from the login database when unset.

    Containers and cron often run without ``USER``; the default ``operator: ${USER}`` should
    still name the account rather than fail.
    """
    env = dict(os.environ)
    if not env.get("USER"):
        try:
            env["USER"] = getpass.getuser()
        except (KeyError, OSError):
            pass
    return env


def format_timestamp(now: datetime.datetime) -> str:
    """UTC ``YYYYMMDDTHHMMSSZ``, the ``{timestamp}`` placeholder (sortable, safe in paths)."""
    if now.tzinfo is not None:
        now = now.astimezone(datetime.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ")


def load_bps_config(
    submit_yaml: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    now: datetime.datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> BpsConfig:
    """Load, merge, resolve and validate a submit YAML.

    ``overrides`` is a nested mapping of the same keys (command-line options); relative paths in
    it resolve against the current directory.  ``now`` fixes ``{timestamp}`` (tests); ``environ``
    replaces the process environment (tests).
    """
    path = Path(submit_yaml).expanduser()
    env = default_environ() if environ is None else dict(environ)
    tree = load_tree(path, overrides, env)
    _check_shape(tree)
    timestamp = format_timestamp(now or datetime.datetime.now(datetime.UTC))
    builtins: dict[str, Callable[[PlaceholderResolver], str]] = {
        "timestamp": lambda _r: timestamp,
        "uniqProcName": lambda r: _uniq_proc_name(r.resolved(("payload", "outputRun")) or ""),
    }
    resolver = PlaceholderResolver(tree, env, builtins)
    return _Converter(tree, resolver, path.resolve(), timestamp).convert()


def _uniq_proc_name(output_run: Any) -> str:
    return _UNSAFE_NAME_CHARS.sub("_", str(output_run)).strip("_")


def _unknown_key_error(tree: MergedTree, path: KeyPath, allowed: frozenset[str]) -> BpsConfigError:
    key = str(path[-1])
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(allowed))}"
    return BpsConfigError(f"{format_path(path)}: unknown key (in {tree.source_of(path)}){hint}")


def _check_shape(tree: MergedTree) -> None:
    """Refuse unknown keys and sections of the wrong kind before any substitution happens."""
    data = tree.data
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise _unknown_key_error(tree, (key,), TOP_LEVEL_KEYS)
    for section, allowed in (("payload", PAYLOAD_KEYS), ("finalJob", FINAL_JOB_KEYS)):
        value = data.get(section)
        _require_mapping(tree, (section,), value)
        for key in value or {}:
            if key not in allowed:
                raise _unknown_key_error(tree, (section, key), allowed)
    for section in ("site", "pipetask", "cluster", "vars"):
        _require_mapping(tree, (section,), data.get(section))
    for section, allowed in (("pipetask", RESOURCE_KEYS), ("cluster", CLUSTER_KEYS)):
        for name, value in (data.get(section) or {}).items():
            _require_mapping(tree, (section, name), value)
            for key in value or {}:
                if key not in allowed:
                    raise _unknown_key_error(tree, (section, name, key), allowed)
    for name, value in (data.get("site") or {}).items():
        _require_mapping(tree, ("site", name), value)
    for name in data.get("vars") or {}:
        if name in BUILTIN_PLACEHOLDERS:
            where = tree.source_of(("vars", name))
            raise BpsConfigError(f"vars.{name}: {{{name}}} is computed by bps and cannot be set (in {where})")


def _require_mapping(tree: MergedTree, path: KeyPath, value: Any) -> None:
    if value is not None and not isinstance(value, dict):
        raise BpsConfigError(
            f"{format_path(path)}: expected a mapping of keys, got {_kind(value)} (in {tree.source_of(path)})"
        )


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


class _Converter:
    """Reads typed values out of the resolved tree; every error names the key path and its file."""

    def __init__(
        self, tree: MergedTree, resolver: PlaceholderResolver, submit_yaml: Path, timestamp: str
    ) -> None:
        self._tree = tree
        self._r = resolver
        self._submit_yaml = submit_yaml
        self._timestamp = timestamp

    # -- primitive readers -------------------------------------------------------------------------
    def _error(self, path: KeyPath, message: str) -> BpsConfigError:
        return BpsConfigError(f"{format_path(path)}: {message} (in {self._tree.source_of(path)})")

    def _value(self, path: KeyPath, required: bool) -> Any:
        value = self._r.resolved(path) if self._r.has(path) else None
        if value is None and required:
            raise BpsConfigError(
                f"missing required key {format_path(path)}: set it in {self._submit_yaml} "
                "or in one of its includeConfigs"
            )
        return value

    def string(self, path: KeyPath, *, required: bool = True, default: str = "") -> str:
        value = self._value(path, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._error(path, f"expected a string, got {_kind(value)}")
        text = str(value)
        if required and not text.strip():
            raise self._error(path, "must not be empty")
        return text

    def integer(self, path: KeyPath, *, minimum: int, required: bool = True) -> int | None:
        value = self._value(path, required)
        if value is None:
            return None
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(path, f"expected an integer, got {_kind(value)} {value!r}")
        if value < minimum:
            raise self._error(path, f"must be at least {minimum}, got {value}")
        return value

    def number(self, path: KeyPath, *, above: float) -> float | None:
        """An optional int or float strictly greater than ``above``."""
        value = self._value(path, False)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self._error(path, f"expected a number, got a string {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise self._error(path, f"expected a number, got {_kind(value)} {value!r}")
        if value <= above:
            raise self._error(path, f"must be greater than {above:g}, got {value:g}")
        return float(value)

    def exit_codes(self, path: KeyPath) -> tuple[int, ...] | None:
        """An optional exit code or list of them (1-255), as a sorted tuple without repeats."""
        value = self._value(path, False)
        if value is None:
            return None
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        items = value if isinstance(value, list) else [value]
        codes: set[int] = set()
        for i, item in enumerate(items):
            where = (*path, i) if isinstance(value, list) else path
            if isinstance(item, str) and re.fullmatch(r"\s*\d+\s*", item):
                item = int(item)
            if isinstance(item, bool) or not isinstance(item, int):
                raise self._error(
                    where, f"expected an exit code (an integer) or a list of them, got {_kind(item)}"
                )
            if not 1 <= item <= 255:
                raise self._error(where, f"exit codes are 1 to 255, got {item}")
            codes.add(item)
        return tuple(sorted(codes))

    def names(self, path: KeyPath) -> tuple[str, ...]:
        """An optional comma-separated string or list of names (order kept, repeats dropped)."""
        value = self._value(path, False)
        if value is None:
            return ()
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise self._error(
                path, f"expected a comma-separated string or a list of names, got {_kind(value)}"
            )
        return tuple(dict.fromkeys(v.strip() for v in items if v.strip()))

    def boolean(self, path: KeyPath, default: bool) -> bool:
        value = self._value(path, False)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise self._error(path, f"expected true or false, got {_kind(value)} {value!r}")
        return value

    def file_path(self, path: KeyPath, *, required: bool, must_exist: bool) -> Path | None:
        text = self.string(path, required=required, default="")
        if not text:
            return None
        p = Path(os.path.expanduser(text))
        if not p.is_absolute():
            p = self._tree.base_dir_of(path) / p
        p = p.resolve()
        if must_exist and not p.exists():
            raise self._error(path, f"no such file or directory: {p}")
        if must_exist and path in (("qgraphFile",), ("pipelineYaml",)) and not p.is_file():
            raise self._error(path, f"{p} is not a regular file (a directory?)")
        return p

    def collections(self, path: KeyPath, *, required: bool) -> tuple[str, ...]:
        value = self._value(path, required)
        if value is None:
            return ()
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise self._error(
                path, f"expected a collection name, a comma-separated string or a list, got {_kind(value)}"
            )
        names = tuple(v.strip() for v in items if v.strip())
        if required and not names:
            raise self._error(path, "names no collection")
        return names

    def collection_name(self, path: KeyPath, name: str, index: int | None = None) -> None:
        """Refuse a collection name that could escape a directory (``..``, leading ``/``...)."""
        try:
            check_collection_name(name)
        except InvalidNameError as err:
            where = (*path, index) if index is not None else path
            raise self._error(where, str(err)) from None

    def submit_dir(self) -> Path:
        """``submitPath``, checked to stay under the directory its literal part names.

        With the default ``submit/{outputRun}``, a name in a placeholder (a run name, a var) can
        add folders below ``submit/`` but never climb out of it: the resolved path is compared
        with the resolved text before the first placeholder.
        """
        path: KeyPath = ("submitPath",)
        submit_path = self.file_path(path, required=True, must_exist=False)
        assert submit_path is not None
        raw = self._r.raw(path)
        first = _FIRST_PLACEHOLDER.search(raw) if isinstance(raw, str) else None
        if isinstance(raw, str) and first is not None:
            literal = raw[: first.start()].rpartition("/")[0]
            if literal or raw.startswith("/"):
                root = Path(os.path.expanduser(self._r.substitute(literal or "/", path)))
                if not root.is_absolute():
                    root = self._tree.base_dir_of(path) / root
                root = root.resolve()
                if not submit_path.is_relative_to(root):
                    raise self._error(
                        path,
                        f"resolves to {submit_path}, outside {root} (the part before its first "
                        "placeholder); a placeholder value climbs out of it",
                    )
        return submit_path

    def resources(self, prefix: KeyPath) -> TaskResources:
        """The resource keys under ``prefix`` (all optional; absent ones are None)."""
        return TaskResources(
            request_memory=self.integer((*prefix, "requestMemory"), minimum=1, required=False),
            request_cpus=self.integer((*prefix, "requestCpus"), minimum=1, required=False),
            number_of_retries=self.integer((*prefix, "numberOfRetries"), minimum=0, required=False),
            request_disk=self.integer((*prefix, "requestDisk"), minimum=0, required=False),
            request_walltime=self.integer((*prefix, "requestWalltime"), minimum=1, required=False),
            retry_unless_exit=self.exit_codes((*prefix, "retryUnlessExit")),
            memory_multiplier=self.number((*prefix, "memoryMultiplier"), above=1.0),
            memory_limit=self.integer((*prefix, "memoryLimit"), minimum=1, required=False),
        )

    def top_resources(self) -> JobResources:
        """The global resources: the three defaults-backed keys are required."""
        memory = self.integer(("requestMemory",), minimum=1)
        cpus = self.integer(("requestCpus",), minimum=1)
        retries = self.integer(("numberOfRetries",), minimum=0)
        assert memory is not None and cpus is not None and retries is not None
        resources = self.resources(()).apply(JobResources(memory, cpus, retries))
        self.check_memory_limit((), resources)
        return resources

    def check_memory_limit(self, prefix: KeyPath, resources: JobResources) -> None:
        """Refuse a ``memoryLimit`` below the ``requestMemory`` it caps."""
        limit = resources.memory_limit
        if limit is not None and limit < resources.request_memory:
            key = "memoryLimit" if self._r.has((*prefix, "memoryLimit")) else "requestMemory"
            raise self._error(
                (*prefix, key),
                f"memoryLimit ({limit} MB) is below requestMemory ({resources.request_memory} MB)",
            )

    # -- sections ---------------------------------------------------------------------------------
    def convert(self) -> BpsConfig:
        qgraph_file = self.file_path(("qgraphFile",), required=False, must_exist=True)
        pipeline_yaml = None
        if qgraph_file is None:
            pipeline_yaml = self.file_path(("pipelineYaml",), required=True, must_exist=True)
        payload = self._payload(graph_given=qgraph_file is not None)
        resources = self.top_resources()
        compute_site = self.string(("computeSite",))
        submit_path = self.submit_dir()
        resolved = self._resolved_tree(compute_site)
        # Record absolute paths: the copy kept in the submit directory must not depend on the cwd.
        resolved["submitPath"] = str(submit_path)
        resolved["payload"]["butlerConfig"] = payload.butler_config
        for key, value in (("pipelineYaml", pipeline_yaml), ("qgraphFile", qgraph_file)):
            if value is not None:
                resolved[key] = str(value)
        return BpsConfig(
            submit_yaml=self._submit_yaml,
            payload=payload,
            pipeline_yaml=pipeline_yaml,
            qgraph_file=qgraph_file,
            operator=self.string(("operator",)),
            project=self.string(("project",), required=False),
            campaign=self.string(("campaign",), required=False),
            wms_service_class=self.string(("wmsServiceClass",)),
            compute_site=compute_site,
            site=self._site(compute_site),
            submit_path=submit_path,
            resources=resources,
            task_resources=self._task_resources(resources),
            final_job=self._final_job(resources),
            timestamp=self._timestamp,
            uniq_proc_name=_uniq_proc_name(payload.output_run),
            variables=self._r.resolved(("vars",)) if self._r.has(("vars",)) else {},
            files=tuple(self._tree.files),
            resolved=resolved,
            clustering=self._clustering(resources),
        )

    def _payload(self, graph_given: bool) -> PayloadConfig:
        butler_text = self.string(("payload", "butlerConfig"))
        if "://" in butler_text:
            butler_config = butler_text
        else:
            repo = self.file_path(("payload", "butlerConfig"), required=True, must_exist=True)
            butler_config = str(repo)
        in_collection = self.collections(("payload", "inCollection"), required=not graph_given)
        for i, name in enumerate(in_collection):
            self.collection_name(("payload", "inCollection"), name, i if len(in_collection) > 1 else None)
        output = self.string(("payload", "output"))
        output_run = self.string(("payload", "outputRun"))
        self.collection_name(("payload", "output"), output)
        self.collection_name(("payload", "outputRun"), output_run)
        return PayloadConfig(
            payload_name=self.string(("payload", "payloadName")),
            butler_config=butler_config,
            in_collection=in_collection,
            data_query=self.string(("payload", "dataQuery"), required=False),
            output=output,
            output_run=output_run,
        )

    def _site(self, compute_site: str) -> SiteConfig:
        sites = self._tree.data.get("site") or {}
        if compute_site not in sites:
            if sites:
                defined = ", ".join(sites)
                raise self._error(
                    ("computeSite",), f"site {compute_site!r} is not defined under site: (defined: {defined})"
                )
            return SiteConfig(compute_site, {}, {})
        path: KeyPath = ("site", compute_site)
        settings = self._r.resolved(path) or {}
        sources = {key: self._tree.source_of((*path, key)) for key in settings}
        sources[""] = self._tree.source_of(path)
        return SiteConfig(compute_site, settings, sources)

    def _task_resources(self, base: JobResources) -> dict[str, TaskResources]:
        out = {}
        for label in self._tree.data.get("pipetask") or {}:
            override = self.resources(("pipetask", label))
            self.check_memory_limit(("pipetask", label), override.apply(base))
            out[label] = override
        return out

    def _clustering(self, base: JobResources) -> ClusteringConfig:
        algorithm = self.string(("clusterAlgorithm",), required=False, default="single").strip()
        algorithm = _CLUSTER_ALGORITHM_ALIASES.get(algorithm, algorithm)
        if algorithm.lower() in BUILTIN_CLUSTER_ALGORITHMS:
            algorithm = algorithm.lower()
        elif not _DOTTED_PATH.fullmatch(algorithm):
            choices = ", ".join(BUILTIN_CLUSTER_ALGORITHMS)
            raise self._error(
                ("clusterAlgorithm",),
                f"expected one of {choices} or a dotted path package.module.function, got {algorithm!r}",
            )
        clusters: dict[str, ClusterSpec] = {}
        owner: dict[str, str] = {}
        for name in self._tree.data.get("cluster") or {}:
            prefix: KeyPath = ("cluster", name)
            if not _CLUSTER_NAME.fullmatch(name) or name in _RESERVED_CLUSTER_NAMES:
                why = (
                    "is reserved for bps's own jobs"
                    if name in _RESERVED_CLUSTER_NAMES
                    else ("must start with a letter and hold only letters, digits, '_' and '-'")
                )
                raise BpsConfigError(
                    f"cluster.{name}: the cluster name {why} (in {self._tree.source_of(prefix)})"
                )
            pipetasks = self.names((*prefix, "pipetasks"))
            dimensions = self.names((*prefix, "dimensions"))
            if algorithm == "dimension" and not pipetasks:
                raise self._error((*prefix, "pipetasks"), "lists no task label (clusterAlgorithm: dimension)")
            for label in pipetasks:
                if label in owner:
                    raise self._error(
                        (*prefix, "pipetasks"),
                        f"task {label!r} is already in cluster {owner[label]!r}; "
                        "a task can be in one cluster only",
                    )
                owner[label] = name
            resources = self.resources(prefix)
            self.check_memory_limit(prefix, resources.apply(base))
            keys = ("", "pipetasks", "dimensions", *sorted(RESOURCE_KEYS))
            sources = {key: self._tree.source_of((*prefix, key) if key else prefix) for key in keys}
            clusters[name] = ClusterSpec(name, pipetasks, dimensions, resources, sources)
        job_local = self.names(("jobLocalDatasetTypes",))
        sources = {
            key: self._tree.source_of((key,))
            for key in ("clusterAlgorithm", "cluster", "jobLocalDatasetTypes")
        }
        return ClusteringConfig(algorithm, clusters, job_local, sources)

    def _final_job(self, base: JobResources) -> FinalJobConfig:
        when_text = self.string(("finalJob", "whenRun"), required=False, default="ALWAYS").upper()
        try:
            when = FinalJobWhen(when_text)
        except ValueError:
            choices = ", ".join(w.value for w in FinalJobWhen)
            message = f"expected one of {choices}, got {when_text!r}"
            raise self._error(("finalJob", "whenRun"), message) from None
        resources = self.resources(("finalJob",)).apply(base)
        self.check_memory_limit(("finalJob",), resources)
        return FinalJobConfig(
            when_run=when,
            update_output_chain=self.boolean(("finalJob", "updateOutputChain"), True),
            resources=resources,
        )

    def _resolved_tree(self, compute_site: str) -> dict[str, Any]:
        """The substituted tree; other sites are dropped (their settings may need unset variables).

        A deep copy: the resolver's memoised values must not change when the copy is edited.
        """
        out: dict[str, Any] = {}
        for key in self._tree.data:
            if key == "site":
                site = self._r.resolved(("site", compute_site)) if self._r.has(("site", compute_site)) else {}
                out["site"] = {compute_site: site or {}}
            else:
                out[key] = self._r.resolved((key,))
        return copy.deepcopy(out)

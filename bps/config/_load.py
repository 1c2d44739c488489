"""Loading a submit YAML into a :class:`BpsConfig`: merge, check keys, substitute, convert.

Precedence, highest first: command-line overrides > the submit YAML > its ``includeConfigs``
(later entries over earlier ones, each include over its own includes) > the shipped defaults.
The environment is consulted only for ``${ENV}`` and for ``{placeholders}`` no key defines.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import difflib
import getpass
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from butler import InvalidNameError, check_collection_name

from .._exceptions import BpsConfigError
from ._layers import DEFAULTS, KeyPath, MergedTree, format_path, load_tree
from ._lsst import (
    CLUSTER_KEYS,
    COMMAND_KEYS,
    CUSTOM_JOB_KEYS,
    FINAL_COMMAND_KEY,
    FINAL_JOB_KEYS,
    JOB_KEYS,
    PAYLOAD_KEYS,
    RESOURCE_KEYS,
    TOP_LEVEL_KEYS,
    WMS_ALIASES,
    is_accepted,
    warning_for,
)
from ._model import (
    BUILTIN_CLUSTER_ALGORITHMS,
    BpsConfig,
    ClusteringConfig,
    ClusterSpec,
    CommandTemplates,
    FinalJobConfig,
    FinalJobWhen,
    JobResources,
    PayloadConfig,
    SiteConfig,
    TaskResources,
)
from ._placeholders import PlaceholderResolver

#: Job sections (``pipetask.<label>``) hold resources and the job keys LSST searches there.
TASK_KEYS = RESOURCE_KEYS | JOB_KEYS
#: Placeholders computed by bps rather than set by keys.
BUILTIN_PLACEHOLDERS = ("timestamp", "uniqProcName", "tempDir")

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
#: The first ``{placeholder}`` in a value (not ``${ENV}``, not an escaped ``{{``).
_FIRST_PLACEHOLDER = re.compile(r"(?<![${])\{[A-Za-z_][A-Za-z0-9_]*\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
_LOG = logging.getLogger(__name__)
#: LSST's numberOfRetries when memoryMultiplier is set and numberOfRetries is not.
LSST_SCALING_RETRIES = 5


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
    referenced = referenced_names(tree.data)
    warnings: list[str] = []
    free = _check_shape(tree, referenced, warnings)
    warnings += lsst_warnings(tree)
    timestamp = format_timestamp(now or datetime.datetime.now(datetime.UTC))
    temp_dir = env.get("TMPDIR") or tempfile.gettempdir()
    builtins: dict[str, Callable[[PlaceholderResolver], str]] = {
        "timestamp": lambda _r: timestamp,
        "uniqProcName": lambda r: _uniq_proc_name(r.resolved(("payload", "outputRun")) or ""),
        "tempDir": lambda _r: temp_dir,
    }

    def lenient(key_path: KeyPath) -> bool:
        return (
            any(
                isinstance(p, str) and (p in COMMAND_KEYS or FINAL_COMMAND_KEY.fullmatch(p)) for p in key_path
            )
            or "environment" in key_path
            or any(key_path[:end] in free for end in range(1, len(key_path) + 1))
            or is_accepted(tuple(str(p) for p in key_path))
        )

    resolver = PlaceholderResolver(tree, env, builtins, lenient)
    converter = _Converter(tree, resolver, path.resolve(), timestamp, env, free)
    converter.warnings.extend(warnings)
    config = converter.convert()
    for message in config.warnings:
        _LOG.warning("%s", message)
    return config


#: ``{name}``, ``{name:spec}`` or ``{name.attr}`` anywhere in a string (what makes a key a variable).
_REFERENCE = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)[}:.]")


def referenced_names(value: Any) -> set[str]:
    """Every name some string of the tree uses as a ``{placeholder}``."""
    out: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "{" in item:
                out.update(_REFERENCE.findall(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def lsst_warnings(tree: MergedTree) -> list[str]:
    """One warning per LSST key the operator's files set that skybatch accepts but handles otherwise."""
    out: list[str] = []

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if path and tree.source_of(path) != DEFAULTS:
            if not (isinstance(value, str) and not value.strip()):
                message = warning_for(path, value)
                if message is not None:
                    out.append(f"{message} (in {tree.source_of(path)})")
                    return
        if isinstance(value, dict) and (not path or path[0] not in ("site", "vars", "environment")):
            for key, sub in value.items():
                walk(sub, (*path, key))

    walk(tree.data, ())
    return out


def _uniq_proc_name(output_run: Any) -> str:
    return _UNSAFE_NAME_CHARS.sub("_", str(output_run)).strip("_")


def _unknown_key_error(tree: MergedTree, path: KeyPath, allowed: frozenset[str]) -> BpsConfigError:
    key = str(path[-1])
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(allowed))}"
    return BpsConfigError(
        f"{format_path(path)}: unknown key (in {tree.source_of(path)}){hint} "
        "(a key of your own must be used as a {placeholder} somewhere)"
    )


#: Sections whose keys bps does not check: their content is the plugin's or the operator's.
_FREE_SECTIONS = ("site", "vars", "environment", "profile", "provisioning", "provisioningJob", "wmsConfig")


def _check_shape(tree: MergedTree, referenced: set[str], warnings: list[str]) -> set[KeyPath]:
    """Refuse unknown keys and sections of the wrong kind before any substitution happens.

    An unknown key is a free-form variable, as LSST allows at any level (the set of their paths is
    returned), unless it looks like a typo of a key bps knows: then it is an error with "did you
    mean".  A variable no ``{placeholder}`` uses gets a warning in ``warnings``.
    """
    data = tree.data
    free: set[KeyPath] = set()
    unused = warnings

    def check(path: KeyPath, key: str, allowed: frozenset[str]) -> None:
        sub = (*path, key)
        if key in allowed or is_accepted(tuple(str(p) for p in sub)):
            return
        if key in referenced:
            free.add(sub)
            return
        if difflib.get_close_matches(key, sorted(allowed), n=1):
            raise _unknown_key_error(tree, sub, allowed)
        free.add(sub)
        unused.append(
            f"{format_path(sub)}: not a key bps knows and no {{placeholder}} uses it; kept as a free-form "
            f"variable (in {tree.source_of(sub)})"
        )

    for key in data:
        check((), key, TOP_LEVEL_KEYS)
    for section, allowed in (
        ("payload", PAYLOAD_KEYS),
        ("finalJob", FINAL_JOB_KEYS),
        ("customJob", CUSTOM_JOB_KEYS),
    ):
        value = data.get(section)
        _require_mapping(tree, (section,), value)
        for key in value or {}:
            if section == "finalJob" and FINAL_COMMAND_KEY.fullmatch(key):
                continue
            check((section,), key, allowed)
    for section in ("pipetask", "cluster", *_FREE_SECTIONS):
        _require_mapping(tree, (section,), data.get(section))
    for section, allowed in (("pipetask", TASK_KEYS), ("cluster", CLUSTER_KEYS)):
        for name, value in (data.get(section) or {}).items():
            _require_mapping(tree, (section, name), value)
            for key in value or {}:
                check((section, name), key, allowed)
    for name, value in (data.get("site") or {}).items():
        _require_mapping(tree, ("site", name), value)
    for name in data.get("vars") or {}:
        if name in BUILTIN_PLACEHOLDERS:
            where = tree.source_of(("vars", name))
            raise BpsConfigError(f"vars.{name}: {{{name}}} is computed by bps and cannot be set (in {where})")
    return free


def _require_mapping(tree: MergedTree, path: KeyPath, value: Any) -> None:
    if value is not None and not isinstance(value, dict):
        raise BpsConfigError(
            f"{format_path(path)}: expected a mapping of keys, got {_kind(value)} (in {tree.source_of(path)})"
        )


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
        self,
        tree: MergedTree,
        resolver: PlaceholderResolver,
        submit_yaml: Path,
        timestamp: str,
        environ: Mapping[str, str] | None = None,
        free: set[KeyPath] | None = None,
    ) -> None:
        self._tree = tree
        self._r = resolver
        self._submit_yaml = submit_yaml
        self._timestamp = timestamp
        self._environ = environ or {}
        self._free = free or set()
        self.warnings: list[str] = []

    def _set_by_operator(self, path: KeyPath) -> bool:
        return self._r.has(path) and self._tree.source_of(path) != DEFAULTS

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

    def multiplier(self, path: KeyPath) -> tuple[float | None, bool]:
        """``memoryMultiplier``: (the factor, or None; whether it is set to turn scaling off).

        As in LSST, a value of 1 or less turns automatic memory scaling off.
        """
        value = self._value(path, False)
        if value is None:
            return None, False
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self._error(path, f"expected a number, got a string {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise self._error(path, f"expected a number, got {_kind(value)} {value!r}")
        if value <= 1:
            return None, True
        return float(value), False

    def exit_codes(self, path: KeyPath) -> tuple[int, ...] | None:
        """An optional exit code or list of them (1-255), as a sorted tuple without repeats."""
        if self._r.has(path) and self._r.raw(path) is None:
            return ()  # LSST: ``retryUnlessExit: null`` turns it off
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
        """The resource keys under ``prefix`` (all optional; absent ones are None).

        As in LSST, a section that sets ``memoryMultiplier`` gets 5 retries unless the operator set
        ``numberOfRetries`` there or at the top level.
        """
        multiplier, off = self.multiplier((*prefix, "memoryMultiplier"))
        retries = self.integer((*prefix, "numberOfRetries"), minimum=0, required=False)
        if (
            prefix
            and multiplier is not None
            and retries is None
            and not self._set_by_operator(("numberOfRetries",))
        ):
            retries = LSST_SCALING_RETRIES
        return TaskResources(
            request_memory=self.integer((*prefix, "requestMemory"), minimum=1, required=False),
            request_cpus=self.integer((*prefix, "requestCpus"), minimum=1, required=False),
            number_of_retries=retries,
            request_disk=self.integer((*prefix, "requestDisk"), minimum=0, required=False),
            request_walltime=self.integer((*prefix, "requestWalltime"), minimum=1, required=False),
            retry_unless_exit=self.exit_codes((*prefix, "retryUnlessExit")),
            memory_multiplier=multiplier,
            memory_limit=self.integer((*prefix, "memoryLimit"), minimum=1, required=False),
            request_memory_max=self.integer((*prefix, "requestMemoryMax"), minimum=1, required=False),
            multiplier_off=off,
        )

    def top_resources(self) -> JobResources:
        """The global resources: the three defaults-backed keys are required."""
        memory = self.integer(("requestMemory",), minimum=1)
        cpus = self.integer(("requestCpus",), minimum=1)
        retries = self.integer(("numberOfRetries",), minimum=0)
        assert memory is not None and cpus is not None and retries is not None
        resources = self.resources(()).apply(JobResources(memory, cpus, retries))
        if resources.memory_multiplier is not None and not self._set_by_operator(("numberOfRetries",)):
            # LSST: with memoryMultiplier set, numberOfRetries defaults to 5.
            resources = dataclasses.replace(resources, number_of_retries=LSST_SCALING_RETRIES)
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
        fragment = ""
        if qgraph_file is None:
            pipeline_yaml, fragment = self.pipeline_path()
        payload = self._payload(graph_given=qgraph_file is not None)
        # Commands and environments see the repository as jobs must: an absolute path.
        self._r.pin("butlerConfig", payload.butler_config)
        if pipeline_yaml is not None:
            self._r.pin("pipelineYaml", str(pipeline_yaml))
        resources = self.top_resources()
        compute_site = self.string(("computeSite",))
        submit_path = self.submit_dir()
        self._r.pin("submitPath", str(submit_path))
        wms = self.string(("wmsServiceClass",))
        if not self._set_by_operator(("wmsServiceClass",)) and self._environ.get("BPS_WMS_SERVICE_CLASS"):
            wms = self._environ["BPS_WMS_SERVICE_CLASS"]  # LSST: the environment beats the defaults
        wms = WMS_ALIASES.get(wms, wms)
        site = self._site(compute_site)
        task_resources = self._task_resources(resources)
        final_job = self._final_job(resources)
        clustering = self._clustering(resources)
        init_resources = None
        if self._r.has(("pipetask", "pipetaskInit")):
            init_resources = self.resources(("pipetask", "pipetaskInit")).apply(resources)
        self._check_scaling(wms, resources, task_resources, final_job.resources)
        if wms != "htcondor":
            for key in ("accountingGroup", "accountingUser", "profile", "wmsConfig"):
                if self._set_by_operator((key,)):
                    self.warnings.append(
                        f"{key}: an HTCondor key; the {wms} plugin does not use it "
                        f"(in {self._tree.source_of((key,))})"
                    )
        resolved = self._resolved_tree(compute_site)
        # Record absolute paths: the copy kept in the submit directory must not depend on the cwd.
        resolved["submitPath"] = str(submit_path)
        resolved["payload"]["butlerConfig"] = payload.butler_config
        resolved["wmsServiceClass"] = wms
        for key, value in (("pipelineYaml", pipeline_yaml), ("qgraphFile", qgraph_file)):
            if value is not None:
                resolved[key] = str(value) + (f"#{fragment}" if fragment and key == "pipelineYaml" else "")
        commands = self._commands(task_resources, clustering)
        if commands is not None:
            final_job = dataclasses.replace(final_job, commands=self._final_commands())
        return BpsConfig(
            submit_yaml=self._submit_yaml,
            payload=payload,
            pipeline_yaml=pipeline_yaml,
            qgraph_file=qgraph_file,
            operator=self.string(("operator",)),
            project=self.string(("project",), required=False),
            campaign=self.string(("campaign",), required=False),
            wms_service_class=wms,
            compute_site=compute_site,
            site=site,
            submit_path=submit_path,
            resources=resources,
            task_resources=task_resources,
            final_job=final_job,
            timestamp=self._timestamp,
            uniq_proc_name=_uniq_proc_name(payload.output_run),
            variables=self._r.resolved(("vars",)) if self._r.has(("vars",)) else {},
            files=tuple(self._tree.files),
            resolved=resolved,
            clustering=clustering,
            warnings=tuple(dict.fromkeys(self.warnings)),
            run_init=self.boolean(("payload", "runInit"), True),
            init_resources=init_resources,
            commands=commands,
            environment=self._environment(task_resources, clustering),
            save_dot=self.boolean(("saveDot",), False),
            pipeline_fragment=fragment,
        )

    def pipeline_path(self) -> tuple[Path, str]:
        """``pipelineYaml``, and the ``#label,...`` selection after it (passed on to the pipeline loader)."""
        path: KeyPath = ("pipelineYaml",)
        text = self.string(path)
        file_part, sep, fragment = text.partition("#")
        if sep and not fragment.strip():
            raise self._error(path, "nothing after '#': give task labels, subset names or a range a..b")
        p = Path(os.path.expanduser(file_part))
        if not p.is_absolute():
            p = self._tree.base_dir_of(path) / p
        p = p.resolve()
        if not p.exists():
            raise self._error(path, f"no such file or directory: {p}")
        if not p.is_file():
            raise self._error(path, f"{p} is not a regular file (a directory?)")
        return p, fragment.strip() if sep else ""

    def _check_scaling(
        self, wms: str, base: JobResources, tasks: Mapping[str, TaskResources], final: JobResources
    ) -> None:
        """Warn where ``memoryMultiplier`` is set but can never change a job's memory."""
        levels: list[tuple[str, JobResources]] = [("", base), ("finalJob.", final)]
        levels += [(f"pipetask.{label}.", override.apply(base)) for label, override in tasks.items()]
        for prefix, res in levels:
            key = (*prefix.rstrip(".").split("."), "memoryMultiplier") if prefix else ("memoryMultiplier",)
            if res.memory_multiplier is None or (prefix and not self._r.has(tuple(k for k in key if k))):
                continue
            why = ""
            if res.number_of_retries == 0:
                why = "numberOfRetries is 0, so no attempt is ever retried with more memory"
            elif (res.effective_memory_limit() or 0) <= res.request_memory:
                why = "requestMemoryMax/memoryLimit do not exceed requestMemory"
            elif wms == "parsl":
                why = "the parsl plugin neither limits a job's memory nor sees it exceed its request"
            if why:
                self.warnings.append(f"{prefix}memoryMultiplier is set but can never take effect: {why}")

    def _context_label(self, label: str) -> KeyPath:
        if label == "":
            return ("runQuantumCommand",)
        if label in ("pipetaskInit",):
            return ("pipetask", label, "runQuantumCommand")
        section = "cluster" if self._r.has(("cluster", label)) else "pipetask"
        return (section, label, "runQuantumCommand")

    def _template_value(self, key: str, context: KeyPath) -> tuple[KeyPath, str] | None:
        """The raw template ``key`` as LSST finds it for a job whose section is ``context[:2]``."""
        candidates: list[KeyPath] = []
        if context[0] in ("finalJob", "customJob"):
            candidates.append((context[0], key))
        if context[0] in ("pipetask", "cluster") and len(context) > 2:
            candidates.append((context[0], context[1], key))
        candidates.append((key,))
        for candidate in candidates:
            raw = self._r.raw(candidate) if self._r.has(candidate) else None
            if raw is not None:
                if not isinstance(raw, str):
                    raise self._error(candidate, f"expected a command line (a string), got {_kind(raw)}")
                return candidate, raw
        return None

    def _commands(
        self, tasks: Mapping[str, TaskResources], clustering: ClusteringConfig
    ) -> CommandTemplates | None:
        """The operator's command templates, rendered per job context; None if they set none.

        Only when some command key comes from the operator's files (not skybatch's defaults) do
        jobs run templates; otherwise bps writes its own commands (the same programs and options).
        """
        keys = (
            "runQuantumCommand",
            "defaultPreCmdOpts",
            "runPreCmdOpts",
            "initPreCmdOpts",
            "finalPreCmdOpts",
            "extraInitOptions",
            "extraRunQuantumOptions",
            "fileDistributionEndPoint",
        )
        operator_set = any(self._set_by_operator((k,)) for k in keys) or any(
            self._set_by_operator((section, name, k))
            for section in ("pipetask", "cluster", "finalJob")
            for name in (self._tree.data.get(section) or {})
            for k in keys
        )
        operator_set = operator_set or any(
            self._set_by_operator(("finalJob", k))
            for k in (self._tree.data.get("finalJob") or {})
            if FINAL_COMMAND_KEY.fullmatch(k) or k in keys
        )
        if not operator_set:
            return None
        contexts = [""] + [label for label in tasks if label != "pipetaskInit"] + list(clustering.clusters)
        run_quantum = {}
        for label in contexts:
            context = self._context_label(label)
            found = self._template_value("runQuantumCommand", context)
            if found is None:
                raise self._error(("runQuantumCommand",), "no command line for quantum jobs")
            run_quantum[label] = self._render(found, context)
        init_context = self._context_label("pipetaskInit")
        found = self._template_value("runQuantumCommand", init_context)
        assert found is not None  # the defaults have one
        return CommandTemplates(run_quantum=run_quantum, init=self._render(found, init_context))

    def _render(self, found: tuple[KeyPath, str], context: KeyPath) -> str:
        path, raw = found
        return self._r.render(raw, path, context)

    def _final_commands(self) -> tuple[str, ...]:
        """``finalJob.command1``, ``command2``... in numeric order, rendered for the final job."""
        section = self._tree.data.get("finalJob") or {}
        numbered = sorted(
            (int(m.group(1)), key) for key in section if (m := FINAL_COMMAND_KEY.fullmatch(key)) is not None
        )
        out = []
        for _, key in numbered:
            raw = section[key]
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            if not isinstance(raw, str):
                raise self._error(("finalJob", key), f"expected a command line (a string), got {_kind(raw)}")
            # LSST's updateOutputChain is the option itself ("--update-output-chain" or ""); ours
            # may be a boolean, and our merge command updates the chain unless told not to.
            chain = "--update-output-chain" if self._update_output_chain() else "--no-update-output-chain"
            raw = raw.replace("{updateOutputChain}", chain)
            out.append(self._r.render(raw, ("finalJob", key), ("finalJob", key)))
        return tuple(out)

    def _environment(
        self, tasks: Mapping[str, TaskResources], clustering: ClusteringConfig
    ) -> dict[str, tuple[tuple[str, str], ...]]:
        """``environment`` of every job context: the top level, with a job section's keys over it."""
        top = self._env_section(("environment",), ("environment",))
        out: dict[str, tuple[tuple[str, str], ...]] = {"": tuple(top.items())} if top else {}
        sections: list[tuple[str, KeyPath]] = [
            ("finalJob", ("finalJob",)),
            ("pipetaskInit", ("pipetask", "pipetaskInit")),
        ]
        sections += [(label, ("pipetask", label)) for label in tasks if label != "pipetaskInit"]
        sections += [(name, ("cluster", name)) for name in clustering.clusters]
        for label, prefix in sections:
            own_path = (*prefix, "environment")
            if not self._r.has(own_path):
                if top and label in ("finalJob", "pipetaskInit"):
                    out[label] = tuple(self._env_section(("environment",), own_path).items())
                continue
            merged = dict(self._env_section(("environment",), own_path) if top else {})
            merged.update(self._env_section(own_path, own_path))
            out[label] = tuple(merged.items())
        return out

    def _env_section(self, path: KeyPath, context: KeyPath) -> dict[str, str]:
        raw = self._r.raw(path) if self._r.has(path) else None
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise self._error(path, f"expected a mapping of variable names to values, got {_kind(raw)}")
        out = {}
        for name, value in raw.items():
            if not _ENV_NAME.fullmatch(name):
                raise self._error((*path, name), "not a valid environment variable name")
            if isinstance(value, dict | list) or value is None:
                raise self._error((*path, name), f"expected a single value, got {_kind(value)}")
            text = _scalar(value)
            out[name] = self._r.render(text, (*path, name), context) if isinstance(value, str) else text
        return out

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
            own = [name for name in sites if self._set_by_operator(("site", name))]
            if own and self._set_by_operator(("computeSite",)):
                defined = ", ".join(own)
                self.warnings.append(
                    f"computeSite: site {compute_site!r} has no entry under site: (defined: {defined}); "
                    f"the plugin's defaults are used (in {self._tree.source_of(('computeSite',))})"
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
            if label == "pipetaskInit":
                continue  # the init job's section, not a task label
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
            equal = []
            for pair in self.names((*prefix, "equalDimensions")):
                a, sep, b = pair.partition(":")
                if not sep or not a.strip() or not b.strip():
                    raise self._error(
                        (*prefix, "equalDimensions"), f"expected pairs like visit:exposure, got {pair!r}"
                    )
                equal.append((a.strip(), b.strip()))
            sources["equalDimensions"] = self._tree.source_of((*prefix, "equalDimensions"))
            clusters[name] = ClusterSpec(name, pipetasks, dimensions, resources, sources, tuple(equal))
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
            when_run=when, update_output_chain=self._update_output_chain(), resources=resources
        )

    def _update_output_chain(self) -> bool:
        """``finalJob.updateOutputChain``: true/false, or LSST's option string (empty: off)."""
        path: KeyPath = ("finalJob", "updateOutputChain")
        value = self._value(path, False)
        if isinstance(value, str) and value.strip().lower() not in ("true", "false"):
            if value.strip() in ("", "--update-output-chain"):
                return bool(value.strip())
            raise self._error(path, f"expected true, false, '--update-output-chain' or '', got {value!r}")
        return self.boolean(path, True)

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
                out[key] = self._tolerant((key,))
        return copy.deepcopy(out)

    def _tolerant(self, path: KeyPath) -> Any:
        """The resolved value, but a key bps does not read keeps its raw text where it cannot resolve.

        LSST resolves a key only when something uses it, so an unused include section (an
        ignored ``executionButler`` block, a provisioning script for another site) must not fail
        the submit; every key bps reads was already resolved strictly by the converter.
        """
        try:
            return self._r.resolved(path)
        except BpsConfigError:
            raw = self._r.raw(path)
            if isinstance(raw, dict):
                return {k: self._tolerant((*path, k)) for k in raw}
            if isinstance(raw, list):
                return [self._tolerant((*path, i)) for i in range(len(raw))]
            return raw

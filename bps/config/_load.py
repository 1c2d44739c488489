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

from .._exceptions import BpsConfigError
from ._layers import KeyPath, MergedTree, format_path, load_tree
from ._model import (
    BpsConfig,
    FinalJobConfig,
    FinalJobWhen,
    JobResources,
    PayloadConfig,
    SiteConfig,
    TaskResources,
)
from ._template import Resolver

#: Keys allowed at the top level of a submit YAML.
TOP_LEVEL_KEYS = frozenset(
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
        "requestMemory",
        "requestCpus",
        "numberOfRetries",
        "includeConfigs",
        "finalJob",
        "pipetask",
        "vars",
    }
)
PAYLOAD_KEYS = frozenset({"payloadName", "butlerConfig", "inCollection", "dataQuery", "output", "outputRun"})
RESOURCE_KEYS = frozenset({"requestMemory", "requestCpus", "numberOfRetries"})
FINAL_JOB_KEYS = frozenset({"whenRun", "updateOutputChain"}) | RESOURCE_KEYS
#: Placeholders computed by bps rather than set by keys.
BUILTIN_PLACEHOLDERS = ("timestamp", "uniqProcName")

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


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
    builtins: dict[str, Callable[[Resolver], str]] = {
        "timestamp": lambda _r: timestamp,
        "uniqProcName": lambda r: _uniq_proc_name(r.resolved(("payload", "outputRun")) or ""),
    }
    resolver = Resolver(tree, env, builtins)
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
    for section in ("site", "pipetask", "vars"):
        _require_mapping(tree, (section,), data.get(section))
    for label, value in (data.get("pipetask") or {}).items():
        _require_mapping(tree, ("pipetask", label), value)
        for key in value or {}:
            if key not in RESOURCE_KEYS:
                raise _unknown_key_error(tree, ("pipetask", label, key), RESOURCE_KEYS)
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

    def __init__(self, tree: MergedTree, resolver: Resolver, submit_yaml: Path, timestamp: str) -> None:
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

    def resources(self, prefix: KeyPath, required: bool) -> tuple[int | None, int | None, int | None]:
        return (
            self.integer((*prefix, "requestMemory"), minimum=1, required=required),
            self.integer((*prefix, "requestCpus"), minimum=1, required=required),
            self.integer((*prefix, "numberOfRetries"), minimum=0, required=required),
        )

    # -- sections ---------------------------------------------------------------------------------
    def convert(self) -> BpsConfig:
        qgraph_file = self.file_path(("qgraphFile",), required=False, must_exist=True)
        pipeline_yaml = None
        if qgraph_file is None:
            pipeline_yaml = self.file_path(("pipelineYaml",), required=True, must_exist=True)
        payload = self._payload(graph_given=qgraph_file is not None)
        memory, cpus, retries = self.resources((), required=True)
        assert memory is not None and cpus is not None and retries is not None
        resources = JobResources(memory, cpus, retries)
        compute_site = self.string(("computeSite",))
        submit_path = self.file_path(("submitPath",), required=True, must_exist=False)
        assert submit_path is not None
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
            task_resources=self._task_resources(),
            final_job=self._final_job(resources),
            timestamp=self._timestamp,
            uniq_proc_name=_uniq_proc_name(payload.output_run),
            variables=self._r.resolved(("vars",)) if self._r.has(("vars",)) else {},
            files=tuple(self._tree.files),
            resolved=resolved,
        )

    def _payload(self, graph_given: bool) -> PayloadConfig:
        butler_text = self.string(("payload", "butlerConfig"))
        if "://" in butler_text:
            butler_config = butler_text
        else:
            repo = self.file_path(("payload", "butlerConfig"), required=True, must_exist=True)
            butler_config = str(repo)
        return PayloadConfig(
            payload_name=self.string(("payload", "payloadName")),
            butler_config=butler_config,
            in_collection=self.collections(("payload", "inCollection"), required=not graph_given),
            data_query=self.string(("payload", "dataQuery"), required=False),
            output=self.string(("payload", "output")),
            output_run=self.string(("payload", "outputRun")),
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

    def _task_resources(self) -> dict[str, TaskResources]:
        out = {}
        for label in self._tree.data.get("pipetask") or {}:
            memory, cpus, retries = self.resources(("pipetask", label), required=False)
            out[label] = TaskResources(memory, cpus, retries)
        return out

    def _final_job(self, base: JobResources) -> FinalJobConfig:
        when_text = self.string(("finalJob", "whenRun"), required=False, default="ALWAYS").upper()
        try:
            when = FinalJobWhen(when_text)
        except ValueError:
            choices = ", ".join(w.value for w in FinalJobWhen)
            message = f"expected one of {choices}, got {when_text!r}"
            raise self._error(("finalJob", "whenRun"), message) from None
        memory, cpus, retries = self.resources(("finalJob",), required=False)
        return FinalJobConfig(
            when_run=when,
            update_output_chain=self.boolean(("finalJob", "updateOutputChain"), True),
            resources=TaskResources(memory, cpus, retries).apply(base),
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

"""Rendering a WorkflowGraph into ONE DAGMan DAG file (plus DAGMan's small config file).

Shape of the DAG (see ``_templates.py`` for the exact text)::

    CONFIG <name>.dag.config                    throttles (DAGMAN_MAX_JOBS_IDLE ...)
    NODE_STATUS_FILE <name>.node_status N       what `bps report` reads
    SUBMIT-DESCRIPTION <label> { ... }          one per job label: executable, common arguments,
                                                resources (as macros with the label's usual value
                                                as default), log paths, job policy
    JOB <node> <label>                          one per job
    VARS <node> skyargs="..." [skymem="..."]    what differs per node: the rest of the command line
                                                (quantum ids), and resources that differ from the
                                                label's usual value
    RETRY <node> N [UNLESS-EXIT code]           numberOfRetries / retryUnlessExit (several codes:
                                                a POST script maps them to the first one)
    PARENT a b CHILD c d                        edges, children with the same parents on one line
    FINAL finalJob finalJob                     the merge job: DAGMan runs it whatever happened
    SCRIPT PRE finalJob /usr/bin/test ...       ... except after `bps cancel` (see _templates.py)

A 20,000-job workflow is one DAG file of a few MB; no file is written per job.

Memory multiplier: a node whose job has ``memory_multiplier`` asks for
``min(request_memory * multiplier ** $(RETRY), memory_limit)`` MB, where ``$(RETRY)`` is DAGMan's
retry number of the node.  The job policy holds a job whose ``MemoryUsage`` exceeds its
``RequestMemory`` (needed where the pool does not enforce memory with cgroups) and removes jobs
held for memory (ours, or HTCondor's own code 34), so the node fails and DAGMan retries it with
the bigger request.  The node's RETRY count is ``numberOfRetries`` plus the number of memory steps
up to the limit, so growing memory never uses up the retries meant for other failures (the price:
any retry of such a node asks for more memory).  Walltime (``request_walltime``) is enforced the
same way with its own hold subcode (the node is retried like any failure).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bps import WmsError
from bps.config import FinalJobWhen
from bps.workflow import GenericJob, WorkflowGraph

from . import _templates as T
from ._site import HTCondorSiteSettings
from ._submit_dir import HTCondorLayout

#: Node names DAGMan reads as keywords of the PARENT/CHILD line.
_RESERVED_NODE_NAMES = frozenset({"PARENT", "CHILD"})
_NEEDS_QUOTES = re.compile(r"[\s']")
_NODE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
#: Names per PARENT ... CHILD line before it is split (DAGMan reads long lines, editors do not).
EDGE_LINE_NAMES = 200
_K = TypeVar("_K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class RenderedDag:
    """What :func:`render_dag` wrote."""

    dag_file: Path
    nodes: int
    descriptions: int
    size: int
    """Bytes of the DAG file."""


# -- quoting ----------------------------------------------------------------------------------------
def quote_argument(arg: str) -> str:
    """One argument in HTCondor's version-2 arguments syntax, as the ``Arguments`` job attribute holds it.

    An argument with white space or a single quote is wrapped in single quotes (a single quote
    inside doubled); ``$`` becomes ``$(DOLLAR)`` so submit-time macro expansion leaves it alone.
    """
    escaped = arg.replace("$", "$(DOLLAR)")
    if arg == "" or _NEEDS_QUOTES.search(arg):
        return "'" + escaped.replace("'", "''") + "'"
    return escaped


def quote_arguments(args: Sequence[str]) -> str:
    """Arguments for ``My.Arguments = "..."``: version-2 syntax, then ``"`` escaped as ``\\"``.

    condor_submit reads ``My.`` values in the old ClassAd syntax, where a backslash is literal
    except before a double quote; a trailing backslash gets a space after it (ignored by the
    version-2 syntax) so it cannot escape the closing quote.
    """
    raw = " ".join(quote_argument(a) for a in args)
    if "\n" in raw:
        raise WmsError(f"a job argument cannot contain a newline: {args!r}")
    if raw.endswith("\\"):
        raw += " "
    return raw.replace('"', '\\"')


def vars_value(text: str) -> str:
    """A VARS value: double-quoted, with backslashes and double quotes escaped (DAGMan's rules)."""
    if "\n" in text:
        raise WmsError(f"a DAG VARS value cannot contain a newline: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def classad_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_node_name(name: str) -> str:
    if not _NODE_NAME.match(name) or name.upper() in _RESERVED_NODE_NAMES:
        raise WmsError(
            f"job name {name!r} cannot be a DAGMan node name (letters, digits, '_', '.', '-'; "
            "not PARENT or CHILD)"
        )
    return name


# -- per-job values, with the plugin's defaults -----------------------------------------------------
def _disk(job: GenericJob) -> int:
    return job.request_disk or 0


def _walltime(job: GenericJob) -> int:
    return job.request_walltime or 0


def _multiplier(job: GenericJob) -> float | None:
    return float(job.memory_multiplier) if job.memory_multiplier else None


def _memory_limit(job: GenericJob) -> int:
    """The cap of a growing memory request: memory_limit, else what the last retry would ask for."""
    if job.memory_limit:
        return job.memory_limit
    multiplier = _multiplier(job) or 1.0
    return int(job.request_memory * multiplier ** max(job.number_of_retries, 0))


# -- helpers ----------------------------------------------------------------------------------------
def resolve_executable(program: str) -> str:
    """An absolute path for ``program``: itself, found on PATH, or next to this Python (a venv)."""
    if os.path.isabs(program):
        return program
    found = shutil.which(program)
    if found is None and os.sep not in program:
        sibling = Path(sys.executable).parent / program
        if os.access(sibling, os.X_OK):
            found = str(sibling)
    if found is None:
        raise WmsError(
            f"cannot find the program {program!r} on PATH or next to {sys.executable}; HTCondor needs "
            "an absolute executable path (activate the environment that provides it)"
        )
    return os.path.abspath(found)


def _usual(jobs: Iterable[GenericJob], key: Callable[[GenericJob], _K]) -> _K:
    """The most common value of ``key`` among ``jobs`` (ties: the first seen)."""
    return Counter(key(job) for job in jobs).most_common(1)[0][0]


def _common_prefix(argvs: list[list[str]]) -> int:
    first = argvs[0]
    n = len(first)
    for argv in argvs[1:]:
        n = min(n, len(argv))
        for i in range(n):
            if argv[i] != first[i]:
                n = i
                break
    return n


@dataclass(slots=True)
class _Description:
    """One label's submit description and how to derive its nodes' VARS."""

    name: str
    jobs: list[GenericJob]
    executable: str | None
    """None: the executable differs per node (then ``skyexe`` is a VARS of every node)."""
    prefix_len: int
    """Arguments (after argv[0]) common to every node of the label."""
    per_node_args: bool
    cpus: int
    memory: int
    disk: int
    walltime: int
    multiplier: float | None
    limit: int

    def node_vars(self, job: GenericJob) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.executable is None:
            out.append(("skyexe", resolve_executable(job.command[0])))
        if self.per_node_args:
            out.append(("skyargs", _quoted_arguments(_argv(job)[1 + self.prefix_len :])))
        if job.request_cpus != self.cpus:
            out.append(("skycpus", str(job.request_cpus)))
        if job.request_memory != self.memory:
            out.append(("skymem", str(job.request_memory)))
        if self.multiplier is not None:
            if (_multiplier(job) or 1.0) != self.multiplier:
                out.append(("skymemmult", repr(_multiplier(job) or 1.0)))
            limit = _memory_limit(job) if _multiplier(job) else job.request_memory
            if limit != self.limit:
                out.append(("skymemlimit", str(limit)))
        if _disk(job) != self.disk:
            out.append(("skydisk", str(_disk(job) * 1024)))
        if _walltime(job) != self.walltime:
            out.append(("skywalltime", str(_walltime(job))))
        if _has_attempt(job):
            out.append(("skyattempt", "$(RETRY)"))
        return out


#: LSST's run-time placeholder for the attempt number; DAGMan's $(RETRY) is 0 on the first attempt.
ATTEMPT_PLACEHOLDER = "{wmsAttemptNum}"


def _has_attempt(job: GenericJob) -> bool:
    return any(ATTEMPT_PLACEHOLDER in arg for arg in job.command)


#: Stands for ``$(skyattempt)`` through argument quoting (which would escape its ``$``).
_ATTEMPT_MARK = "SKYBATCHATTEMPTMARK"


def _argv(job: GenericJob) -> list[str]:
    """The job's command with ``{wmsAttemptNum}`` marked for :func:`_quoted_arguments`."""
    if not _has_attempt(job):
        return job.command
    return [arg.replace(ATTEMPT_PLACEHOLDER, _ATTEMPT_MARK) for arg in job.command]


def _quoted_arguments(args: Sequence[str]) -> str:
    """:func:`quote_arguments`, with ``{wmsAttemptNum}`` as ``$(skyattempt)``: a node VARS that
    DAGMan sets to its ``$(RETRY)`` on every attempt (the macro exists only in VARS values)."""
    return quote_arguments(args).replace(_ATTEMPT_MARK, "$(skyattempt)")


_SHELL_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def environment_command(environment: dict[str, str]) -> str:
    """``environment = "A='x y' B=z"`` in HTCondor's quoted syntax.

    Quotes in values are doubled as HTCondor requires; a ``${VAR}`` the submitting shell did not
    set becomes ``$ENV(VAR)``, which condor_submit (run by DAGMan) fills from its environment.
    """
    parts = []
    for name, value in environment.items():
        text = _SHELL_VAR.sub(r"$ENV(\1)", value).replace('"', '""').replace("'", "''")
        parts.append(f"{name}='{text}'")
    return f'environment = "{" ".join(parts)}"'


def _describe_label(label: str, jobs: list[GenericJob]) -> _Description:
    if len({job.environment for job in jobs}) > 1:
        raise WmsError(
            f"jobs labelled {label} have different environment: settings; one is expected per label"
        )
    executables = {job.command[0] for job in jobs}
    executable = resolve_executable(jobs[0].command[0]) if len(executables) == 1 else None
    prefix_len = _common_prefix([_argv(job)[1:] for job in jobs])
    per_node_args = any(len(job.command) - 1 > prefix_len for job in jobs)
    with_multiplier = [job for job in jobs if _multiplier(job)]
    multiplier = _usual(with_multiplier, lambda j: _multiplier(j) or 1.0) if with_multiplier else None
    limit = _usual(with_multiplier, _memory_limit) if with_multiplier else 0
    return _Description(
        name=label,
        jobs=jobs,
        executable=executable,
        prefix_len=prefix_len,
        per_node_args=per_node_args,
        cpus=_usual(jobs, lambda j: j.request_cpus),
        memory=_usual(jobs, lambda j: j.request_memory),
        disk=_usual(jobs, _disk),
        walltime=_usual(jobs, _walltime),
        multiplier=multiplier,
        limit=limit,
    )


def _description_text(desc: _Description, layout: HTCondorLayout, settings: HTCondorSiteSettings) -> str:
    first = desc.jobs[0]
    common = _quoted_arguments(_argv(first)[1 : 1 + desc.prefix_len])
    arguments = " ".join(part for part in (common, "$(skyargs)" if desc.per_node_args else "") if part)
    if desc.multiplier is not None:
        memory = T.MEMORY_GROWING.format(
            memory=desc.memory, multiplier=repr(desc.multiplier), limit=desc.limit
        )
    else:
        memory = f"$(skymem:{desc.memory})"
    body = T.DESCRIPTION_BODY.format(
        executable=desc.executable or "$(skyexe)",
        arguments=arguments,
        initialdir=layout.submit_dir,
        log_dir=layout.log_dir(desc.name),
        getenv=settings.getenv,
        request_cpus=f"$(skycpus:{desc.cpus})",
        request_memory=memory,
        label=desc.name,
    )
    lines = body.splitlines()
    if desc.disk or any(_disk(job) for job in desc.jobs):
        lines.append(f"request_disk = $(skydisk:{desc.disk * 1024})")
    has_walltime = any(_walltime(job) for job in desc.jobs)
    if has_walltime:
        lines.append(f"+MaxWallTimeMins = ($(skywalltime:{desc.walltime}) + 59) / 60")
    lines += _policy_lines(desc, settings.enforce_memory, has_walltime)
    environment = dict(settings.environment)
    environment.update(first.environment)  # the submit YAML's environment: wins over the site's
    if environment:
        lines.append(environment_command(environment))
    if settings.requirements:
        lines.append(f"requirements = {settings.requirements}")
    if settings.accounting_group:
        lines.append(f"accounting_group = {settings.accounting_group}")
    if settings.accounting_user:
        lines.append(f"accounting_group_user = {settings.accounting_user}")
    lines += [f"{key} = {value}" for key, value in settings.submit_commands]
    indented = "".join(f"    {line}\n" for line in lines)
    return T.DESCRIPTION_START.format(description=desc.name) + indented + T.DESCRIPTION_END


def _policy_lines(desc: _Description, enforce_memory: bool, has_walltime: bool) -> list[str]:
    memory = enforce_memory or desc.multiplier is not None
    if not memory and not has_walltime:
        return []
    lines = T.POLICY_MACROS.format(walltime=desc.walltime).splitlines()
    tests = []
    if memory:
        tests.append("$(skybatch_memory_over)")
    if has_walltime:
        tests.append("$(skybatch_walltime_over)")
    wall_reason = T.HOLD_REASON_WALLTIME.format(walltime=desc.walltime)
    if memory and has_walltime:
        reason = f"ifThenElse($(skybatch_memory_over), {T.HOLD_REASON_MEMORY}, {wall_reason})"
        subcode = f"ifThenElse($(skybatch_memory_over), {T.SUBCODE_MEMORY}, {T.SUBCODE_WALLTIME})"
    elif memory:
        reason, subcode = T.HOLD_REASON_MEMORY, str(T.SUBCODE_MEMORY)
    else:
        reason, subcode = wall_reason, str(T.SUBCODE_WALLTIME)
    hold = T.POLICY_HOLD.format(hold_tests=" || ".join(tests), hold_reason=reason, hold_subcode=subcode)
    return lines + hold.splitlines()


def memory_steps(job: GenericJob) -> int:
    """How many times the memory of ``job`` can grow before it reaches its limit (0 without a multiplier)."""
    multiplier = _multiplier(job)
    if multiplier is None or multiplier <= 1.0:
        return 0
    steps = 0
    memory = float(job.request_memory)
    limit = _memory_limit(job)
    while memory < limit:
        memory *= multiplier
        steps += 1
    return steps


def node_retries(job: GenericJob) -> int:
    """DAGMan retries of the node: ``numberOfRetries``, plus one per memory step (see module doc)."""
    return max(job.number_of_retries, 0) + memory_steps(job)


def _retry_lines(job: GenericJob, layout: HTCondorLayout) -> list[str]:
    """RETRY (with UNLESS-EXIT), and the POST script that maps several no-retry codes to one."""
    retries = node_retries(job)
    if retries <= 0:
        return []
    codes = job.retry_unless_exit
    if not codes:
        return [f"RETRY {job.name} {retries}"]
    lines = [f"RETRY {job.name} {retries} UNLESS-EXIT {codes[0]}"]
    if len(codes) > 1:
        post = T.UNLESS_EXIT_POST.format(
            node=job.name, script=layout.unless_exit_script, stop=codes[0], codes=" ".join(map(str, codes))
        )
        lines.append(post.rstrip("\n"))
    return lines


def needs_unless_exit_script(workflow: WorkflowGraph) -> bool:
    return any(
        len(job.retry_unless_exit) > 1 and node_retries(job) > 0 and not job.is_final for job in workflow
    )


def _edge_lines(workflow: WorkflowGraph, skip: str | None) -> list[str]:
    """PARENT ... CHILD ... lines: children with the same parent set share lines."""
    by_parents: dict[tuple[str, ...], list[str]] = {}
    for job in workflow:
        if job.name == skip:
            continue
        parents = tuple(sorted(workflow.parents(job.name)))
        if parents:
            by_parents.setdefault(parents, []).append(job.name)
    lines = []
    for parents, children in by_parents.items():
        for p in range(0, len(parents), EDGE_LINE_NAMES):
            for c in range(0, len(children), EDGE_LINE_NAMES):
                lines.append(
                    "PARENT "
                    + " ".join(parents[p : p + EDGE_LINE_NAMES])
                    + " CHILD "
                    + " ".join(children[c : c + EDGE_LINE_NAMES])
                )
    return lines


def dag_text_parts(
    workflow: WorkflowGraph, layout: HTCondorLayout, settings: HTCondorSiteSettings
) -> Iterable[str]:
    """The DAG file's text, in pieces (joined by :func:`render_dag`)."""
    if any(c.isspace() for c in str(layout.submit_dir)):
        raise WmsError(
            f"the submit directory {layout.submit_dir} contains white space, which DAG files cannot hold"
        )
    jobs_by_label: dict[str, list[GenericJob]] = {}
    for job in workflow:
        check_node_name(job.name)
        if not job.command:
            raise WmsError(f"job {job.name} has an empty command")
        jobs_by_label.setdefault(job.label, []).append(job)
    for label in jobs_by_label:
        check_node_name(label)
    final = workflow.final_job
    final_node = final.name if final is not None and workflow.final_job_when is FinalJobWhen.ALWAYS else None
    descriptions = {label: _describe_label(label, jobs) for label, jobs in jobs_by_label.items()}
    yield T.DAG_HEADER.format(
        name=workflow.name,
        nodes=len(workflow),
        labels=len(descriptions),
        config=layout.dag_config,
        node_status=layout.node_status,
        interval=settings.node_status_interval,
    )
    for desc in descriptions.values():
        yield "\n" + _description_text(desc, layout, settings)
    yield "\n"
    for job in workflow:
        desc = descriptions[job.label]
        keyword = "FINAL" if job.name == final_node else "JOB"
        lines = [f"{keyword} {job.name} {desc.name}"]
        node_vars = desc.node_vars(job)
        if node_vars:
            lines.append(f"VARS {job.name} " + " ".join(f"{k}={vars_value(v)}" for k, v in node_vars))
        if keyword == "JOB":  # DAGMan refuses RETRY on a FINAL node
            lines += _retry_lines(job, layout)
        if keyword == "FINAL":
            lines.append(T.FINAL_NODE_PRE.format(node=job.name).rstrip("\n"))
        yield "\n".join(lines) + "\n"
    edges = _edge_lines(workflow, final_node)
    if edges:
        yield "\n" + "\n".join(edges) + "\n"


def dagman_config_text(workflow: WorkflowGraph, settings: HTCondorSiteSettings) -> str:
    text = T.DAGMAN_CONFIG.format(name=workflow.name, max_idle=settings.max_idle, max_jobs=settings.max_jobs)
    return text + "".join(f"{key} = {value}\n" for key, value in settings.dagman_config)


def render_dag(
    workflow: WorkflowGraph, layout: HTCondorLayout, settings: HTCondorSiteSettings
) -> RenderedDag:
    """Write the DAG and its config file into the submit directory; return what was written."""
    text = "".join(dag_text_parts(workflow, layout, settings))
    layout.dag_config.write_text(dagman_config_text(workflow, settings), encoding="utf-8")
    for label in {job.label for job in workflow}:
        layout.log_dir(label).mkdir(parents=True, exist_ok=True)
    if needs_unless_exit_script(workflow):
        layout.unless_exit_script.write_text(T.UNLESS_EXIT_SCRIPT, encoding="utf-8")
        layout.unless_exit_script.chmod(0o755)
    tmp = layout.dag_file.with_name(layout.dag_file.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, layout.dag_file)
    labels = len({job.label for job in workflow})
    return RenderedDag(layout.dag_file, len(workflow), labels, len(text.encode()))

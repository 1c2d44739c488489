"""The LSST ``ctrl_bps`` submit-YAML dialect: which keys exist, where, and what skybatch does with them.

Operators arrive with years of LSST submit YAMLs.  Every key LSST's bps, HTCondor and Parsl plugins
document is listed here as either

* known: skybatch implements it with LSST's meaning (read by :mod:`._load` or a plugin), or
* accepted: skybatch does something else, said once per submit in a warning
  (:data:`ACCEPTED_WITH_WARNING`, keyed by dotted key path).

Any other key is a *free-form variable* when some ``{placeholder}`` uses it (LSST lets such keys
live at any level); otherwise it is an error with a "did you mean" suggestion, because a key
nothing reads is almost always a typo.  docs/coming-from-lsst.md is the operator's view of this
module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Resource keys: top level, ``pipetask.<label>``, ``cluster.<name>``, ``finalJob``.
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
        "requestMemoryMax",
    }
)

#: Command templates and the option strings LSST splices into them.
COMMAND_KEYS = frozenset(
    {
        "runQuantumCommand",
        "createQuantumGraph",
        "updateQuantumGraph",
        "defaultPreCmdOpts",
        "qgraphPreCmdOpts",
        "initPreCmdOpts",
        "runPreCmdOpts",
        "updateQgraphPreCmdOpts",
        "finalPreCmdOpts",
        "extraQgraphOptions",
        "extraInitOptions",
        "extraRunQuantumOptions",
        "extraUpdateQgraphOptions",
        "fileDistributionEndPoint",
        "pipetaskInput",
        "pipetaskOutput",
        "pipetaskDataQuery",
    }
)

#: Keys a job section (top level, ``pipetask.<label>``, ``cluster.<name>``, ``finalJob``) may hold
#: besides resources: LSST searches every job value through these sections.
JOB_KEYS = frozenset(
    {
        "runQuantumCommand",
        "environment",
        "profile",
        "accountingGroup",
        "accountingUser",
        "overwriteJobFiles",
        "computeSite",
        "preemptible",
        "queue",
    }
    | COMMAND_KEYS
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
            "submitRoot",
            "runQuantumExec",
            "includeConfigs",
            "finalJob",
            "pipetask",
            "clusterAlgorithm",
            "cluster",
            "jobLocalDatasetTypes",
            "vars",
            "saveDot",
            "saveGenericWorkflow",
            "whenSaveJobQgraph",
            "bpsUseShared",
            "subDirTemplate",
            "templateDataId",
            "customJob",
            "provisionResources",
            "provisioning",
            "wmsConfig",
            "executeMachinesPattern",
            "uniqProcName",
            "ordering",
        }
    )
    | RESOURCE_KEYS
    | JOB_KEYS
)

PAYLOAD_KEYS = frozenset(
    {
        "payloadName",
        "butlerConfig",
        "inCollection",
        "dataQuery",
        "output",
        "outputRun",
        "outCollection",
        "runInit",
        "fileDistributionEndPoint",
    }
)
#: ``finalJob.command1``, ``command2``...: the merge job's commands, run in order.
FINAL_COMMAND_KEY = re.compile(r"command(\d+)")
FINAL_JOB_KEYS = frozenset({"whenRun", "updateOutputChain"}) | RESOURCE_KEYS | JOB_KEYS
CLUSTER_KEYS = (
    frozenset(
        {"pipetasks", "dimensions", "equalDimensions", "findDependencyMethod"}
        | {"partitionDimensions", "partitionMaxClusters", "clusterTemplate"}
    )
    | RESOURCE_KEYS
    | JOB_KEYS
)
CUSTOM_JOB_KEYS = frozenset({"executable", "arguments"}) | RESOURCE_KEYS | JOB_KEYS

#: Keys LSST lets every job section hold that skybatch applies only per site or per run.
_PER_JOB = {
    "profile": "HTCondor submit commands are set per site (site.<name>.profile), not per job",
    "accountingGroup": "the accounting group is set per site or at the top level, not per job",
    "accountingUser": "the accounting user is set per site or at the top level, not per job",
    "computeSite": "one computeSite runs the whole workflow",
    "preemptible": "skybatch has no preemption flag; a preempted job is retried like any failure",
    "queue": "there are no queues; computeSite selects where jobs run",
}

_EB = (
    "jobs always run with the quantum-backed butler and registers outputs in the final "
    "merge job (finalJob); there is no execution butler to create or merge"
)
#: Dotted key path -> what skybatch does instead (one warning per submit when an operator's file
#: sets it).  A path names a key and everything under it.
ACCEPTED_WITH_WARNING: Mapping[str, str] = {
    "executionButler": _EB,
    "executionButlerTemplate": _EB,
    "useLazyCommands": "commands are always written out in full in workflow.json",
    "useBpsShared": "the submit directory must be readable by every job (the graph file is read in place)",
    "saveClusteredQgraph": "no pickles are written; workflow.json lists every job's quanta",
    "validateClusteredQgraph": "clusters are always checked (a quantum in two jobs or a cycle is an error)",
    "qgraphFileTemplate": "the graph file is always <submitPath>/{uniqProcName}.qgraph",
    "preemptible": "skybatch has no preemption flag; a preempted job is retried like any failure",
    "makeIdLink": "no id links are made; bps report/cancel/restart take the run id, a prefix of it, or the "
    "submit directory",
    "idLinkPath": "no id links are made; bps report/cancel/restart take the run id, a prefix of it, or the "
    "submit directory",
    "computeCloud": "there are no clouds: computeSite alone selects the site",
    "cloud": "there are no clouds: computeSite alone selects the site",
    "parsl": "Parsl's own log goes to <submit dir>/parsl/ at Parsl's default level",
    "zipDatasetTypes": "the final job registers every output file as it is; nothing is zipped",
    "createQuantumGraph": "bps builds the QuantumGraph itself, in-process, from the same values "
    "(butlerConfig, inCollection, output, outputRun, pipelineYaml, dataQuery); the command is not run",
    "qgraphPreCmdOpts": "bps builds the QuantumGraph in-process; no pipetask qgraph command runs",
    "extraQgraphOptions": "bps builds the QuantumGraph in-process; no pipetask qgraph command runs",
    "updateQuantumGraph": "a given qgraphFile is copied into the submit directory and keeps its own "
    "output run; no update command runs",
    "updateQgraphPreCmdOpts": "no update command runs (see updateQuantumGraph)",
    "extraUpdateQgraphOptions": "no update command runs (see updateQuantumGraph)",
    "finalJob.whenSetup": "the final job is always set up when the workflow is prepared",
    "finalJob.implementation": "the final job is always one job running its commands in order",
    "finalJob.concurrencyLimit": "final jobs are not throttled across runs",
    "finalJob.concurrency_limit": "final jobs are not throttled across runs",
    "provisioningJob": "the htcondor plugin runs no glidein provisioning job; the pool's own slots run "
    "the jobs",
    "executeMachinesPattern": "memoryLimit is not discovered from the pool; set memoryLimit or "
    "requestMemoryMax to cap memory scaling",
    "subDirTemplate": "job files go under <submit dir>/logs/<label>/, named after the job",
    "templateDataId": "job names are <label>_<data ID values> in the order of the task's dimensions",
    "ordering": "jobs are ordered by their data dependencies only",
    "cluster.*.findDependencyMethod": "dimension clusters group quanta by the values of the cluster's "
    "dimensions (with equalDimensions); dependencies are not followed",
    "cluster.*.partitionDimensions": "a dimension cluster is not split further; list every dimension in "
    "dimensions",
    "cluster.*.partitionMaxClusters": "a dimension cluster is not split further",
    "cluster.*.clusterTemplate": "cluster job names are <cluster>_<data ID values>",
    **{
        f"{section}.{key}": instead
        for key, instead in _PER_JOB.items()
        for section in ("pipetask.*", "cluster.*")
    },
    **{f"finalJob.{key}": instead for key, instead in _PER_JOB.items()},
}

#: Values of these keys under which skybatch does exactly what LSST does (no warning then).
SILENT_VALUES: Mapping[str, tuple[Any, ...]] = {
    "whenSaveJobQgraph": ("NEVER", "never"),
    "bpsUseShared": (True, "true", "True"),
    "saveGenericWorkflow": (False, "false", "False"),
    "useLazyCommands": (True, "true", "True"),
    "provisionResources": (False, "false", "False"),
    "saveClusteredQgraph": (False, "false", "False"),
    "validateClusteredQgraph": (False, "false", "False"),
    "preemptible": (True, "true", "True"),
    "makeIdLink": (False, "false", "False"),
    "executionButler.whenCreate": ("NEVER", "never"),
    "executionButler.whenMerge": ("NEVER", "never"),
    "finalJob.whenSetup": ("NEVER", "never"),
    "finalJob.implementation": ("JOB", "job"),
    "overwriteJobFiles": (False, "false", "False"),
    "finalJob.overwriteJobFiles": (False, "false", "False"),
    "pipetask.*.overwriteJobFiles": (False, "false", "False"),
    "cluster.*.overwriteJobFiles": (False, "false", "False"),
}

#: What a non-default value of these keys does instead.
VALUE_WARNINGS: Mapping[str, str] = {
    "whenSaveJobQgraph": "every job reads the one full graph file with its quantum ids (LSST's NEVER)",
    "bpsUseShared": "the submit directory must be readable by every job (the graph file is read in place)",
    "saveGenericWorkflow": "workflow.json (JSON, not a pickle) is always written to the submit directory",
    "provisionResources": "the htcondor plugin runs no glidein provisioning job; the pool's own slots "
    "run the jobs",
    "overwriteJobFiles": "every attempt keeps its own stdout/stderr (logs/<label>/<job>.<cluster>.out|.err)",
    "finalJob.overwriteJobFiles": "every attempt keeps its own stdout/stderr",
    "pipetask.*.overwriteJobFiles": "every attempt keeps its own stdout/stderr",
    "cluster.*.overwriteJobFiles": "every attempt keeps its own stdout/stderr",
}

#: LSST's wmsServiceClass values -> our plugin names.
WMS_ALIASES: Mapping[str, str] = {
    "lsst.ctrl.bps.htcondor.HTCondorService": "htcondor",
    "lsst.ctrl.bps.htcondor.htcondor_service.HTCondorService": "htcondor",
    "lsst.ctrl.bps.wms.htcondor.htcondor_service.HTCondorService": "htcondor",
    "lsst.ctrl.bps.parsl.ParslService": "parsl",
    "lsst.ctrl.bps.parsl.service.ParslService": "parsl",
}


def warning_for(path: tuple[str | int, ...], value: Any) -> str | None:
    """The one-line warning for an LSST key set at ``path`` to ``value``, or None if it needs none."""
    dotted = ".".join(str(p) for p in path)
    wildcard = ".".join([str(path[0]), "*", *map(str, path[2:])]) if len(path) > 2 else ""
    for key in (dotted, wildcard):
        if key and key in SILENT_VALUES and value in SILENT_VALUES[key]:
            return None
    for key in (dotted, wildcard):
        if key and key in VALUE_WARNINGS:
            return f"{dotted}: {value!r} is accepted for LSST compatibility; skybatch: {VALUE_WARNINGS[key]}"
        if key and key in ACCEPTED_WITH_WARNING:
            instead = ACCEPTED_WITH_WARNING[key]
            return f"{dotted}: accepted for LSST compatibility and not used; skybatch: {instead}"
    return None


def is_accepted(path: tuple[str | int, ...]) -> bool:
    """Whether ``path`` (or a key above it) is an LSST key accepted with a warning."""
    for end in range(len(path), 0, -1):
        part = path[:end]
        dotted = ".".join(str(p) for p in part)
        wildcard = ".".join([str(part[0]), "*", *map(str, part[2:])]) if len(part) > 2 else ""
        if dotted in ACCEPTED_WITH_WARNING or (wildcard and wildcard in ACCEPTED_WITH_WARNING):
            return True
        if dotted in VALUE_WARNINGS:
            return True
    return False

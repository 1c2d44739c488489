"""Templates of the files the HTCondor plugin writes: the DAG's parts and DAGMan's config file.

Kept apart from the code that fills them (``_render.py``) so what DAGMan and condor_submit read can
be reviewed in one place.  ``{name}`` fields are filled with :meth:`str.format`; literal braces of
the DAG language are doubled.
"""

from __future__ import annotations

DAG_HEADER = """\
# skybatch DAG for workflow {name}: {nodes} nodes, {labels} submit descriptions.
# One SUBMIT-DESCRIPTION per job label; node-specific values are VARS. See docs/operator-guide.md.
CONFIG {config}
NODE_STATUS_FILE {node_status} {interval}
"""

#: Opening of one inline submit description; its commands follow, indented, then DESCRIPTION_END.
DESCRIPTION_START = "SUBMIT-DESCRIPTION {description} {{\n"
DESCRIPTION_END = "}\n"

#: Commands every job gets, in this order (``{name}`` fields filled per label).
#:
#: The arguments and the stdout/stderr paths are set as the job ClassAd attributes themselves
#: (``My.Arguments`` in the version-2 syntax, ``My.Out``, ``My.Err``) rather than with the
#: ``arguments``/``output``/``error`` commands: HTCondor 23's DAGMan drops ``output`` and ``error``
#: of an inline description, and its direct submit turns ``arguments`` into the version-1 syntax,
#: which cannot hold an argument with a space.
DESCRIPTION_BODY = """\
universe = vanilla
executable = {executable}
My.Arguments = "{arguments}"
initialdir = {initialdir}
My.Out = "{log_dir}/$(JOB).$(ClusterId).out"
My.Err = "{log_dir}/$(JOB).$(ClusterId).err"
notification = never
getenv = {getenv}
request_cpus = {request_cpus}
request_memory = {request_memory}
+SkybatchLabel = "{label}"
+SkybatchRunDir = "{initialdir}"
"""

#: Memory grows on each DAGMan retry of the node: base * multiplier ** retry, capped at the limit.
MEMORY_GROWING = (
    "ifThenElse(int($(skymem:{memory}) * pow($(skymemmult:{multiplier}), $(RETRY:0))) > "
    "$(skymemlimit:{limit}), $(skymemlimit:{limit}), "
    "int($(skymem:{memory}) * pow($(skymemmult:{multiplier}), $(RETRY:0))))"
)

#: ClassAd tests the job policy below uses, as submit macros (expanded where they are used).
POLICY_MACROS = """\
skybatch_memory_over = (MemoryUsage =!= undefined) && (MemoryUsage > RequestMemory)
skybatch_walltime_over = (JobStatus == 2) && ($(skywalltime:{walltime}) > 0) && \
(time() - EnteredCurrentStatus > $(skywalltime:{walltime}))
"""

#: Hold a job that exceeds its memory request (a pool without cgroup enforcement never kills it)
#: or its walltime, with a reason the operator reads; then remove it so DAGMan retries the node
#: (a held node would stall the DAG).  HoldReasonCode 34 is HTCondor's own cgroup memory kill.
POLICY_HOLD = """\
periodic_hold = {hold_tests}
periodic_hold_reason = {hold_reason}
periodic_hold_subcode = {hold_subcode}
periodic_remove = (JobStatus == 5) && ((HoldReasonCode == 34) || \
((HoldReasonCode == 3) && ((HoldReasonSubCode == 34) || (HoldReasonSubCode == 47))))
"""
HOLD_REASON_MEMORY = (
    'strcat("skybatch: memory usage ", MemoryUsage, " MB exceeded request_memory ", RequestMemory, " MB")'
)
HOLD_REASON_WALLTIME = (
    'strcat("skybatch: run time exceeded the walltime request of ", $(skywalltime:{walltime}), " s")'
)
#: HoldReasonSubCode of the policy holds (HoldReasonCode 3, "JobPolicy").
SUBCODE_MEMORY = 34
SUBCODE_WALLTIME = 47

#: DAGMan runs a FINAL node even when the DAG is removed (``bps cancel``); this PRE script fails
#: then (DAG_STATUS 4 is DAG_STATUS_RM), so a cancelled run does not merge, as with every plugin.
FINAL_NODE_PRE = "SCRIPT PRE {node} /usr/bin/test $DAG_STATUS -ne 4\n"

#: DAGMan's ``RETRY ... UNLESS-EXIT`` takes one exit code.  A job with several (``retryUnlessExit:
#: [3, 4]``) gets this POST script, which turns any of them into the first, the one UNLESS-EXIT
#: names, and passes every other exit code through (a negative one, a signal, as 1).  The job's
#: own exit code stays in the nodes log, which is what `bps report` shows.
UNLESS_EXIT_SCRIPT_NAME = "skybatch_unless_exit.sh"
UNLESS_EXIT_SCRIPT = """\
#!/bin/sh
# Written by skybatch: POST script of DAG nodes with several retryUnlessExit codes.
# Usage: skybatch_unless_exit.sh $RETURN STOP CODE...; exits STOP if $RETURN is one of CODE...
ret=$1
stop=$2
shift 2
for code in "$@"; do
    [ "$ret" = "$code" ] && exit "$stop"
done
case "$ret" in
    -*) exit 1 ;;
esac
exit "$ret"
"""
UNLESS_EXIT_POST = "SCRIPT POST {node} {script} $RETURN {stop} {codes}\n"

DAGMAN_CONFIG = """\
# DAGMan configuration for workflow {name}, written by skybatch (site settings maxIdle, maxJobs,
# dagmanConfig).
DAGMAN_MAX_JOBS_IDLE = {max_idle}
DAGMAN_MAX_JOBS_SUBMITTED = {max_jobs}
"""

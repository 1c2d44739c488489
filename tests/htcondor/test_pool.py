"""The HTCondor test pool is real: DAGs submitted by the unprivileged user run to completion in it.

Every DAG here is submitted inside the chroot as the pool user, the way bps will submit: with
``condor_submit_dag``, with the Python bindings the chroot venv imports (``htcondor2``), and with
one ``SUBMIT-DESCRIPTION`` block per task plus per-node ``VARS`` and a FINAL node.  The node jobs
run the chroot venv's Python, so they also prove the project is importable inside jobs.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from pool import VENV, Pool, WorkDir

pytestmark = pytest.mark.htcondor

PYTHON = f"{VENV}/bin/python"

#: Node A writes the shared file (who ran it, which Python, where ``butler`` came from);
#: node B, its child, reads it and appends.
NODE_PY = """\
import pathlib, pwd, os, sys

node, path = sys.argv[1], pathlib.Path(sys.argv[2])
if node == "A":
    import butler

    user = pwd.getpwuid(os.getuid()).pw_name
    python = "{}.{}".format(*sys.version_info)
    path.write_text(f"A: user={user} python={python} butler={butler.__file__}\\n")
else:
    lines = path.read_text().splitlines()
    with path.open("a") as stream:
        stream.write(f"B: read {len(lines)} line(s)\\n")
"""

NODE_SUB = f"""\
universe = vanilla
executable = {PYTHON}
arguments = node.py $(node) shared.txt
should_transfer_files = NO
output = $(node).out
error = $(node).err
log = node.log
request_memory = 256
queue
"""

TWO_NODE_DAG = """\
JOB A node.sub
VARS A node="A"
JOB B node.sub
VARS B node="B"
PARENT A CHILD B
"""

TWO_NODE_RESULT = "A: user=skybatch python=3.13 butler=/skybatch/butler/__init__.py\nB: read 1 line(s)\n"

#: Appends "<label> <detail>" to trace.txt, then exits with the code given (default 0).
STEP_PY = """\
import sys

label, detail = sys.argv[1], sys.argv[2]
with open("trace.txt", "a") as stream:
    stream.write(f"{label} {detail}\\n")
sys.exit(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
"""

#: One description per task label, nodes differing only in VARS; the FINAL node too.
DESCRIPTION_DAG = f"""\
SUBMIT-DESCRIPTION isr {{
    universe = vanilla
    executable = {PYTHON}
    arguments = "step.py $(label) $(detector)"
    should_transfer_files = NO
    output = $(label)_$(detector).out
    error = $(label)_$(detector).err
    log = steps.log
}}
SUBMIT-DESCRIPTION merge {{
    universe = vanilla
    executable = {PYTHON}
    arguments = "step.py $(label) $(what)"
    should_transfer_files = NO
    output = $(label).out
    error = $(label).err
    log = steps.log
}}
JOB isr_1 isr
VARS isr_1 label="isr" detector="1"
JOB isr_2 isr
VARS isr_2 label="isr" detector="2"
JOB gather merge
VARS gather label="gather" what="detectors"
PARENT isr_1 isr_2 CHILD gather
FINAL finish merge
VARS finish label="final" what="merge"
"""

#: A failing node: its child never runs, the FINAL node still does.
FAILING_DAG = f"""\
SUBMIT-DESCRIPTION step {{
    universe = vanilla
    executable = {PYTHON}
    arguments = "step.py $(label) $(detail) $(code)"
    should_transfer_files = NO
    output = $(label).out
    error = $(label).err
    log = steps.log
}}
JOB bad step
VARS bad label="bad" detail="exits" code="3"
JOB after step
VARS after label="after" detail="never" code="0"
PARENT bad CHILD after
FINAL finish step
VARS finish label="final" detail="runs" code="0"
"""

#: Runs inside the chroot: submit a DAG with the htcondor2 bindings and wait for DAGMan to end.
BINDINGS_DRIVER = """\
import json, sys, time

import htcondor2

dag = sys.argv[1]
schedd = htcondor2.Schedd()
cluster = schedd.submit(htcondor2.Submit.from_dag(dag, {"force": True})).cluster()
events = htcondor2.JobEventLog(dag + ".dagman.log")
for event in events.events(stop_after=120):
    if event.cluster == cluster and event.type == htcondor2.JobEventType.JOB_TERMINATED:
        break
else:
    sys.exit(f"DAGMan job {cluster} did not terminate within 120 s")
projection = ["ExitCode", "DAG_Status", "JobStatus"]
for _ in range(100):
    ads = schedd.history(constraint=f"ClusterId == {cluster}", projection=projection, match=1)
    if ads:
        break
    time.sleep(0.2)
else:
    sys.exit(f"DAGMan job {cluster} not in the history")
print(json.dumps({"cluster": cluster, "queued": len(schedd.query(f"ClusterId == {cluster}")),
                  **{key: ads[0].get(key) for key in projection}}))
"""


def _submit_dag(pool: Pool, work: WorkDir, dag: str) -> int:
    done = pool.run_as_user(["condor_submit_dag", "-force", dag], cwd=work.inside)
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"submitted to cluster (\d+)", done.stdout)
    assert match, done.stdout
    return int(match.group(1))


def _wait_for_dag(pool: Pool, work: WorkDir, dag: str, cluster: int, timeout: float = 120) -> dict[str, int]:
    """Wait for DAGMan's own log to record its end, then read its final ad from condor_history."""
    deadline = time.monotonic() + timeout
    dagman_log = work.host / f"{dag}.dagman.log"
    while not (dagman_log.is_file() and "Job terminated" in dagman_log.read_text()):
        if time.monotonic() > deadline:
            queue = pool.run_as_user(["condor_q", "-nobatch", "-dag"]).stdout
            out = work.host / f"{dag}.dagman.out"
            tail = out.read_text()[-3000:] if out.is_file() else "(no dagman.out)"
            pytest.fail(f"DAG {dag} (cluster {cluster}) not done within {timeout:.0f} s\n{queue}\n{tail}")
        time.sleep(0.25)
    while True:
        queued = pool.run_as_user(["condor_q", str(cluster), "-af", "JobStatus"]).stdout.split()
        ad = pool.run_as_user(
            ["condor_history", str(cluster), "-limit", "1", "-af", "ExitCode", "DAG_Status", "JobStatus"]
        ).stdout.split()
        if not queued and len(ad) == 3:
            return dict(zip(["ExitCode", "DAG_Status", "JobStatus"], map(int, ad), strict=True))
        assert time.monotonic() < deadline, f"DAGMan job {cluster}: condor_q {queued}, condor_history {ad}"
        time.sleep(0.25)


def _node_exit_codes(nodes_log: str) -> dict[str, int]:
    """Node name -> return value, from the submit (000) and terminated (005) events of a nodes log."""
    node_of: dict[str, str] = {}
    codes: dict[str, int] = {}
    for event in nodes_log.split("...\n"):
        header = re.match(r"\s*(\d{3}) \((\d+\.\d+\.\d+)\)", event)
        if not header:
            continue
        kind, job = header.groups()
        if kind == "000" and (node := re.search(r"DAG Node: (\S+)", event)):
            node_of[job] = node.group(1)
        elif kind == "005" and (code := re.search(r"return value (\d+)", event)):
            codes[node_of[job]] = int(code.group(1))
    return codes


def _two_node_workdir(pool: Pool, name: str) -> WorkDir:
    work = pool.make_workdir(name)
    work.write("node.py", NODE_PY)
    work.write("node.sub", NODE_SUB)
    work.write("two.dag", TWO_NODE_DAG)
    return work


def test_pool_has_a_slot_and_the_bindings(condor_pool: Pool) -> None:
    status = condor_pool.run_as_user(["condor_status", "-af", "Name", "State"])
    assert status.returncode == 0 and "slot1@" in status.stdout, status.stdout + status.stderr
    versions = condor_pool.versions()
    assert versions["python"].startswith("3.13.")
    assert versions["condor"] == versions["htcondor2"]  # the bindings match the daemons
    whoami = condor_pool.run_as_user(["id", "-un"])
    assert whoami.stdout.strip() == "skybatch"


def test_two_node_dag_with_condor_submit_dag(condor_pool: Pool) -> None:
    work = _two_node_workdir(condor_pool, "two-node-cli")
    started = time.monotonic()
    cluster = _submit_dag(condor_pool, work, "two.dag")
    final = _wait_for_dag(condor_pool, work, "two.dag", cluster)
    print(f"two-node DAG turnaround (condor_submit_dag): {time.monotonic() - started:.1f} s")
    assert final == {"ExitCode": 0, "DAG_Status": 0, "JobStatus": 4}
    assert work.read("shared.txt") == TWO_NODE_RESULT
    assert _node_exit_codes(work.read("two.dag.nodes.log")) == {"A": 0, "B": 0}


def test_two_node_dag_with_python_bindings(condor_pool: Pool) -> None:
    work = _two_node_workdir(condor_pool, "two-node-bindings")
    work.write("driver.py", BINDINGS_DRIVER)
    started = time.monotonic()
    done = condor_pool.run_as_user(["python", "driver.py", "two.dag"], cwd=work.inside, timeout=180)
    print(f"two-node DAG turnaround (htcondor2): {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    final = json.loads(done.stdout)
    assert final["queued"] == 0
    assert (final["ExitCode"], final["DAG_Status"], final["JobStatus"]) == (0, 0, 4)
    assert work.read("shared.txt") == TWO_NODE_RESULT
    assert _node_exit_codes(work.read("two.dag.nodes.log")) == {"A": 0, "B": 0}


def test_submit_description_blocks_with_vars_and_final_node(condor_pool: Pool) -> None:
    work = condor_pool.make_workdir("submit-descriptions")
    work.write("step.py", STEP_PY)
    work.write("tasks.dag", DESCRIPTION_DAG)
    cluster = _submit_dag(condor_pool, work, "tasks.dag")
    final = _wait_for_dag(condor_pool, work, "tasks.dag", cluster)
    assert final == {"ExitCode": 0, "DAG_Status": 0, "JobStatus": 4}
    trace = work.read("trace.txt").splitlines()
    assert sorted(trace[:2]) == ["isr 1", "isr 2"]  # siblings, in either order
    assert trace[2:] == ["gather detectors", "final merge"]
    codes = _node_exit_codes(work.read("tasks.dag.nodes.log"))
    assert codes == {"isr_1": 0, "isr_2": 0, "gather": 0, "finish": 0}


def test_final_node_runs_after_a_failure(condor_pool: Pool) -> None:
    work = condor_pool.make_workdir("final-after-failure")
    work.write("step.py", STEP_PY)
    work.write("failing.dag", FAILING_DAG)
    cluster = _submit_dag(condor_pool, work, "failing.dag")
    final = _wait_for_dag(condor_pool, work, "failing.dag", cluster)
    # A FINAL node that succeeds decides DAGMan's exit code: 0 although a node failed.  The failure
    # shows in DAG_Status (2 = DAG_STATUS_NODE_FAILED) and in the rescue DAG written beside it.
    assert final == {"ExitCode": 0, "DAG_Status": 2, "JobStatus": 4}
    assert (work.host / "failing.dag.rescue001").is_file()
    assert work.read("trace.txt").splitlines() == ["bad exits", "final runs"]
    assert _node_exit_codes(work.read("failing.dag.nodes.log")) == {"bad": 3, "finish": 0}

"""Reading what DAGMan leaves in the submit directory into per-node facts.

Three sources, all plain text, parsed here without the HTCondor bindings (so ``bps report`` works
on a machine without them, and the parsers are tested on recorded files):

* the node status file (``NODE_STATUS_FILE``): ClassAds, one ``DagStatus`` ad, one ``NodeStatus``
  ad per node (``NodeStatus`` number, ``StatusDetails``, ``RetryCount``, ``JobProcsHeld``), then a
  ``StatusEnd`` ad.  DAGMan rewrites it every few seconds and once more when it exits.
* ``<dag>.nodes.log``: every node job's events; the submit event names the node (``DAG Node:``),
  so each later event of that HTCondor cluster belongs to it.  Gives attempts, exit codes, hold
  reasons, whether the last attempt is running, and the cluster id in the log file names.
* ``<dag>.dagman.out``: DAGMan's own log; gives whether DAGMan has exited and with what status,
  and its first error line (a DAG that could not even start).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any


class NodeStatus(IntEnum):
    """DAGMan's node states (the ``NodeStatus`` attribute of the node status file)."""

    NOT_READY = 0
    READY = 1
    PRERUN = 2
    SUBMITTED = 3
    POSTRUN = 4
    DONE = 5
    ERROR = 6
    FUTILE = 7


# -- the node status file: a sequence of ClassAds in "new" syntax ----------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>/\*.*?\*/|//[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>[\[\]{}=;,])
      | (?P<other>[^\s\[\]{}=;,"]+)
    )""",
    re.VERBOSE | re.DOTALL,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only an unterminated string is left: a file cut short
            break
        pos = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "comment":
            out.append((kind, match.group(kind)))
    return out


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def parse_classads(text: str) -> list[dict[str, Any]]:
    """The ads of a node status file: ints, floats, strings and lists of those; other values as text.

    A truncated last ad (DAGMan writes the file in place on some versions) is dropped.
    """
    tokens = _tokens(text)
    ads: list[dict[str, Any]] = []
    i = 0

    def value(j: int) -> tuple[Any, int]:
        kind, tok = tokens[j]
        if kind == "string":
            return _unquote(tok), j + 1
        if kind == "number":
            return (float(tok) if any(c in tok for c in ".eE") else int(tok)), j + 1
        if tok == "{":
            items = []
            j += 1
            while tokens[j][1] != "}":
                item, j = value(j)
                items.append(item)
                if tokens[j][1] == ",":
                    j += 1
            return items, j + 1
        # an expression we do not need: keep its tokens as text up to the ';' or ']'
        parts = []
        while tokens[j][1] not in (";", "]"):
            parts.append(tokens[j][1])
            j += 1
        return " ".join(parts), j

    try:
        while i < len(tokens):
            if tokens[i][1] != "[":
                raise ValueError(f"expected '[', got {tokens[i][1]!r}")
            i += 1
            ad: dict[str, Any] = {}
            while tokens[i][1] != "]":
                name = tokens[i][1]
                if tokens[i + 1][1] != "=":
                    raise ValueError(f"expected '=' after {name!r}")
                ad[name], i = value(i + 2)
                if tokens[i][1] == ";":
                    i += 1
            ads.append(ad)
            i += 1
    except IndexError:
        pass  # truncated: keep the complete ads
    return ads


@dataclass(frozen=True, slots=True)
class NodeState:
    """One ``NodeStatus`` ad."""

    name: str
    status: NodeStatus
    details: str = ""
    retries: int = 0
    held: int = 0


@dataclass(frozen=True, slots=True)
class DagStatusFile:
    """The node status file as a whole."""

    dag_status: int | None
    """DagStatus: the DAG as a whole, in the node numbering (3 submitted, 5 done, 6 error ...)."""
    nodes: dict[str, NodeState]
    timestamp: int | None = None
    complete: bool = True
    """False when the ``StatusEnd`` ad is missing (a file read while DAGMan rewrote it)."""


def read_node_status(path: Path) -> DagStatusFile | None:
    """The node status file, or None if DAGMan has not written it yet."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return parse_node_status(text)


def parse_node_status(text: str) -> DagStatusFile:
    dag_status = timestamp = None
    nodes: dict[str, NodeState] = {}
    complete = False
    for ad in parse_classads(text):
        kind = ad.get("Type")
        if kind == "DagStatus":
            dag_status = _int_or_none(ad.get("DagStatus"))
            timestamp = _int_or_none(ad.get("Timestamp"))
        elif kind == "NodeStatus" and isinstance(ad.get("Node"), str):
            try:
                status = NodeStatus(int(ad.get("NodeStatus", 0)))
            except ValueError:
                status = NodeStatus.NOT_READY
            nodes[ad["Node"]] = NodeState(
                name=ad["Node"],
                status=status,
                details=str(ad.get("StatusDetails", "") or ""),
                retries=int(ad.get("RetryCount", 0) or 0),
                held=int(ad.get("JobProcsHeld", 0) or 0),
            )
        elif kind == "StatusEnd":
            complete = True
    return DagStatusFile(dag_status, nodes, timestamp, complete)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


# -- the nodes log: HTCondor user-log events ------------------------------------------------------
_EVENT_HEAD = re.compile(r"^(\d{3}) \((\d+)\.(\d+)\.(\d+)\) (\S+ \S+) (.*)$")
_DAG_NODE = re.compile(r"^\s*DAG Node: (\S+)")
_RETURN = re.compile(r"\(1\) Normal termination \(return value (-?\d+)\)")
_SIGNAL = re.compile(r"\(0\) Abnormal termination \(signal (\d+)\)")
_HOLD_CODE = re.compile(r"^\s*Code (\d+) Subcode (-?\d+)")
_MEMORY_ROW = re.compile(r"^\s*Memory \(MB\)\s*:\s*(\d+)?\s+(\d+)\s+(\d+)")

EVENT_SUBMIT = 0
EVENT_EXECUTE = 1
EVENT_TERMINATED = 5
EVENT_ABORTED = 9
EVENT_HELD = 12
EVENT_RELEASED = 13
#: Events after which the attempt is no longer executing (evicted, terminated, shadow exception,
#: aborted, held, ...).
_STOP_EVENTS = frozenset({4, 5, 7, 9, 12, 22, 24})


@dataclass(slots=True)
class NodeJobs:
    """Everything the nodes log says about one node's jobs (all its attempts, all submissions)."""

    name: str
    clusters: list[int] = field(default_factory=list)
    """HTCondor cluster of each submitted attempt, in order."""
    starts: int = 0
    """Execute events: attempts that started running."""
    last_event: int | None = None
    """Event number of the last event of the last cluster."""
    exit_code: int | None = None
    """Of the last terminated attempt (negative: killed by that signal)."""
    hold_reason: str = ""
    hold_code: tuple[int, int] | None = None
    aborted: bool = False
    """The last attempt was removed (by the policy, by DAGMan on cancel, or by hand)."""
    running: bool = False
    """The last attempt started executing and has not stopped yet."""
    memory_usage: int | None = None
    memory_request: int | None = None

    @property
    def last_cluster(self) -> int | None:
        return self.clusters[-1] if self.clusters else None


def parse_nodes_log(text: str) -> dict[str, NodeJobs]:
    """Node name -> its jobs' facts.  Unknown events are skipped; a torn last event is ignored;
    an event whose first line (number, job id, time, text) was seen already is not counted twice."""
    nodes: dict[str, NodeJobs] = {}
    by_cluster: dict[int, NodeJobs] = {}
    events = text.split("\n...\n")
    if not text.endswith("...\n"):
        events = events[:-1]  # the last one is still being written
    seen: set[str] = set()
    for block in events:
        lines = block.strip("\n").split("\n")
        head = _EVENT_HEAD.match(lines[0]) if lines else None
        if head is None or lines[0] in seen:
            continue  # not an event, or one read twice (an archived log that DAGMan had not truncated)
        seen.add(lines[0])
        event, cluster = int(head.group(1)), int(head.group(2))
        body = lines[1:]
        if event == EVENT_SUBMIT:
            name = next((m.group(1) for m in map(_DAG_NODE.match, body) if m), None)
            if name is None:
                continue
            node = nodes.setdefault(name, NodeJobs(name))
            node.clusters.append(cluster)
            node.exit_code, node.aborted, node.hold_reason, node.hold_code = None, False, "", None
            node.running = False
            by_cluster[cluster] = node
        else:
            found = by_cluster.get(cluster)
            if found is None:
                continue
            node = found
            _apply_event(node, event, head.group(6), body)
        node.last_event = event
    return nodes


def _apply_event(node: NodeJobs, event: int, headline: str, body: list[str]) -> None:
    if event == EVENT_EXECUTE:
        node.starts += 1
        node.running = True
        return
    if event in _STOP_EVENTS:
        node.running = False
    if event == EVENT_TERMINATED:
        text = "\n".join(body)
        returned = _RETURN.search(text)
        signalled = _SIGNAL.search(text)
        if returned:
            node.exit_code = int(returned.group(1))
        else:
            node.exit_code = -int(signalled.group(1)) if signalled else None
        for line in body:
            row = _MEMORY_ROW.match(line)
            if row:
                node.memory_usage = int(row.group(1)) if row.group(1) else None
                node.memory_request = int(row.group(2))
    elif event == EVENT_HELD:
        reason = body[0].strip() if body else headline
        node.hold_reason = reason
        for line in body[1:]:
            code = _HOLD_CODE.match(line)
            if code:
                node.hold_code = (int(code.group(1)), int(code.group(2)))
    elif event == EVENT_RELEASED:
        node.hold_reason, node.hold_code = "", None
    elif event == EVENT_ABORTED:
        node.aborted = True


def read_nodes_logs(paths: list[Path]) -> dict[str, NodeJobs]:
    """Facts from several nodes logs read as one (cluster ids never repeat across submissions)."""
    texts: list[str] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        if texts and not texts[-1].endswith("\n...\n"):  # an archived log's torn last event
            end = texts[-1].rfind("\n...\n")
            texts[-1] = texts[-1][: end + 5] if end >= 0 else ""
        texts.append(text)
    return parse_nodes_log("".join(texts))


# -- dagman.out ------------------------------------------------------------------------------------
_EXITING = re.compile(r"\(condor_DAGMAN\) pid \d+ EXITING WITH STATUS (-?\d+)")
_STARTING = re.compile(r"\*\* condor_scheduniv_exec\.(\d+)\.\d+ \(CONDOR_DAGMAN\) STARTING UP")
_ERROR = re.compile(r"^\S+ \S+ (ERROR.*|Error.*)$")
_REMOVED = re.compile(r"Received SIGUSR1|DAGMan.*was removed|condor_rm", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DagmanRun:
    """The last DAGMan process's story, from the last ``STARTING UP`` of dagman.out on."""

    cluster: int | None
    exited: bool
    exit_status: int | None
    removed: bool
    first_error: str


def parse_dagman_out(text: str) -> DagmanRun | None:
    starts = list(_STARTING.finditer(text))
    if not starts:
        return None
    last = starts[-1]
    section = text[last.start() :]
    exiting = _EXITING.search(section)
    error = ""
    for line in section.splitlines():
        match = _ERROR.match(line)
        if match:
            error = match.group(1).strip()
            break
    return DagmanRun(
        cluster=int(last.group(1)),
        exited=exiting is not None,
        exit_status=int(exiting.group(1)) if exiting else None,
        removed=_REMOVED.search(section) is not None,
        first_error=error,
    )


def read_dagman_out(path: Path) -> DagmanRun | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return parse_dagman_out(text)


# -- the DAG file itself: which nodes there are, and their labels ----------------------------------
_JOB_LINE = re.compile(r"^(JOB|FINAL)\s+(\S+)\s+(\S+)")


def read_dag_nodes(path: Path) -> dict[str, str]:
    """Node name -> submit description name (our job label), in DAG order."""
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            if line.startswith(("JOB ", "FINAL ")):
                match = _JOB_LINE.match(line)
                if match:
                    out[match.group(2)] = match.group(3)
    return out


def read_rescue_done(path: Path) -> frozenset[str]:
    """Nodes a rescue DAG marks DONE: what a restarted DAGMan will not run again."""
    with path.open(encoding="utf-8") as stream:
        return frozenset(
            line.split()[1] for line in stream if line.startswith("DONE ") and len(line.split()) > 1
        )

"""The benchmark workload W(E, D), run end to end as an operator would feel it, as one command.

    python benchmarks/workload.py --exposures 50 --detectors 20
    python benchmarks/workload.py --exposures 500 --detectors 20 --stages 1-6,10 --keep --workdir /tmp/w500

One instrument with D detectors and E exposures; ``raw`` small dict datasets; the quickstart
pipeline (isr and calibrate per exposure and detector, gather per exposure): 2*E*D + E quanta.
Each stage prints one line with its figure; a table comparing them with the targets (and with the
LSST middleware's figures) closes the run.  Stages (``--stages`` takes numbers or names):

     1 repo      repository + dimension records (in-process library calls)
     2 puts      E*D Butler.put of raw (in-process): puts/s
     3 build     ``pipetask qgraph ... --save-qgraph`` whole process; also build_quantum_graph in-process
     4 size      graph file size and bytes per quantum
     5 load      GraphReader(...).read_all() in-process
     6 read      one quantum: first read in a fresh process (imports apart), warm average in-process
     7 run       ``pipetask run -j 2`` whole process, into a fresh output collection: quanta/s
     8 qbb       one ``pipetask run-qbb REPO GRAPH --qgraph-node-id ID`` job, whole process
     9 merge     ``butler transfer-from-graph GRAPH REPO`` after running every quantum with run-qbb
    10 prepare   ``bps prepare CONFIG`` whole process, for each WMS plugin, then with dimension clustering

Whole-process figures run the installed console scripts (``butler``, ``pipetask``, ``bps``) as
subprocesses.  Their bytecode is compiled once, before any timing, into ``WORKDIR/pycache`` (an
installed skybatch has its ``.pyc`` files; compiling sources on every start would measure the
compiler), even when PYTHONDONTWRITEBYTECODE is set here.  Medians are over ``--repeat`` runs
after one untimed warm-up run.  A stage that fails prints its error and the others go on; the
command then exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from butler import Butler

PIPELINE = ROOT / "submit_configs" / "quickstart_pipeline.yaml"
INPUT_COLLECTION = "DemoCam/defaults"
WMS_ENTRY_POINTS = "skybatch.wms"
SUBPROCESS_TIMEOUT = 3600.0
WARM_READS = 2000

# Dimension clustering (the LSST ctrl_bps keys): isr and calibrate of one (exposure, detector) in
# one job, gather alone.  Given to ``bps prepare`` through includeConfigs, so --cluster-config can
# swap in another clustering.
DEFAULT_CLUSTER_CONFIG = """\
clusterAlgorithm: dimension
cluster:
  isr_calibrate:
    pipetasks: isr,calibrate
    dimensions: exposure,detector
"""


# -- what is measured, and against what --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One figure of the closing table: its goal for W(50, 20) and the LSST middleware's figure."""

    label: str
    unit: str
    higher_is_better: bool | None
    """None: no goal, the figure is informative."""
    goal: float | None
    lsst: float | None


TARGETS: dict[str, Target] = {
    "repo": Target("repo + dimension records", "s", None, None, None),
    "puts": Target("E*D puts of raw", "puts/s", True, 1500.0, 156.0),
    "build": Target("QuantumGraph build (whole process)", "s", False, 0.7, 3.4),
    "build_inproc": Target("build_quantum_graph (in-process)", "s", None, None, None),
    "bytes": Target("bytes per quantum", "B", False, 150.0, 261.0),
    "load": Target("whole-graph load (in-process)", "ms", None, None, None),
    "read_first": Target("one-quantum read, first (open+read)", "ms", False, 20.0, 210.0),
    "read_warm": Target("one-quantum read, warm", "ms", False, 1.0, 9.5),
    "run": Target("pipetask run -j 2", "quanta/s", True, 150.0, 1.1),
    "qbb": Target("one run-qbb job (whole process)", "s", False, 0.5, 1.7),
    "merge": Target("merge: transfer-from-graph", "s", False, 0.52, 5.2),
    "prepare": Target("bps prepare", "s", False, 0.6, 6.0),
}


@dataclass(slots=True)
class Measure:
    key: str
    value: float
    label: str | None = None
    """Replaces the target's label in the table (e.g. which plugin)."""
    load: float = 0.0


@dataclass(slots=True)
class StageResult:
    line: str
    measures: list[Measure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    failures: int = 0
    """Parts of the stage that failed while others gave figures (printed in ``details``)."""


class StageError(Exception):
    """A stage could not produce its figure; the message is printed in place of it."""


class NotAvailable(Exception):
    """The thing a stage measures does not exist yet (e.g. ``bps prepare``); not a failure."""


@dataclass(frozen=True, slots=True)
class Stage:
    number: int
    name: str
    title: str
    method: str


STAGES: tuple[Stage, ...] = (
    Stage(1, "repo", "repo + dimension records", "stage_repo"),
    Stage(2, "puts", "E*D puts of raw", "stage_puts"),
    Stage(3, "build", "QuantumGraph build", "stage_build"),
    Stage(4, "size", "graph file size", "stage_size"),
    Stage(5, "load", "whole-graph load", "stage_load"),
    Stage(6, "read", "one-quantum load", "stage_read"),
    Stage(7, "run", "pipetask run -j 2", "stage_run"),
    Stage(8, "qbb", "one run-qbb job", "stage_qbb"),
    Stage(9, "merge", "merge (transfer-from-graph)", "stage_merge"),
    Stage(10, "prepare", "bps prepare", "stage_prepare"),
)


def parse_stages(text: str) -> list[Stage]:
    """``1-6,10`` or ``build,merge`` or ``all`` -> the stages, in run order."""
    by_name = {s.name: s for s in STAGES}
    by_number = {s.number: s for s in STAGES}
    chosen: set[int] = set()
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        if part == "all":
            chosen.update(by_number)
        elif part in by_name:
            chosen.add(by_name[part].number)
        elif re.fullmatch(r"\d+(-\d+)?", part):
            first, _, last = part.partition("-")
            lo, hi = int(first), int(last or first)
            if lo > hi or lo not in by_number or hi not in by_number:
                raise argparse.ArgumentTypeError(f"no stages {part!r} (stages are 1-{len(STAGES)})")
            chosen.update(range(lo, hi + 1))
        else:
            names = ", ".join(s.name for s in STAGES)
            raise argparse.ArgumentTypeError(f"unknown stage {part!r}; use 1-{len(STAGES)} or {names}")
    if not chosen:
        raise argparse.ArgumentTypeError("no stages given")
    return [by_number[n] for n in sorted(chosen)]


# -- small helpers -----------------------------------------------------------------------------


def load1() -> float:
    return os.getloadavg()[0]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s"


def spread(values: Sequence[float], fmt: Callable[[float], str] = secs) -> str:
    """``median of N: min-max`` for a list of timings."""
    if len(values) == 1:
        return "1 run"
    return f"median of {len(values)}, range {fmt(min(values))} - {fmt(max(values))}"


@dataclass(slots=True)
class CmdResult:
    wall: float
    cpu: float
    """User + system CPU seconds of the child and its children."""
    stdout: str
    stderr: str


def tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"


def median_of(results: Sequence[CmdResult]) -> CmdResult:
    """The run with the median wall time (its own CPU time comes with it)."""
    ordered = sorted(results, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


# -- the benchmark -----------------------------------------------------------------------------


class Workload:
    """Runs the chosen stages of W(E, D) in ``workdir``, keeping what later stages need."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.exposures: int = args.exposures
        self.detectors: int = args.detectors
        self.repeat: int = args.repeat
        self.progress: bool = args.progress
        self.cluster_config: Path | None = args.cluster_config
        self.selected = {s.number for s in args.stages}
        self.workdir = workdir
        self.repo = workdir / "repo"
        self.graph_path: Path | None = None
        self.pycache = workdir / "pycache"
        self.tag = uuid.uuid4().hex[:8]
        self._butler: Butler | None = None
        self._repo_ready = False
        self._raws_missing = False
        self._bytecode_warm = False
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        self.env.setdefault("USER", os.environ.get("LOGNAME", "bench"))

    @property
    def raws(self) -> int:
        return self.exposures * self.detectors

    @property
    def quanta(self) -> int:
        return 2 * self.exposures * self.detectors + self.exposures

    def note(self, message: str) -> None:
        if self.progress:
            print(f"  .. {message}", file=sys.stderr, flush=True)

    # -- subprocesses ---------------------------------------------------------------------------

    def script(self, name: str) -> str:
        """A console script of this environment: beside the interpreter first, else on PATH."""
        beside = Path(sys.executable).parent / name
        if beside.exists():
            return str(beside)
        found = shutil.which(name)
        if found is None:
            raise NotAvailable(f"console script {name!r} is not installed")
        return found

    def run_cmd(self, args: Sequence[str], *, check: bool = True) -> CmdResult:
        self.ensure_bytecode()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=SUBPROCESS_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if check and proc.returncode != 0:
            shown = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(args))
            raise StageError(f"`{shown}` exited with {proc.returncode}: {tail(proc.stderr or proc.stdout)}")
        return CmdResult(wall, cpu, proc.stdout, proc.stderr)

    def ensure_bytecode(self) -> None:
        """Compile every project module (and what they import) into the pycache, untimed, once."""
        if self._bytecode_warm:
            return
        self._bytecode_warm = True
        code = (
            "import importlib, pkgutil\n"
            "for top in ('butler', 'quantumgraph', 'bps', 'wms_plugins'):\n"
            "    try:\n"
            "        pkg = importlib.import_module(top)\n"
            "    except Exception:\n"
            "        continue\n"
            "    for info in pkgutil.walk_packages(pkg.__path__, top + '.', onerror=lambda name: None):\n"
            "        try:\n"
            "            importlib.import_module(info.name)\n"
            "        except Exception:\n"
            "            pass\n"
            "import sqlalchemy.dialects.sqlite\n"
        )
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-P", "-c", code],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            timeout=SUBPROCESS_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        self.note(f"bytecode compiled into {self.pycache} in {secs(time.perf_counter() - start)}")

    # -- shared state between stages -------------------------------------------------------------

    def close_butler(self) -> None:
        if self._butler is not None:
            self._butler.close()
            self._butler = None

    def ensure_repo(self) -> None:
        """The repository with its raws: made by stages 1 and 2, or here (untimed) when skipped."""
        if self._repo_ready:
            return
        if (self.repo / "butler.yaml").exists():
            self.close_butler()
            if self._raws_missing:  # stage 1 ran without stage 2
                from butler import Butler
                from quantumgraph.demo.repo import put_demo_raws

                self.note("putting the raws (untimed)")
                with Butler(self.repo) as butler:
                    put_demo_raws(butler, self.exposures, self.detectors)
                self._raws_missing = False
            else:
                print(f"    (using the existing repository {self.repo})")
            self._repo_ready = True
            return
        from quantumgraph.demo.repo import make_demo_repo

        self.note(f"making the W({self.exposures},{self.detectors}) repository (untimed)")
        make_demo_repo(self.repo, self.exposures, self.detectors).close()
        self._repo_ready = True

    def build_in_process(self, output: str, path: Path) -> int:
        """Build the graph for ``output`` with the library and write it to ``path``; its quanta."""
        from butler import Butler
        from quantumgraph import Pipeline, build_quantum_graph, write_graph

        self.ensure_repo()
        butler = Butler(self.repo, writeable=False)
        try:
            graph = build_quantum_graph(
                butler,
                Pipeline.from_file(PIPELINE),
                input_collections=[INPUT_COLLECTION],
                output_run=f"{output}/run",
                output=output,
            )
        finally:
            butler.close()
        write_graph(path, graph)
        return len(graph)

    def ensure_graph(self) -> Path:
        """The graph file of stage 3, or one built here (untimed) when stage 3 did not make one."""
        if self.graph_path is None:
            path = self.workdir / "graph.qgraph"
            self.note("building the graph in-process (untimed)")
            self.build_in_process(f"u/bench/out-{self.tag}", path)
            self.graph_path = path
        return self.graph_path

    def pipetask_qgraph(self, output: str, path: Path) -> list[str]:
        self.ensure_repo()
        return [
            self.script("pipetask"),
            "qgraph",
            "-b",
            str(self.repo),
            "-i",
            INPUT_COLLECTION,
            "-o",
            output,
            "-p",
            str(PIPELINE),
            "--save-qgraph",
            str(path),
        ]

    # -- stages ----------------------------------------------------------------------------------

    def stage_repo(self) -> StageResult:
        from butler import Butler
        from quantumgraph.demo.repo import insert_demo_dimension_records, register_demo_collections

        if self.repo.exists():
            raise StageError(f"{self.repo} already exists: give an empty --workdir")
        import sqlalchemy.dialects.sqlite  # noqa: F401  (library work is timed, not the first import)

        t0 = time.perf_counter()
        butler = Butler.create(self.repo)
        t1 = time.perf_counter()
        insert_demo_dimension_records(butler, self.exposures, self.detectors)
        t2 = time.perf_counter()
        register_demo_collections(butler)
        t3 = time.perf_counter()
        self._butler = butler
        self._raws_missing = True
        total = t3 - t0
        return StageResult(
            f"{secs(total)}  (Butler.create {secs(t1 - t0)}; dimension records {secs(t2 - t1)} "
            f"[1 instrument, 3 bands, 3 filters, {self.detectors} detectors, 1 day_obs, "
            f"{self.exposures} exposures]; raw dataset type, run and chain {secs(t3 - t2)})",
            [Measure("repo", total)],
        )

    def stage_puts(self) -> StageResult:
        from butler import Butler
        from butler.progress import progress_bar
        from quantumgraph.demo.repo import put_demo_raws

        if self._butler is None:
            if (self.repo / "butler.yaml").exists():
                raise StageError(f"{self.repo} already holds raws; stage 2 needs stage 1 in the same run")
            from quantumgraph.demo.repo import create_demo_repo

            self.note("making the repository without raws (untimed)")
            create_demo_repo(self.repo, self.exposures, self.detectors).close()
        butler = self._butler or Butler(self.repo)
        self._butler = None
        try:
            with progress_bar(self.raws, "puts", enabled=self.progress) as bar:
                start = time.perf_counter()
                count = put_demo_raws(butler, self.exposures, self.detectors, bar)
                elapsed = time.perf_counter() - start
        finally:
            butler.close()
        self._repo_ready = True
        self._raws_missing = False
        rate = count / elapsed
        return StageResult(
            f"{rate:,.0f} puts/s  ({count:,} Butler.put in {secs(elapsed)}; "
            f"{elapsed / count * 1e3:.3f} ms per put)",
            [Measure("puts", rate)],
        )

    def stage_build(self) -> StageResult:
        from butler import Butler
        from quantumgraph import Pipeline, build_quantum_graph, write_graph

        self.ensure_repo()
        runs: list[CmdResult] = []
        path = self.workdir / "graph.qgraph"
        for i in range(self.repeat + 1):  # the first is the warm-up
            result = self.run_cmd(self.pipetask_qgraph("u/bench/out", path))
            if i:
                runs.append(result)
        self.graph_path = path
        saved = re.search(r"Saved (\d+) quanta", runs[-1].stderr)
        quanta = int(saved.group(1)) if saved else -1
        if quanta != self.quanta:
            raise StageError(f"the graph has {quanta} quanta, expected 2*E*D+E = {self.quanta}")
        best = median_of(runs)

        # In-process: the library call alone, on a Butler and Pipeline made beforehand.
        pipeline = Pipeline.from_file(PIPELINE)
        t0 = time.perf_counter()
        butler = Butler(self.repo, writeable=False)
        t_open = time.perf_counter() - t0
        builds: list[float] = []
        writes: list[float] = []
        try:
            for i in range(self.repeat + 1):
                t0 = time.perf_counter()
                graph = build_quantum_graph(
                    butler,
                    pipeline,
                    input_collections=[INPUT_COLLECTION],
                    output_run=f"u/bench/inproc/{i}",
                    output="u/bench/inproc",
                )
                t1 = time.perf_counter()
                write_graph(self.workdir / "inproc.qgraph", graph)
                t2 = time.perf_counter()
                del graph  # so that the next build does not run with this one still alive
                if i:
                    builds.append(t1 - t0)
                    writes.append(t2 - t1)
        finally:
            butler.close()
        (self.workdir / "inproc.qgraph").unlink(missing_ok=True)
        build = statistics.median(builds)
        return StageResult(
            f"{secs(best.wall)} whole process ({spread([r.wall for r in runs])}; cpu {secs(best.cpu)}); "
            f"in-process build_quantum_graph {secs(build)}, write_graph {secs(statistics.median(writes))}, "
            f"Butler open {secs(t_open)}  [{quanta:,} quanta]",
            [Measure("build", best.wall), Measure("build_inproc", build)],
        )

    def stage_size(self) -> StageResult:
        path = self.ensure_graph()
        size = path.stat().st_size
        per = size / self.quanta
        return StageResult(
            f"{size:,} bytes, {per:.1f} bytes/quantum  ({self.quanta:,} quanta)", [Measure("bytes", per)]
        )

    def stage_load(self) -> StageResult:
        from quantumgraph import GraphReader

        path = self.ensure_graph()
        times: list[float] = []
        count = 0
        for i in range(self.repeat + 1):
            t0 = time.perf_counter()
            with GraphReader(path) as reader:
                graph = reader.read_all()
            elapsed = time.perf_counter() - t0
            count = len(graph)
            del graph
            if i:
                times.append(elapsed)
        load = statistics.median(times)
        return StageResult(
            f"{ms(load)}  ({count:,} quanta; {load / count * 1e6:.1f} us/quantum; {spread(times, ms)})",
            [Measure("load", load * 1000)],
        )

    def stage_read(self) -> StageResult:
        from quantumgraph import GraphReader

        path = self.ensure_graph()
        with GraphReader(path) as reader:
            ids = reader.quantum_ids()
        target = ids[len(ids) // 3]
        self.ensure_bytecode()
        fresh = [self.fresh_read(path, target) for _ in range(self.repeat + 1)][1:]
        fresh.sort(key=lambda r: r["open"] + r["read"])
        med = fresh[(len(fresh) - 1) // 2]
        first = med["open"] + med["read"]

        rng = random.Random(1)
        sample = [rng.choice(ids) for _ in range(WARM_READS)]
        with GraphReader(path) as reader:
            reader.read_quantum(sample[0])
            t0 = time.perf_counter()
            for qid in sample:
                reader.read_quantum(qid)
            warm = (time.perf_counter() - t0) / len(sample)
        heavy = f"; WARNING: the reader imported {med['heavy']}" if med["heavy"] else ""
        return StageResult(
            f"first {ms(first)} (open {ms(med['open'])} + read {ms(med['read'])}; imports "
            f"{ms(med['import'])} apart; whole subprocess {ms(med['wall'])}; median of {len(fresh)} fresh "
            f"processes); warm {ms(warm)} per read (mean of {len(sample):,} random quanta){heavy}",
            [Measure("read_first", first * 1000), Measure("read_warm", warm * 1000)],
        )

    def fresh_read(self, path: Path, quantum_id: uuid.UUID) -> dict[str, Any]:
        code = (
            "import time\n"
            "t0 = time.perf_counter()\n"
            "import sys, uuid\n"
            "from quantumgraph._file import GraphReader\n"
            "t1 = time.perf_counter()\n"
            "reader = GraphReader(sys.argv[1])\n"
            "t2 = time.perf_counter()\n"
            "reader.read_quantum(uuid.UUID(sys.argv[2]))\n"
            "t3 = time.perf_counter()\n"
            "heavy = ','.join(m for m in ('sqlalchemy', 'numpy', 'networkx', 'parsl') if m in sys.modules)\n"
            "print(t1 - t0, t2 - t1, t3 - t2, heavy or '-')\n"
        )
        result = self.run_cmd([sys.executable, "-P", "-c", code, str(path), str(quantum_id)])
        imp, opn, read, heavy = result.stdout.split()
        return {
            "import": float(imp),
            "open": float(opn),
            "read": float(read),
            "heavy": "" if heavy == "-" else heavy,
            "wall": result.wall,
        }

    def stage_run(self) -> StageResult:
        self.ensure_repo()
        output = f"u/bench/run-{self.tag}"
        args = [
            self.script("pipetask"),
            "run",
            "-b",
            str(self.repo),
            "-i",
            INPUT_COLLECTION,
            "-o",
            output,
            "-p",
            str(PIPELINE),
            "-j",
            "2",
        ]
        result = self.run_cmd(args)
        found = re.search(r"(\d+) quanta succeeded, (\d+) failed.*?(\d+) outputs registered", result.stdout)
        if not found:
            raise StageError(f"unexpected output: {tail(result.stdout)}")
        ok, failed, registered = (int(g) for g in found.groups())
        rate = ok / result.wall
        return StageResult(
            f"{rate:,.0f} quanta/s  ({ok:,} quanta in {secs(result.wall)} wall, cpu {secs(result.cpu)}, "
            f"build + execute + merge; {failed} failed; {registered:,} outputs registered in {output})",
            [Measure("run", rate)],
        )

    def stage_qbb(self) -> StageResult:
        from quantumgraph import GraphReader

        path = self.ensure_graph()
        with GraphReader(path) as reader:
            pairs = list(zip(reader.quantum_ids(), reader.quantum_task_labels(), strict=True))
        isr = [qid for qid, label in pairs if label == "isr"]
        if not isr:
            raise StageError("the graph has no isr quanta")
        pick = [isr[(i * len(isr)) // (self.repeat + 1)] for i in range(self.repeat + 1)]
        pipetask = self.script("pipetask")
        self.run_cmd([pipetask, "pre-exec-init-qbb", str(self.repo), str(path)])
        runs = [
            self.run_cmd([pipetask, "run-qbb", str(self.repo), str(path), "--qgraph-node-id", str(qid)])
            for qid in pick
        ][1:]
        best = median_of(runs)
        return StageResult(
            f"{secs(best.wall)}  (one isr quantum per process; {spread([r.wall for r in runs])}; "
            f"cpu {secs(best.cpu)})",
            [Measure("qbb", best.wall)],
        )

    def stage_merge(self) -> StageResult:
        output = f"u/bench/merge-{self.tag}"
        path = self.workdir / "merge.qgraph"
        self.note("building the merge stage's graph in-process (untimed)")
        quanta = self.build_in_process(output, path)
        pipetask = self.script("pipetask")
        self.run_cmd([pipetask, "pre-exec-init-qbb", str(self.repo), str(path)])
        run_all = self.run_cmd([pipetask, "run-qbb", str(self.repo), str(path)])
        result = self.run_cmd([self.script("butler"), "transfer-from-graph", str(path), str(self.repo)])
        found = re.search(r"(\d+) of (\d+) predicted outputs found; (\d+) newly registered", result.stdout)
        if not found:
            raise StageError(f"unexpected output: {tail(result.stdout)}")
        have, predicted, registered = (int(g) for g in found.groups())
        missing = "" if have == predicted else f" ({predicted - have} of the predicted missing)"
        # Provenance included, as LSST counts it: each quantum's _log and _metadata, and packages.
        provenance = 2 * quanta + 1
        return StageResult(
            f"{secs(result.wall)}  ({registered:,} datasets merged of {predicted:,} predicted{missing}, "
            f"from {quanta:,} quanta, provenance included ({provenance:,} logs, metadata and packages; "
            f"LSST registers 6,154 at W(50,20)); cpu {secs(result.cpu)}); beforehand run-qbb of all "
            f"quanta in one process took {secs(run_all.wall)}",
            [Measure("merge", result.wall)],
        )

    def stage_prepare(self) -> StageResult:
        try:
            bps = self.script("bps")
        except NotAvailable:
            raise NotAvailable("not available (no bps command)") from None
        probe = self.run_cmd([bps, "prepare", "--help"], check=False)
        if "Usage" not in probe.stdout:
            raise NotAvailable(f"not available ({tail(probe.stderr or probe.stdout, 2)})")
        plugins = sorted({ep.name for ep in entry_points(group=WMS_ENTRY_POINTS)})
        if not plugins:
            raise NotAvailable(f"not available (no plugin in the {WMS_ENTRY_POINTS} group)")
        self.ensure_repo()
        cluster_file = self.workdir / "bps-configs" / "cluster.yaml"
        cluster_file.parent.mkdir(parents=True, exist_ok=True)
        if self.cluster_config is not None:
            shutil.copyfile(self.cluster_config, cluster_file)
        else:
            cluster_file.write_text(DEFAULT_CLUSTER_CONFIG, encoding="utf-8")

        measures: list[Measure] = []
        parts: list[str] = []
        details: list[str] = []
        clustering_refused: str | None = None
        plain_jobs: dict[str, int] = {}
        failures = 0
        for plugin in plugins:
            for clustered in (False, True):
                label = f"{plugin}, dimension clustering" if clustered else plugin
                if clustered and clustering_refused is not None:
                    details.append(f"{label}: not available ({clustering_refused})")
                    continue
                try:
                    jobs, wall, text = self.bps_prepare(bps, plugin, cluster_file if clustered else None)
                except NotAvailable as err:
                    clustering_refused = str(err)
                    details.append(f"{label}: not available ({err})")
                    continue
                except StageError as err:
                    details.append(f"{label}: FAILED: {err}")
                    failures += 1
                    continue
                if not clustered:
                    plain_jobs[plugin] = jobs
                elif plain_jobs.get(plugin) == jobs:
                    text += " -- clustering had no effect (as many jobs as without it)"
                measures.append(Measure("prepare", wall, f"bps prepare ({label})"))
                parts.append(f"{label} {secs(wall)} ({jobs:,} jobs)")
                details.append(f"{label}: {text}")
        if not measures:
            raise StageError("; ".join(details))
        return StageResult("; ".join(parts), measures, details, failures)

    def bps_prepare(self, bps: str, plugin: str, cluster_file: Path | None) -> tuple[int, float, str]:
        """Median wall time of ``bps prepare`` for one plugin (with clustering when a file is given)."""
        name = f"{plugin}-clustered" if cluster_file else plugin
        runs: list[CmdResult] = []
        jobs = -1
        stages = ""
        for i in range(min(self.repeat, 3) + 1):
            config = self.workdir / "bps-configs" / f"{name}-{i}.yaml"
            lines = [
                f"pipelineYaml: {PIPELINE}",
                "payload:",
                f"  payloadName: bench_{name}",
                f"  butlerConfig: {self.repo}",
                f"  inCollection: {INPUT_COLLECTION}",
                '  dataQuery: ""',
                f"  output: u/bench/bps-{name}-{self.tag}",
                f"  outputRun: u/bench/bps-{name}-{self.tag}/{i}",
                f"wmsServiceClass: {plugin}",
                "computeSite: local",
                "site:",
                "  local: {}",
                f"submitPath: {self.workdir / 'submit' / f'{name}-{i}'}",
            ]
            if cluster_file is not None:
                lines.append(f"includeConfigs: [{cluster_file}]")
            config.write_text("\n".join(lines) + "\n", encoding="utf-8")
            result = self.run_cmd([bps, "prepare", str(config)], check=False)
            if "Prepared" not in result.stdout:
                message = tail(result.stderr or result.stdout, 3)
                if cluster_file is not None and "unknown key" in message:
                    raise NotAvailable(f"bps refuses the clustering keys: {message}")
                raise StageError(f"`bps prepare` failed: {message}")
            found = re.search(r"Prepared (\d+) jobs .*?\(not submitted; (.*)\)", result.stdout)
            if found:
                jobs, stages = int(found.group(1)), found.group(2)
            if i:
                runs.append(result)
        best = median_of(runs)
        text = (
            f"{secs(best.wall)} whole process ({spread([r.wall for r in runs])}; cpu {secs(best.cpu)}); "
            f"{jobs:,} jobs; bps's own timings: {stages or 'not printed'}"
        )
        return jobs, best.wall, text


# -- running and reporting ---------------------------------------------------------------------


def format_value(key: str, value: float) -> str:
    unit = TARGETS[key].unit
    if unit in ("puts/s", "quanta/s"):
        return f"{value:,.0f} {unit}" if value >= 10 else f"{value:,.1f} {unit}"
    if unit == "B":
        return f"{value:,.1f} B"
    if unit == "ms":
        return f"{value:,.2f} ms"
    return f"{value:,.3f} s"


def format_goal(key: str, value: float | None, prefix: bool) -> str:
    target = TARGETS[key]
    if value is None:
        return "-"
    text = format_value(key, value)
    if not prefix or target.higher_is_better is None:
        return text
    return (">= " if target.higher_is_better else "<= ") + text


def verdict(key: str, value: float) -> str:
    target = TARGETS[key]
    if target.goal is None or target.higher_is_better is None:
        return ""
    met = value >= target.goal if target.higher_is_better else value <= target.goal
    return "ok" if met else "MISS"


def print_table(bench: Workload, measures: list[Measure]) -> None:
    rows = [("figure", "measured", "target", "LSST", "", "load")]
    for m in measures:
        t = TARGETS[m.key]
        rows.append(
            (
                m.label or t.label,
                format_value(m.key, m.value),
                format_goal(m.key, t.goal, prefix=True),
                format_goal(m.key, t.lsst, prefix=False),
                verdict(m.key, m.value),
                f"{m.load:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    print(f"W({bench.exposures},{bench.detectors}) against the targets")
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        print("  " + "  ".join(cells).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    if (bench.exposures, bench.detectors) != (50, 20):
        print("  (the targets and the LSST figures are for W(50,20))")
    print("  load: the 1-minute load average when the stage started")


def run(args: argparse.Namespace, workdir: Path) -> int:
    bench = Workload(args, workdir)
    print(
        f"W({args.exposures},{args.detectors}): {bench.raws:,} raws, {bench.quanta:,} quanta; "
        f"workdir {workdir}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    measures: list[Measure] = []
    failures = 0
    try:
        for stage in args.stages:
            head = f"[{stage.number}] {stage.title}:"
            load = load1()
            bench.note(f"stage {stage.number} ({stage.name}) starts")
            try:
                result: StageResult = getattr(bench, stage.method)()
            except NotAvailable as err:
                print(f"{head} {err}", flush=True)
                continue
            except Exception as err:  # a failing stage must not stop the others
                failures += 1
                message = str(err) if isinstance(err, StageError) else f"{type(err).__name__}: {err}"
                print(f"{head} FAILED: {message}", flush=True)
                if args.debug:
                    traceback.print_exc()
                continue
            finally:
                if stage.number == 1 and 2 not in bench.selected:
                    bench.close_butler()
            print(f"{head} {result.line}", flush=True)
            for detail in result.details:
                print(f"      {detail}", flush=True)
            failures += result.failures
            for m in result.measures:
                m.load = load
            measures.extend(result.measures)
    finally:
        bench.close_butler()
    print_table(bench, measures)
    print(f"  load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if failures:
        print(f"{failures} stage(s) FAILED")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exposures", type=int, default=50, help="E (default 50)")
    parser.add_argument("--detectors", type=int, default=20, help="D (default 20)")
    parser.add_argument(
        "--stages",
        type=parse_stages,
        default=list(STAGES),
        help="which stages, by number or name: e.g. 1-6,10 or build,merge (default: all)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="work in DIR instead of a temporary directory; a DIR that already exists is never removed, "
        "and its repository is reused when stages 1 and 2 are not run",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed runs behind each median (default 5; bps prepare: <= 3)"
    )
    parser.add_argument(
        "--cluster-config",
        type=Path,
        help="YAML with the clustering keys for the clustered bps prepare (default: clusterAlgorithm "
        "dimension, with isr+calibrate of one exposure and detector in one job)",
    )
    parser.add_argument("--progress", action="store_true", help="say on stderr what is being done")
    parser.add_argument("--debug", action="store_true", help="print the traceback of a failing stage")
    args = parser.parse_args(argv)
    if args.exposures < 1 or args.detectors < 1 or args.repeat < 1:
        parser.error("--exposures, --detectors and --repeat must be at least 1")
    if args.workdir is not None and args.workdir.exists():
        return run(args, args.workdir.absolute())  # the caller's directory: never removed
    if args.workdir is not None:
        workdir = args.workdir.absolute()
        workdir.mkdir(parents=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="skybatch-bench-"))
    try:
        return run(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the QuantumGraph file format on the W(E, D) workload.

Synthesises the graph a builder would make for W(E, D) (isr and calibrate per exposure and
detector, gather per exposure; raws existing in the repository with datastore records) directly
through the model classes and :class:`IdFactory`, so it measures the file format alone, then
writes it and prints: file size, bytes per quantum, write time, whole-graph load time, the first
one-quantum read in a fresh interpreter, the warm one-quantum read average and ``dependencies()``.

    python benchmarks/qgraph_file_bench.py --exposures 50 --detectors 20
    python benchmarks/qgraph_file_bench.py --exposures 5000 --detectors 200 --stream-only

``--stream-only`` writes from a generator without ever building the graph (the 2-million-quantum
case) and reports the write time and peak memory instead of the read figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from butler._dataset_type import DatasetRef, DatasetType  # noqa: E402
from butler._dimensions import DataCoordinate, DimensionUniverse  # noqa: E402
from butler._stored_file_info import StoredFileInfo  # noqa: E402
from quantumgraph._file import GraphReader, write_graph  # noqa: E402
from quantumgraph._ids import IdFactory  # noqa: E402
from quantumgraph._model import ConnectionInfo, GraphHeader, Quantum, QuantumGraph, TaskInfo  # noqa: E402

INSTRUMENT = "Cam"
FIRST_EXPOSURE = 2025060100001
PIPELINE_YAML = """\
description: W(E, D) benchmark pipeline
tasks:
  isr:
    class: skybatch.examples.IsrTask
    config: {doBias: true, doDark: true, doFlat: true, overscanFitType: MEDIAN_PER_ROW}
  calibrate:
    class: skybatch.examples.CalibrateTask
    config: {doAstrometry: true, doPhotoCal: true, astromRefCat: gaia_dr3}
  gather:
    class: skybatch.examples.GatherTask
"""


def _config(seed: int) -> dict[str, object]:
    """A resolved task config of realistic size: defaults plus a few overrides."""
    rng = random.Random(seed)
    choices = [True, False, 1.5, 3, "MEDIAN", None]
    cfg: dict[str, object] = {f"option{i}": rng.choice(choices) for i in range(30)}
    cfg["connections"] = {"raw": "raw", "outputExposure": "postISR"}
    cfg["saveLogOutput"] = True
    return cfg


class Workload:
    """The header and the quanta of W(E, D), produced in builder order by one IdFactory."""

    def __init__(self, exposures: int, detectors: int) -> None:
        self.exposures = exposures
        self.detectors = detectors
        self.universe = DimensionUniverse.default()
        self.factory = IdFactory()
        dims = self.universe.required_closure(("exposure", "detector"))
        exp_dims = self.universe.required_closure(("exposure",))
        self.dims, self.exp_dims = dims, exp_dims
        self.raw = DatasetType("raw", dims, "StructuredDataDict")
        self.post = DatasetType("postISR", dims, "StructuredDataDict")
        self.calexp = DatasetType("calexp", dims, "StructuredDataDict")
        self.summary = DatasetType("summary", exp_dims, "StructuredDataDict")
        labels = ("isr", "calibrate", "gather")
        configs = {label: DatasetType(f"{label}_config", (), "TaskConfig") for label in labels}
        tasks = {
            "isr": TaskInfo(
                "isr",
                "skybatch.examples.IsrTask",
                _config(1),
                ("exposure", "detector"),
                (
                    ConnectionInfo("raw", "raw", "input"),
                    ConnectionInfo("outputExposure", "postISR", "output"),
                    ConnectionInfo("config", "isr_config", "init_output"),
                ),
            ),
            "calibrate": TaskInfo(
                "calibrate",
                "skybatch.examples.CalibrateTask",
                _config(2),
                ("exposure", "detector"),
                (
                    ConnectionInfo("exposure", "postISR", "input"),
                    ConnectionInfo("calexp", "calexp", "output"),
                    ConnectionInfo("config", "calibrate_config", "init_output"),
                ),
            ),
            "gather": TaskInfo(
                "gather",
                "skybatch.examples.GatherTask",
                _config(3),
                ("exposure",),
                (
                    ConnectionInfo("calexps", "calexp", "input", multiple=True),
                    ConnectionInfo("summary", "summary", "output"),
                    ConnectionInfo("config", "gather_config", "init_output"),
                ),
            ),
        }
        self.output_run = "u/alice/W/20260101T000000Z"
        init_outputs = {
            label: [DatasetRef(self.factory.next_id(), dt, DataCoordinate((), ()), self.output_run)]
            for label, dt in configs.items()
        }
        self.header = GraphHeader(
            tasks=tasks,
            dataset_types={
                dt.name: dt for dt in (self.raw, self.post, self.calexp, self.summary, *configs.values())
            },
            universe_config=self.universe.config,
            input_collections=("raw",),
            output_run=self.output_run,
            output="u/alice/W",
            init_outputs=init_outputs,
            pipeline_yaml=PIPELINE_YAML,
            metadata={
                "created": datetime.datetime.now(datetime.UTC),
                "user": "alice",
                "host": "bench",
                "command_line": f"pipetask qgraph -p w.yaml -d 'exposure < {exposures}'",
                "data_query": "instrument = 'Cam'",
                "counts": {"quanta": 2 * exposures * detectors + exposures},
            },
            id_prefix=self.factory.prefix,
        )
        self.raw_rng = random.Random(42)

    def data_id(self, exposure: int, detector: int) -> DataCoordinate:
        return DataCoordinate(self.dims, (INSTRUMENT, detector, FIRST_EXPOSURE + exposure))

    def raw_refs(self) -> Iterator[tuple[DatasetRef, StoredFileInfo]]:
        """The existing raws (random UUIDs, as ingest gives) with their datastore records."""
        rng = self.raw_rng
        for e in range(self.exposures):
            for d in range(self.detectors):
                ref = DatasetRef(
                    uuid.UUID(int=rng.getrandbits(128), version=4), self.raw, self.data_id(e, d), "raw"
                )
                path = f"raw/raw/raw_{INSTRUMENT}_{d}_{FIRST_EXPOSURE + e}.yaml"
                yield ref, StoredFileInfo(ref.id, path, "yaml", "StructuredDataDict", 180 + rng.randrange(40))

    def quanta(self, raws: Iterator[DatasetRef]) -> Iterator[Quantum]:
        """Quanta in builder order (task by task); each quantum's ID then its outputs' IDs.

        An earlier task's output is rebuilt from its counter (the IDs are assigned in a known
        order) rather than kept, so the generator itself holds nothing and the 2-million-quantum
        case measures the writer's memory, not the benchmark's.
        """
        f = self.factory
        run = self.output_run
        n_det = self.detectors
        first = f.count  # counter of the first isr quantum
        raw_iter = iter(raws)
        for e in range(self.exposures):
            for d in range(n_det):
                did = self.data_id(e, d)
                qid = f.next_id()
                out = DatasetRef(f.next_id(), self.post, did, run)
                yield Quantum(qid, "isr", did, {"raw": [next(raw_iter)]}, {"outputExposure": [out]})
        n = self.exposures * n_det
        for i in range(n):
            did = self.data_id(i // n_det, i % n_det)
            post = DatasetRef(f.from_counter(first + 2 * i + 1), self.post, did, run)
            qid = f.next_id()
            out = DatasetRef(f.next_id(), self.calexp, did, run)
            yield Quantum(qid, "calibrate", did, {"exposure": [post]}, {"calexp": [out]})
        first_cal = first + 2 * n
        for e in range(self.exposures):
            did = DataCoordinate(self.exp_dims, (INSTRUMENT, FIRST_EXPOSURE + e))
            ins = [
                DatasetRef(f.from_counter(first_cal + 2 * i + 1), self.calexp, self.data_id(e, d), run)
                for d, i in enumerate(range(e * n_det, (e + 1) * n_det))
            ]
            qid = f.next_id()
            out = DatasetRef(f.next_id(), self.summary, did, run)
            yield Quantum(qid, "gather", did, {"calexps": ins}, {"summary": [out]})

    def graph(self) -> QuantumGraph:
        raws = list(self.raw_refs())
        records = {ref.id: info for ref, info in raws}
        quanta = list(self.quanta(ref for ref, _ in raws))
        return QuantumGraph(self.header, quanta, records)


_FRESH_READ = """
import time
t0 = time.perf_counter()
from quantumgraph._file import GraphReader
import uuid, json, sys, gc
if sys.argv[3] == "freeze":
    gc.freeze()  # what a batch job can do after its imports: full collections skip those objects
t1 = time.perf_counter()
r = GraphReader(sys.argv[1])
t2 = time.perf_counter()
q, recs = r.read_quantum(uuid.UUID(sys.argv[2]))
t3 = time.perf_counter()
banned = sorted(m for m in ("sqlalchemy", "numpy", "networkx", "parsl") if m in sys.modules)
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "read": t3 - t2, "banned": banned}))
"""


def fresh_read(path: Path, quantum_id: uuid.UUID, pycache: Path, freeze: bool = False) -> dict[str, Any]:
    """Open the graph and read one quantum in a new interpreter, timing imports, open and read.

    Bytecode is cached (in ``pycache``, outside the source tree) even if PYTHONDONTWRITEBYTECODE
    is set here, because an installed skybatch has its ``.pyc`` files: compiling the sources on
    every start would measure the compiler, not the reader.
    """
    root = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    t = time.perf_counter()
    args = [sys.executable, "-c", _FRESH_READ, str(path), str(quantum_id), "freeze" if freeze else "-"]
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout
    wall = time.perf_counter() - t
    result = json.loads(out)
    result["wall"] = wall
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def run(exposures: int, detectors: int, stream_only: bool, workdir: Path) -> None:
    n = 2 * exposures * detectors + exposures
    print(f"W({exposures},{detectors}): {n:,} quanta")
    path = workdir / f"w_{exposures}_{detectors}.qgraph"
    w = Workload(exposures, detectors)
    if stream_only:
        # Records of the existing raws are what a builder holds anyway; quanta stream.
        raws: list[DatasetRef] = []
        records: dict[uuid.UUID, StoredFileInfo] = {}
        for ref, info in w.raw_refs():
            raws.append(ref)
            records[ref.id] = info
        t = time.perf_counter()
        for _ in Workload(exposures, detectors).quanta(iter(raws)):
            pass
        t_gen = time.perf_counter() - t
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        size = write_graph(path, header=w.header, quanta=w.quanta(iter(raws)), records=records)
        dt = time.perf_counter() - t
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"  file size            {size:,} bytes ({size / n:.1f} bytes/quantum)")
        print(
            f"  streamed write       {dt:.2f} s, of which making the quanta {t_gen:.2f} s "
            f"(writer alone {(dt - t_gen) / n * 1e6:.1f} us/quantum)"
        )
        print(
            f"  peak RSS             {rss1 / 1024:.0f} MiB; {(rss1 - rss0) / 1024:.0f} MiB more than "
            f"before writing ({rss0 / 1024:.0f} MiB: raws and their records, held by the caller)"
        )
        return

    graph = w.graph()
    t = time.perf_counter()
    size = write_graph(path, graph)
    t_write = time.perf_counter() - t
    print(f"  file size            {size:,} bytes ({size / n:.1f} bytes/quantum)")
    print(f"  write                {ms(t_write)}")

    t = time.perf_counter()
    with GraphReader(path) as reader:
        loaded = reader.read_all()
    t_load = time.perf_counter() - t
    assert loaded == graph, "round trip changed the graph"
    print(f"  whole-graph load     {ms(t_load)}")

    ids = [q.id for q in graph.quanta]
    target = ids[len(ids) // 3]
    fresh_read(path, target, workdir / "pycache")  # compiles and caches bytecode
    fresh = [fresh_read(path, target, workdir / "pycache") for _ in range(5)]
    fresh.sort(key=lambda r: r["open"] + r["read"])
    med = fresh[len(fresh) // 2]
    if med["banned"]:
        print(f"  WARNING: the reader imported {', '.join(med['banned'])}")
    print(
        f"  fresh-process read   open+read {ms(med['open'] + med['read'])} "
        f"(open {ms(med['open'])}, read {ms(med['read'])}); imports {ms(med['import'])}; "
        f"whole subprocess {ms(med['wall'])}  [median of 5]"
    )
    frozen = sorted(
        (fresh_read(path, target, workdir / "pycache", freeze=True) for _ in range(5)),
        key=lambda r: r["open"] + r["read"],
    )[2]
    print(
        f"    with gc.freeze()   open+read {ms(frozen['open'] + frozen['read'])} (the first full "
        f"collection, which scans every object the imports made, no longer lands in the first read)"
    )

    rng = random.Random(1)
    sample = [rng.choice(ids) for _ in range(2000)]
    with GraphReader(path) as reader:
        reader.read_quantum(sample[0])
        t = time.perf_counter()
        for qid in sample:
            reader.read_quantum(qid)
        t_warm = (time.perf_counter() - t) / len(sample)
        t = time.perf_counter()
        for _ in sample:
            reader.read_quantum(ids[0])
        t_hot = (time.perf_counter() - t) / len(sample)
    print(
        f"  warm one-quantum     {ms(t_warm)} per read (random quanta, block cache mostly missed); "
        f"{ms(t_hot)} same block"
    )

    with GraphReader(path) as reader:
        t = time.perf_counter()
        deps = reader.dependencies()
        t_deps = time.perf_counter() - t
    assert deps == graph.dependencies()
    print(f"  dependencies()       {ms(t_deps)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exposures", type=int, default=50)
    parser.add_argument("--detectors", type=int, default=20)
    parser.add_argument(
        "--stream-only",
        action="store_true",
        help="write from a generator and report write time and peak memory only",
    )
    parser.add_argument("--keep", type=Path, default=None, help="directory to keep the file in")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.exposures, args.detectors, args.stream_only, args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(args.exposures, args.detectors, args.stream_only, Path(tmp))


if __name__ == "__main__":
    main()

"""Model objects <-> the compact msgpack structures stored in a QuantumGraph file.

Compactness comes from context, not cleverness: a quantum's task says which connections it has,
each connection says its dataset type, each dataset type says its dimensions, and most refs share
data-ID values with their quantum.  So a ref stores only its ID (a small integer when the graph
assigned it), the data-ID values its quantum does not already give, and fields that differ from
the defaults (run, dataset type, datastore record).  See ``docs/qgraph-format.md`` for the shapes.

The writer and the reader share :class:`Tables`, so both sides resolve indices identically.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from butler import DataCoordinate, DataIdValue, DatasetRef, DatasetType, StoredFileInfo

from .._model import ConnectionInfo, GraphHeader, Quantum, TaskInfo
from ._byte_layout import COUNTER_MASK, VARIANT

#: An encoded UUID: the counter of an ID with the graph's prefix, or 16 raw bytes for any other.
EncodedId = int | bytes

#: A data-ID plan maps each position of a dataset type's dimensions to either a position in the
#: quantum's data ID (``p >= 0``) or a position in the ref's own stored values (``~p``).
Plan = tuple[int, ...]

# -- positions in the stored msgpack records (docs/qgraph-format.md); the writer, this codec and
# the reader all index records through these names, so the layout is stated once.

#: A quantum record: ``[task, id, data ID, inputs, outputs]`` plus, only when its task's declared
#: connections do not cover it, ``{EXTRA_INPUTS: ..., EXTRA_OUTPUTS: ...}``.  Inputs and outputs
#: hold one slot per declared connection (None when absent), each a list of ref records.
Q_TASK = 0
Q_ID = 1
Q_DATA_ID = 2
Q_INPUTS = 3
Q_OUTPUTS = 4
Q_EXTRA = 5

#: A ref record: ``[id, data-ID values]`` then, only as far as needed, ``run``, ``dataset type``,
#: ``datastore record`` (None standing for the default in a position before a present one).
REF_ID = 0
REF_DATA_ID = 1
REF_RUN = 2
REF_TYPE = 3
REF_RECORD = 4

#: A datastore record inside a ref: ``[path, formatter, file size]`` plus the storage class when
#: it differs from the dataset type's or a checksum follows, then the checksum (format 1.1).
RECORD_PATH = 0
RECORD_FORMATTER = 1
RECORD_SIZE = 2
RECORD_STORAGE_CLASS = 3
RECORD_CHECKSUM = 4

#: Keys of the optional extra element of a quantum record: connections its task does not declare.
EXTRA_INPUTS = "i"
EXTRA_OUTPUTS = "o"


def _uuid_factory() -> Callable[[int], uuid.UUID]:
    """A constructor of UUIDs from validated 128-bit integers, about four times faster than
    ``uuid.UUID(int=...)``, whose argument checks dominate loading a large graph.

    It fills the two slots ``UUID.__init__`` would; a self-test falls back to the public
    constructor should a future Python lay UUID out differently.
    """
    new = object.__new__
    setattr_ = object.__setattr__
    cls = uuid.UUID
    unknown = uuid.SafeUUID.unknown

    def fast(value: int) -> uuid.UUID:
        u = new(cls)
        setattr_(u, "int", value)
        setattr_(u, "is_safe", unknown)
        return u

    def public(value: int) -> uuid.UUID:
        return cls(int=value)

    try:
        probe = 0x8F0E1D2C3B4A59687766554433221100
        made = fast(probe)
        if made == cls(int=probe) and str(made) == str(cls(int=probe)) and hash(made) == hash(cls(int=probe)):
            return fast
    except Exception:
        pass
    return public


#: Builds a UUID from an integer already known to be in range.
uuid_from_int = _uuid_factory()


class IdCodec:
    """Encodes UUIDs against one graph's 64-bit prefix.

    A UUID from the graph's :class:`~quantumgraph._ids.IdFactory` is stored as its 62-bit counter
    (one to nine msgpack bytes instead of eighteen); anything else, such as the UUID of a raw that
    existed before the graph was built, is stored as its 16 bytes.
    """

    __slots__ = ("prefix", "base", "_key")

    def __init__(self, prefix: int) -> None:
        self.prefix = prefix
        self.base = (prefix << 64) | VARIANT
        """The 128-bit value of counter 0; counter ``c`` is ``base | c``."""
        self._key = (prefix << 2) | 0b10  # the top 66 bits of every ID carrying this prefix

    def encode(self, value: uuid.UUID) -> EncodedId:
        i = value.int
        if i >> 62 == self._key:
            return i & COUNTER_MASK
        return value.bytes

    def counter(self, value: uuid.UUID) -> int | None:
        """The counter of ``value`` if it carries this graph's prefix, else None."""
        i = value.int
        return i & COUNTER_MASK if i >> 62 == self._key else None

    def decode(self, value: EncodedId) -> uuid.UUID:
        if type(value) is int:
            if not 0 <= value <= COUNTER_MASK:
                raise ValueError(f"ID counter {value} out of range")
            return uuid_from_int(self.base | value)
        if type(value) is bytes and len(value) == 16:
            return uuid_from_int(int.from_bytes(value, "big"))
        raise ValueError(f"malformed ID {value!r}")


class Tables:
    """Index tables shared by every block: tasks, dataset types, runs, formatters, storage classes.

    Tasks and dataset types come from the header and never change.  Runs, formatters and storage
    classes are seeded in the header and may grow while quanta stream through the writer (a run
    of an input is only discovered when a quantum uses it); the growth is stored in the index,
    and a reader appends it before decoding any block.
    """

    def __init__(
        self,
        header: GraphHeader,
        data_id_dimensions: Mapping[str, tuple[str, ...]],
        runs: list[str],
        formatters: list[str],
        storage_classes: list[str],
    ) -> None:
        self.header = header
        self.output_run = header.output_run
        self.tasks: list[TaskInfo] = list(header.tasks.values())
        self.task_index = {t.label: i for i, t in enumerate(self.tasks)}
        self.task_dims: list[tuple[str, ...]] = [tuple(data_id_dimensions[t.label]) for t in self.tasks]
        self.dataset_types: list[DatasetType] = list(header.dataset_types.values())
        self.dataset_type_index: dict[DatasetType, int] = {}
        for i, dt in enumerate(self.dataset_types):
            self.dataset_type_index.setdefault(dt, i)
        self.task_inputs: list[tuple[ConnectionInfo, ...]] = []
        self.task_outputs: list[tuple[ConnectionInfo, ...]] = []
        self.task_input_types: list[tuple[DatasetType | None, ...]] = []
        self.task_output_types: list[tuple[DatasetType | None, ...]] = []
        for t in self.tasks:
            ins = tuple(c for c in t.connections if c.kind == "input")
            outs = tuple(c for c in t.connections if c.kind == "output")
            self.task_inputs.append(ins)
            self.task_outputs.append(outs)
            self.task_input_types.append(tuple(header.dataset_types.get(c.dataset_type) for c in ins))
            self.task_output_types.append(tuple(header.dataset_types.get(c.dataset_type) for c in outs))
        self.runs = list(runs)
        self.run_index = {r: i for i, r in enumerate(self.runs)}
        self.formatters = list(formatters)
        self.formatter_index = {f: i for i, f in enumerate(self.formatters)}
        self.storage_classes = list(storage_classes)
        self.storage_class_index = {s: i for i, s in enumerate(self.storage_classes)}
        self._plans: dict[tuple[tuple[str, ...], tuple[str, ...]], Plan] = {}

    # -- growth (writer side) ------------------------------------------------------------------

    def run_id(self, run: str) -> int:
        i = self.run_index.get(run)
        if i is None:
            i = self.run_index[run] = len(self.runs)
            self.runs.append(run)
        return i

    def formatter_id(self, name: str) -> int:
        i = self.formatter_index.get(name)
        if i is None:
            i = self.formatter_index[name] = len(self.formatters)
            self.formatters.append(name)
        return i

    def storage_class_id(self, name: str) -> int:
        i = self.storage_class_index.get(name)
        if i is None:
            i = self.storage_class_index[name] = len(self.storage_classes)
            self.storage_classes.append(name)
        return i

    # -- data-ID plans --------------------------------------------------------------------------

    def plan(self, context: tuple[str, ...], dims: tuple[str, ...]) -> Plan:
        """How to assemble a data ID for ``dims`` from a context data ID and the ref's own values."""
        key = (context, dims)
        plan = self._plans.get(key)
        if plan is None:
            pos = {d: i for i, d in enumerate(context)}
            out: list[int] = []
            n_extra = 0
            for d in dims:
                if d in pos:
                    out.append(pos[d])
                else:
                    out.append(~n_extra)
                    n_extra += 1
            plan = self._plans[key] = tuple(out)
        return plan


def _data_id_map(dc: DataCoordinate) -> dict[str, DataIdValue]:
    """The self-describing fallback form of a data ID, used when the compact form cannot apply."""
    return dict(zip(dc.dimensions, dc.values_tuple, strict=True))


def _dataset_type_field(tables: Tables, dt: DatasetType) -> int | list[Any]:
    """A dataset type as an index into the header's table, or inline if the header lacks it."""
    i = tables.dataset_type_index.get(dt)
    if i is not None:
        return i
    return [dt.name, list(dt.dimensions), dt.storage_class]


class QuantumEncoder:
    """Writer side: one quantum -> one msgpack-ready list, noting the IDs the index needs.

    The ID lists are filled as a by-product of encoding so the writer never walks a quantum twice:
    ``owned`` gets the counters of the quantum's own ID and its outputs (those the block-range
    index covers), ``borrowed`` the counters of prefixed inputs (checked against the ranges when
    the block closes); ``foreign_owned`` and ``foreign`` the raw bytes of unprefixed IDs, split
    the same way (the sorted table covers those, and a producer outranks a consumer there).
    """

    def __init__(self, tables: Tables, ids: IdCodec, records: Mapping[uuid.UUID, StoredFileInfo]) -> None:
        self.tables = tables
        self.ids = ids
        self.records = records
        self.owned: list[int] = []
        self.foreign: list[bytes] = []
        self.foreign_owned: list[bytes] = []
        self.borrowed: list[int] = []
        self.records_written: set[uuid.UUID] = set()
        self.in_header = False
        self.n_inputs = 0
        self.n_outputs = 0

    def _id(self, value: uuid.UUID, owned: bool) -> EncodedId:
        e = self.ids.encode(value)
        if type(e) is int:
            (self.owned if owned else self.borrowed).append(e)
        else:
            (self.foreign_owned if owned else self.foreign).append(e)  # type: ignore[arg-type]
        return e

    def _record(self, info: StoredFileInfo, dt: DatasetType) -> list[Any]:
        tables = self.tables
        out: list[Any] = [info.path, tables.formatter_id(info.formatter), info.file_size]  # RECORD_*
        if info.checksum is not None:
            # The checksum is a trailing element (format 1.1): the storage class before it is then
            # always written, so a 1.0 reader still reads RECORD_STORAGE_CLASS as a storage class.
            out += [tables.storage_class_id(info.storage_class), info.checksum]
        elif info.storage_class != dt.storage_class:
            out.append(tables.storage_class_id(info.storage_class))  # RECORD_STORAGE_CLASS
        return out

    def ref(
        self,
        ref: DatasetRef,
        default_type: DatasetType | None,
        context: tuple[str, ...],
        context_values: tuple[DataIdValue, ...],
        owned: bool,
    ) -> list[Any]:
        tables = self.tables
        dt = ref.dataset_type
        dc = ref.data_id
        dv: list[DataIdValue] | dict[str, DataIdValue]
        if dc.dimensions != dt.dimensions:
            dv = _data_id_map(dc)
        else:
            values = dc.values_tuple
            dv = []
            for i, p in enumerate(tables.plan(context, dt.dimensions)):
                if p >= 0:
                    if values[i] != context_values[p] or type(values[i]) is not type(context_values[p]):
                        dv = _data_id_map(dc)
                        break
                else:
                    dv.append(values[i])
        out_id = self._id(ref.id, owned)
        out: list[Any] = [out_id, dv]  # REF_ID, REF_DATA_ID; then REF_RUN, REF_TYPE, REF_RECORD
        run = None if ref.run == tables.output_run else tables.run_id(ref.run)
        dt_field = None if (dt is default_type or dt == default_type) else _dataset_type_field(tables, dt)
        info = self.records.get(ref.id)
        rec = None
        if info is not None:
            rec = self._record(info, dt)
            if type(out_id) is int or self.in_header:
                # Unprefixed IDs in blocks are all in the writer's ID table, which already says
                # their records were stored; only the rest need remembering (see _Writer.finish).
                self.records_written.add(ref.id)
        if rec is not None:
            out += (run, dt_field, rec)
        elif dt_field is not None:
            out += (run, dt_field)
        elif run is not None:
            out.append(run)
        return out

    def _connections(
        self,
        refs_by_name: Mapping[str, list[DatasetRef]],
        declared: tuple[ConnectionInfo, ...],
        types: tuple[DatasetType | None, ...],
        context: tuple[str, ...],
        values: tuple[DataIdValue, ...],
        owned: bool,
    ) -> tuple[list[Any], dict[str, list[Any]], int]:
        """Refs of declared connections by position (None when absent), undeclared ones by name,
        and the number of refs."""
        positional: list[Any] = []
        found = 0
        n_refs = 0
        ref = self.ref
        for conn, dt in zip(declared, types, strict=True):
            refs = refs_by_name.get(conn.name)
            if refs is None:
                positional.append(None)
            else:
                found += 1
                n_refs += len(refs)
                positional.append([ref(r, dt, context, values, owned) for r in refs])
        extra: dict[str, list[Any]] = {}
        if len(refs_by_name) != found:
            names = {c.name for c in declared}
            for name, refs in refs_by_name.items():
                if name not in names:
                    n_refs += len(refs)
                    extra[name] = [ref(r, None, context, values, owned) for r in refs]
        return positional, extra, n_refs

    def quantum(self, q: Quantum) -> list[Any]:
        tables = self.tables
        try:
            t = tables.task_index[q.task_label]
        except KeyError:
            raise ValueError(
                f"quantum {q.id} has task label {q.task_label!r}, which is not in the graph header"
            ) from None
        dc = q.data_id
        context = dc.dimensions
        values = dc.values_tuple
        dv: list[DataIdValue] | dict[str, DataIdValue] = (
            list(values) if context == tables.task_dims[t] else _data_id_map(dc)
        )
        qid = self._id(q.id, True)
        ins, extra_in, n_in = self._connections(
            q.inputs, tables.task_inputs[t], tables.task_input_types[t], context, values, False
        )
        outs, extra_out, n_out = self._connections(
            q.outputs, tables.task_outputs[t], tables.task_output_types[t], context, values, True
        )
        self.n_inputs += n_in
        self.n_outputs += n_out
        rec: list[Any] = [t, qid, dv, ins, outs]  # Q_TASK, Q_ID, Q_DATA_ID, Q_INPUTS, Q_OUTPUTS
        if extra_in or extra_out:
            extra: dict[str, Any] = {}
            if extra_in:
                extra[EXTRA_INPUTS] = extra_in
            if extra_out:
                extra[EXTRA_OUTPUTS] = extra_out
            rec.append(extra)  # Q_EXTRA
        return rec


class QuantumDecoder:
    """Reader side: one stored quantum record -> (Quantum, datastore records of its refs).

    Data IDs are rebuilt from the dimension tuples in the header (task data-ID dimensions and
    dataset-type dimensions), so no dimension universe is needed, and refs whose data ID equals
    their quantum's share the quantum's :class:`DataCoordinate` object.
    """

    def __init__(self, tables: Tables, ids: IdCodec) -> None:
        self.tables = tables
        self.ids = ids
        self._inline_types: dict[tuple[Any, ...], DatasetType] = {}

    def dataset_type(self, field: Any) -> DatasetType:
        if type(field) is int:
            return self.tables.dataset_types[field]
        key = (field[0], tuple(field[1]), field[2])
        dt = self._inline_types.get(key)
        if dt is None:
            dt = self._inline_types[key] = DatasetType(key[0], key[1], key[2])
        return dt

    def ref(
        self,
        r: list[Any],
        default_type: DatasetType | None,
        context: DataCoordinate,
        records: dict[uuid.UUID, StoredFileInfo] | None,
    ) -> DatasetRef:
        # The hot loop of loading a graph: the common shape (prefixed ID, data ID equal to the
        # quantum's, defaults for the rest) takes the fewest branches.
        tables = self.tables
        key = r[REF_ID]
        if type(key) is int and 0 <= key <= COUNTER_MASK:
            rid = uuid_from_int(self.ids.base | key)
        else:
            rid = self.ids.decode(key)
        dt = default_type
        run = tables.output_run
        rec = None
        n = len(r)
        if n > REF_RUN:
            if r[REF_RUN] is not None:
                run = tables.runs[r[REF_RUN]]
            if n > REF_TYPE:
                if r[REF_TYPE] is not None:
                    dt = self.dataset_type(r[REF_TYPE])
                if n > REF_RECORD:
                    rec = r[REF_RECORD]
        if dt is None:
            raise ValueError("ref of an undeclared connection lacks its dataset type")
        dv = r[REF_DATA_ID]
        dims = dt.dimensions
        if type(dv) is dict:
            data_id = DataCoordinate(tuple(dv), tuple(dv.values()))
        elif not dv and dims == context.dimensions:
            data_id = context
        else:
            cv = context.values_tuple
            data_id = DataCoordinate(
                dims, tuple(cv[p] if p >= 0 else dv[~p] for p in tables.plan(context.dimensions, dims))
            )
        if rec is not None and records is not None:
            n_rec = len(rec)
            sc = (
                tables.storage_classes[rec[RECORD_STORAGE_CLASS]]
                if n_rec > RECORD_STORAGE_CLASS
                else dt.storage_class
            )
            checksum = rec[RECORD_CHECKSUM] if n_rec > RECORD_CHECKSUM else None
            records[rid] = StoredFileInfo(
                rid,
                rec[RECORD_PATH],
                tables.formatters[rec[RECORD_FORMATTER]],
                sc,
                rec[RECORD_SIZE],
                checksum,
            )
        return DatasetRef(rid, dt, data_id, run)

    def _connections(
        self,
        stored: list[Any],
        declared: tuple[ConnectionInfo, ...],
        types: tuple[DatasetType | None, ...],
        context: DataCoordinate,
        records: dict[uuid.UUID, StoredFileInfo] | None,
    ) -> dict[str, list[DatasetRef]]:
        if len(stored) != len(declared):
            raise ValueError(f"{len(stored)} connection slots for {len(declared)} declared connections")
        out: dict[str, list[DatasetRef]] = {}
        ref = self.ref
        for conn, dt, refs in zip(declared, types, stored, strict=True):
            if refs is not None:
                out[conn.name] = [ref(r, dt, context, records) for r in refs]
        return out

    def quantum(
        self, rec: list[Any], with_records: bool = True
    ) -> tuple[Quantum, dict[uuid.UUID, StoredFileInfo]]:
        tables = self.tables
        t = rec[Q_TASK]
        task = tables.tasks[t]
        dv = rec[Q_DATA_ID]
        if type(dv) is dict:
            data_id = DataCoordinate(tuple(dv), tuple(dv.values()))
        else:
            data_id = DataCoordinate(tables.task_dims[t], tuple(dv))
        records: dict[uuid.UUID, StoredFileInfo] = {}
        sink = records if with_records else None
        inputs = self._connections(
            rec[Q_INPUTS], tables.task_inputs[t], tables.task_input_types[t], data_id, sink
        )
        outputs = self._connections(
            rec[Q_OUTPUTS], tables.task_outputs[t], tables.task_output_types[t], data_id, sink
        )
        if len(rec) > Q_EXTRA:
            extra = rec[Q_EXTRA]
            for name, refs in extra.get(EXTRA_INPUTS, {}).items():
                inputs[name] = [self.ref(r, None, data_id, sink) for r in refs]
            for name, refs in extra.get(EXTRA_OUTPUTS, {}).items():
                outputs[name] = [self.ref(r, None, data_id, sink) for r in refs]
        return Quantum(self.ids.decode(rec[Q_ID]), task.label, data_id, inputs, outputs), records


# -- header -------------------------------------------------------------------------------------

_EMPTY: tuple[str, ...] = ()


def encode_header(
    header: GraphHeader,
    tables: Tables,
    encoder: QuantumEncoder,
    file_info: dict[str, Any],
    block_quanta: int,
) -> dict[str, Any]:
    """The header block's msgpack map.  String keys keep it self-describing and let later minor
    versions add keys that older readers ignore."""
    tasks = []
    for t in tables.tasks:
        tasks.append(
            [
                t.label,
                t.task_class,
                dict(t.config),
                list(t.dimensions),
                list(tables.task_dims[tables.task_index[t.label]]),
                [[c.name, c.dataset_type, c.kind, c.multiple] for c in t.connections],
            ]
        )
    init_outputs = {
        label: [encoder.ref(r, None, _EMPTY, (), False) for r in refs]
        for label, refs in header.init_outputs.items()
    }
    return {
        "tasks": tasks,
        "dataset_types": [[dt.name, list(dt.dimensions), dt.storage_class] for dt in tables.dataset_types],
        "universe": header.universe_config,
        "input_collections": list(header.input_collections),
        "output_run": header.output_run,
        "output": header.output,
        "init_outputs": init_outputs,
        "global_init_outputs": [encoder.ref(r, None, _EMPTY, (), False) for r in header.global_init_outputs],
        "pipeline_yaml": header.pipeline_yaml,
        "metadata": header.metadata,
        "id_prefix": header.id_prefix,
        "runs": list(tables.runs),
        "formatters": list(tables.formatters),
        "storage_classes": list(tables.storage_classes),
        "block_quanta": block_quanta,
        "file": file_info,
    }


def decode_header(doc: dict[str, Any]) -> tuple[GraphHeader, dict[str, tuple[str, ...]], dict[str, Any]]:
    """The header map -> (GraphHeader without init outputs, task data-ID dimensions, raw map).

    Init outputs are refs, which need the complete tables (header seeds plus the index's
    extensions) to decode, so the caller decodes them once the index is loaded.
    """
    tasks: dict[str, TaskInfo] = {}
    dims: dict[str, tuple[str, ...]] = {}
    for label, cls, config, tdims, did_dims, conns in doc["tasks"]:
        tasks[label] = TaskInfo(
            label=label,
            task_class=cls,
            config=config,
            dimensions=tuple(tdims),
            connections=tuple(ConnectionInfo(n, d, k, bool(m)) for n, d, k, m in conns),
        )
        dims[label] = tuple(did_dims)
    dataset_types = {name: DatasetType(name, tuple(d), sc) for name, d, sc in doc["dataset_types"]}
    header = GraphHeader(
        tasks=tasks,
        dataset_types=dataset_types,
        universe_config=doc["universe"],
        input_collections=tuple(doc["input_collections"]),
        output_run=doc["output_run"],
        output=doc["output"],
        init_outputs={},
        pipeline_yaml=doc["pipeline_yaml"],
        metadata=doc["metadata"],
        id_prefix=doc["id_prefix"],
    )
    return header, dims, doc

"""``butler ingest-files``: register existing files as datasets, from a CSV table.

The table's first column is the file path; the other columns are data ID values, named by the
header row.  Reading it lives here (it is command-line input); the work is ``Butler.ingest``.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ._options import repo_argument


def read_file_table(
    table: Path, prefix: Path | None = None
) -> tuple[list[str], list[tuple[Path, list[str]]]]:
    """(dimension names, [(absolute file path, values)]) from a CSV with a header row."""
    base = prefix if prefix is not None else table.parent
    try:
        raw = table.read_bytes()
    except IsADirectoryError:
        raise click.ClickException(f"{table} is a directory, not a CSV table") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        where = f"line {line}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})"
        raise click.ClickException(f"{table}, {where}") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    numbered = [(n, [c.strip() for c in r]) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not numbered:
        raise click.ClickException(f"{table} is empty; expected a header row (path, dimension names...)")
    _, header = numbered[0]
    dimensions = header[1:]
    out: list[tuple[Path, list[str]]] = []
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise click.ClickException(
                f"{table}, line {line}: {len(row)} columns, but the header has {len(header)}"
            )
        path = Path(row[0]).expanduser()
        out.append(((path if path.is_absolute() else base / path).absolute(), row[1:]))
    return dimensions, out


#: LSST's ``--id-generation-mode`` values.
ID_GENERATION_MODES = ("UNIQUE", "DATAID_TYPE", "DATAID_TYPE_RUN")

#: Namespace of the reproducible (name-based, version 5) dataset IDs: fixed forever, or the
#: same file ingested later would get another ID.
_ID_NAMESPACE = uuid.UUID("5c6f1a52-8d0e-4f43-9a1e-2f9b1c7d0e11")


def dataset_id(mode: str, dataset_type: str, data_id: Mapping[str, object], run: str) -> uuid.UUID:
    """A new dataset's ID: random (UNIQUE), or derived from what identifies it (the other modes)."""
    if mode == "UNIQUE":
        return uuid.uuid4()
    key = [dataset_type, *(f"{name}={data_id[name]}" for name in sorted(data_id))]
    if mode == "DATAID_TYPE_RUN":
        key.append(f"run={run}")
    return uuid.uuid5(_ID_NAMESPACE, "\x1f".join(key))


def _formatter_name(value: str) -> str:
    """Our formatter name from ours (``json``) or LSST's class path (``...json.JsonFormatter``)."""
    from ..formatters import formatter_names

    name = value.rpartition(".")[2]
    if name.lower().endswith("formatter") and len(name) > len("formatter"):
        name = name[: -len("formatter")]
    name = name.lower()
    if name not in formatter_names():
        raise click.BadParameter(
            f"{value!r}: unknown formatter; known: {', '.join(formatter_names())}", param_hint="--formatter"
        )
    return name


def _parse_data_id(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--data-id")
        out[key.strip()] = value.strip()
    return out


@click.command("ingest-files", short_help="Ingest files listed in a CSV table as datasets.")
@repo_argument
@click.argument("dataset_type", metavar="DATASET_TYPE")
@click.argument("run", metavar="RUN")
@click.argument("table", metavar="TABLE", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--transfer",
    type=click.Choice(["copy", "symlink", "direct"]),
    default="copy",
    show_default=True,
    help="copy the files into the repository, symlink to them, or record them where they are (direct; "
    "such files are never deleted by the butler).",
)
@click.option(
    "--prefix",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory that relative paths in TABLE are relative to. Default: the directory of TABLE.",
)
@click.option(
    "--data-id",
    "data_id",
    multiple=True,
    metavar="KEY=VALUE",
    help="A data ID value shared by every file, e.g. instrument=Cam (repeatable). A dimension may "
    "come from here or from a TABLE column, not both.",
)
@click.option(
    "--formatter",
    metavar="NAME",
    default=None,
    help="Formatter that reads the files, instead of the storage class's default: "
    "yaml, json or npy, or LSST's class path of one (lsst.daf.butler.formatters.json.JsonFormatter). "
    "It must be able to hold the storage class's objects.",
)
@click.option(
    "--id-generation-mode",
    type=click.Choice(ID_GENERATION_MODES, case_sensitive=False),
    default="UNIQUE",
    show_default=True,
    help="Dataset IDs: UNIQUE (random), DATAID_TYPE (the same for the same dataset type and data ID, "
    "in any repository), DATAID_TYPE_RUN (the same for the same dataset type, data ID and RUN: "
    "ingesting one raw into several repositories gives it one ID everywhere).",
)
def ingest_files(
    repo: str,
    dataset_type: str,
    run: str,
    table: str,
    transfer: str,
    prefix: str | None,
    data_id: tuple[str, ...],
    formatter: str | None,
    id_generation_mode: str,
) -> None:
    """Ingest the files listed in TABLE as datasets of DATASET_TYPE into RUN.

    TABLE is a CSV file whose header row names the columns: the first column holds file paths
    (relative paths are relative to TABLE's directory, or --prefix), the others hold data ID
    values for the named dimensions. RUN is created if needed. All files are ingested or none.

    \b
    Example TABLE (raws.csv):
      path,instrument,exposure,detector
      raw_1_1.yaml,Cam,1,1
      raw_1_2.yaml,Cam,1,2
    Example:
      butler ingest-files my_repo raw Cam/raw/all raws.csv --transfer symlink
    """
    from .. import Butler, DatasetRef

    mode = id_generation_mode.upper()
    formatter_name = None if formatter is None else _formatter_name(formatter)
    constant = _parse_data_id(data_id)
    dimensions, rows = read_file_table(Path(table), Path(prefix) if prefix else None)
    both = sorted(set(constant) & set(dimensions))
    if both:
        raise click.UsageError(f"{', '.join(both)} given both with --data-id and as a TABLE column")
    with Butler(repo, run=run) as butler:
        dt = butler.registry.get_dataset_type(dataset_type)
        items: list[tuple[DatasetRef, Path]] = []
        for path, values in rows:
            values_by_dim: dict[str, Any] = dict(constant)
            values_by_dim.update(zip(dimensions, values, strict=True))
            coord = butler.registry.expand_data_id(values_by_dim, dt.dimensions)
            items.append((DatasetRef(dataset_id(mode, dt.name, coord, run), dt, coord, run), path))
        refs = butler.ingest(items, transfer=transfer, formatter=formatter_name)  # type: ignore[arg-type]
    click.echo(f"Ingested {len(refs)} file(s) as {dt.name} into run {run} (transfer: {transfer})")

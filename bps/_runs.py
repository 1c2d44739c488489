"""The record of each submitted run, and the index that lets ``bps report --id`` find it.

A run id is 8 hex characters chosen by bps at submit time.  The record is written twice: as
``run.json`` in the submit directory (so the directory is self-describing and can be reported on
by path) and as ``<run id>.json`` in the runs index, ``$SKYBATCH_RUNS_DIR`` or else
``~/.skybatch/runs``.  ``bps report`` accepts an id, a unique prefix of one, or a submit
directory.  The index is a convenience: failing to write it warns, never fails a submit.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._exceptions import RunNotFoundError, StateFileError
from ._jsonfile import read_versioned, write_versioned_json

RUN_FORMAT = "skybatch.bps.run"
RUN_MAJOR = 1
RUN_MINOR = 0
RUN_FILENAME = "run.json"
RUNS_DIR_ENV = "SKYBATCH_RUNS_DIR"

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What bps remembers about a submitted run, independent of the engine."""

    run_id: str
    submit_dir: str
    wms_service_class: str
    wms_run_id: str | None
    """The plugin's own id for the run (what its report/cancel/restart take)."""
    submit_time: str
    operator: str
    payload_name: str
    butler_config: str
    output: str
    output_run: str
    project: str = ""
    campaign: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> RunRecord:
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as err:
            raise StateFileError(f"{path}: malformed run record ({err})") from err


def runs_dir() -> Path:
    """Where the runs index lives: ``$SKYBATCH_RUNS_DIR`` or ``~/.skybatch/runs``."""
    env = os.environ.get(RUNS_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".skybatch" / "runs"


def new_run_id() -> str:
    """A fresh id not yet in the index (8 hex characters: short enough to type)."""
    index = runs_dir()
    while True:
        run_id = secrets.token_hex(4)
        if not (index / f"{run_id}.json").exists():
            return run_id


def _write(path: Path, record: RunRecord) -> None:
    write_versioned_json(path, RUN_FORMAT, RUN_MAJOR, RUN_MINOR, record.to_json())


def _read(path: Path) -> RunRecord:
    return RunRecord.from_json(read_versioned(path, RUN_FORMAT, RUN_MAJOR), path)


def record_run(record: RunRecord) -> None:
    """Write the record into the submit directory and (best effort) into the runs index."""
    _write(Path(record.submit_dir) / RUN_FILENAME, record)
    try:
        _write(runs_dir() / f"{record.run_id}.json", record)
    except OSError as err:
        _LOG.warning("could not add run %s to the runs index %s: %s", record.run_id, runs_dir(), err)


def find_run(ref: str) -> RunRecord:
    """The run named by ``ref``: an id, a unique id prefix, or a submit directory path."""
    index = runs_dir()
    exact = index / f"{ref}.json"
    if ref and "/" not in ref and exact.exists():
        return _read(exact)
    as_dir = Path(ref).expanduser()
    if (as_dir / RUN_FILENAME).exists():
        return _read(as_dir / RUN_FILENAME)
    matches = sorted(index.glob(f"{ref}*.json")) if ref and "/" not in ref and index.is_dir() else []
    if len(matches) == 1:
        return _read(matches[0])
    if len(matches) > 1:
        names = ", ".join(p.stem for p in matches[:10])
        raise RunNotFoundError(f"run id prefix {ref!r} is ambiguous: {names}")
    raise RunNotFoundError(
        f"no run {ref!r}: not an id in {index} and not a submit directory with a {RUN_FILENAME}"
    )


def list_runs(
    limit: int | None = None, *, operator: str | None = None, since: datetime.datetime | None = None
) -> list[RunRecord]:
    """Recorded runs, newest submit first (unreadable records are skipped with a warning).

    ``operator``: only that user's runs; ``since``: only runs submitted at or after it.
    """
    index = runs_dir()
    if not index.is_dir():
        return []
    records = []
    for path in index.glob("*.json"):
        try:
            records.append(_read(path))
        except (StateFileError, OSError) as err:
            _LOG.warning("skipping unreadable run record %s: %s", path, err)
    if operator is not None:
        records = [r for r in records if r.operator == operator]
    if since is not None:
        records = [r for r in records if _submitted(r) >= since]
    records.sort(key=lambda r: r.submit_time, reverse=True)
    return records[:limit] if limit is not None else records


def _submitted(record: RunRecord) -> datetime.datetime:
    """When the run was submitted (an unparsable time counts as long ago)."""
    try:
        when = datetime.datetime.fromisoformat(record.submit_time)
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)

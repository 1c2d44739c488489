"""Reserving an execution's output run in the registry before any quantum runs.

A run name alone (even one with microseconds) does not stop two executions from writing into one
run: an explicit ``--output-run`` or bps ``outputRun`` can be given twice, and the second merge
then fails for good with its outputs never registered, or two executions mix their outputs.  So
execution starts by registering the run; the registry's insert says whether it was new, and that
is atomic on SQLite and PostgreSQL, so of two executions started together exactly one gets a new
run.  The graph build stays read-only (building never changes the repository).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._exceptions import OutputRunExistsError, RunConflictError

if TYPE_CHECKING:
    from butler import Butler, DatasetRef

    from ._model import GraphHeader

_log = logging.getLogger(__name__)


def _check_configs(butler: Butler, header: GraphHeader) -> None:
    """Refuse to extend a run whose tasks were configured otherwise, naming the first field that differs."""
    run = header.output_run
    registered = {dt.name for dt in butler.registry.query_dataset_types()}
    for label, refs in header.init_outputs.items():
        for ref in refs:
            if ref.dataset_type.name not in registered:
                continue
            existing = butler.registry.find_dataset(ref.dataset_type, ref.data_id, [run])
            if existing is None:
                continue
            old: Any = butler.get(existing)
            new = dict(header.tasks[label].config)
            if not isinstance(old, dict) or old == new:
                continue
            for field in sorted(set(old) | set(new)):
                if old.get(field, _MISSING) != new.get(field, _MISSING):
                    raise RunConflictError(
                        f"task {label!r} config field {field!r} is {_show(new.get(field, _MISSING))} now but "
                        f"{_show(old.get(field, _MISSING))} in output run {run!r}; a run holds one "
                        "configuration: use a new output run, or --clobber-outputs to replace its outputs"
                    )


_MISSING = object()


def _show(value: Any) -> str:
    return "unset" if value is _MISSING else repr(value)


def _existing_outputs(butler: Butler, header: GraphHeader, refs: list[DatasetRef]) -> list[DatasetRef]:
    """The datasets already registered in the output run with a predicted output's type and data ID."""
    run = header.output_run
    wanted: dict[str, set[str]] = {}
    for ref in refs:
        wanted.setdefault(ref.dataset_type.name, set()).add(str(ref.data_id))
    registered = {dt.name for dt in butler.registry.query_dataset_types()}
    found: list[DatasetRef] = []
    for name in sorted(wanted):
        if name not in registered:
            continue
        for ref in butler.registry.query_datasets(name, collections=[run]):
            if str(ref.data_id) in wanted[name]:
                found.append(ref)
    return found


def reserve_output_run(
    butler: Butler,
    header: GraphHeader,
    predicted: list[DatasetRef],
    *,
    extend_run: bool = False,
    clobber_outputs: bool = False,
    replace_unsuccessful: bool = False,
) -> list[DatasetRef]:
    """Register ``header.output_run``; refuse a run that exists unless told to extend or clobber it.

    ``predicted`` are the graph's quantum outputs (init outputs excluded: an extended run already
    holds the tasks' configs, and the merge keeps those when the new ones are identical).  With
    ``clobber_outputs`` the predicted outputs and configs the run already holds are removed
    (records and files) so execution writes them afresh; they are returned.  With ``extend_run`` alone, a run
    that already holds any of them is refused, and so is one whose task configs differ from the
    graph's (:class:`RunConflictError` naming the task and field).  ``replace_unsuccessful``: the
    graph was built with ``--skip-existing-in`` covering this run, so every quantum that succeeded
    there was left out and the predicted outputs the run holds are what failed (or unfinished)
    attempts left: they are removed, and replaced by this execution, never duplicated.
    """
    run = header.output_run
    if butler.registry.register_run(run):
        return []
    if not (extend_run or clobber_outputs):
        raise OutputRunExistsError(
            f"output run {run!r} already exists; pass --extend-run to add outputs to it, or "
            "--clobber-outputs to replace the outputs it already holds (or choose a new run)"
        )
    if not clobber_outputs:
        _check_configs(butler, header)
    existing = _existing_outputs(butler, header, predicted)
    if existing and replace_unsuccessful and not clobber_outputs:
        _log.info("replacing %d output(s) of unsuccessful quanta in %s", len(existing), run)
    elif existing and not clobber_outputs:
        example = existing[0]
        raise OutputRunExistsError(
            f"output run {run!r} already holds {len(existing)} of this graph's predicted outputs "
            f"(e.g. {example.dataset_type.name} {{{example.data_id}}}); pass --clobber-outputs to "
            "replace them, or narrow the data query"
        )
    if clobber_outputs:
        # Replacing means the tasks' configs too: the new ones are recorded as what is written.
        inits = header.all_init_outputs()
        existing += _existing_outputs(butler, header, inits)
    if existing:
        butler.remove_datasets(existing)
    return existing

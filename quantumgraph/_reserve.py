"""Reserving an execution's output run in the registry before any quantum runs.

A run name alone (even one with microseconds) does not stop two executions from writing into one
run: an explicit ``--output-run`` or bps ``outputRun`` can be given twice, and the second merge
then fails for good with its outputs never registered, or two executions mix their outputs.  So
execution starts by registering the run; the registry's insert says whether it was new, and that
is atomic on SQLite and PostgreSQL, so of two executions started together exactly one gets a new
run.  The graph build stays read-only (building never changes the repository).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exceptions import OutputRunExistsError

if TYPE_CHECKING:
    from butler import Butler, DatasetRef

    from ._model import GraphHeader


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
) -> list[DatasetRef]:
    """Register ``header.output_run``; refuse a run that exists unless told to extend or clobber it.

    ``predicted`` are the graph's quantum outputs (init outputs excluded: an extended run already
    holds the tasks' configs, and the merge keeps those when the new ones are identical).  With
    ``clobber_outputs`` the predicted outputs and configs the run already holds are removed
    (records and files) so execution writes them afresh; they are returned.  With ``extend_run`` alone, a run
    that already holds any of them is refused.
    """
    run = header.output_run
    if butler.registry.register_run(run):
        return []
    if not (extend_run or clobber_outputs):
        raise OutputRunExistsError(
            f"output run {run!r} already exists; pass --extend-run to add outputs to it, or "
            "--clobber-outputs to replace the outputs it already holds (or choose a new run)"
        )
    existing = _existing_outputs(butler, header, predicted)
    if existing and not clobber_outputs:
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

"""The final merge job (``butler transfer-from-graph``): register what the jobs actually wrote.

Jobs write outputs straight to the datastore and never touch the registry.  This step reads the
graph's predicted outputs, keeps those whose files exist, and in ONE registry transaction
registers the dataset types, the output run, those datasets (with the UUIDs the graph assigned)
and their datastore records, then puts the run at the front of the output CHAINED collection.
Datasets already registered are skipped, so running it twice changes nothing the second time.
It runs whether the workflow succeeded or not: whatever exists is merged.  Provenance (each
quantum's ``_log`` and ``_metadata``, the run's ``packages``) is merged like any other output.
Sizes and checksums come from the journals the jobs kept of what they wrote
(:mod:`quantumgraph._written`), checked by one ``stat`` per file; files without a journal line
are read.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from butler import DatasetRef, MissingDatasetTypeError, StoredFileInfo

from ._exceptions import GraphBuildError
from ._model import GraphHeader
from ._provenance import LOG_STORAGE_CLASS, METADATA_STORAGE_CLASS
from ._written import read_journals, remove_journals

if TYPE_CHECKING:
    from butler import Butler, FileDatastore

_log = logging.getLogger(__name__)

#: Storage classes of the provenance each attempt of a quantum rewrites (its log and metadata).
_REWRITTEN_STORAGE_CLASSES = frozenset({LOG_STORAGE_CLASS, METADATA_STORAGE_CLASS})


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Counts a user checks after a merge."""

    predicted: int
    """Outputs the graph predicted (init outputs included)."""
    found: int
    """Of those, how many have a file in the datastore."""
    registered: int
    """How many were newly registered by this call (0 on a repeat)."""
    output_run: str
    output: str | None
    temporaries_removed: int = 0
    """Stale temporary files of killed jobs removed from the run's directories."""
    dry_run: bool = False
    """Nothing was changed; ``registered`` is what a real merge would newly register."""

    @property
    def missing(self) -> int:
        return self.predicted - self.found


def _predicted_refs(graph_path: Path) -> tuple[GraphHeader, list[DatasetRef]]:
    from ._file import GraphReader

    with GraphReader(graph_path) as reader:
        header = reader.header
        refs: list[DatasetRef] = header.all_init_outputs()
        for quantum in reader.iter_quanta():
            for out in quantum.outputs.values():
                refs.extend(out)
    return header, refs


def _without_kept_init_outputs(
    butler: Butler, header: GraphHeader, found: list[tuple[DatasetRef, StoredFileInfo]]
) -> list[tuple[DatasetRef, StoredFileInfo]]:
    """Drop init outputs (task configs) that an extended run already holds under another ID.

    ``pipetask run --extend-run`` writes into a run an earlier execution of the same pipeline
    made; the configs are the same files (a different config could not be written over them
    without --clobber-outputs), so the records already there stay and describe them.
    """
    init_ids = {ref.id for ref in header.all_init_outputs()}
    kept = []
    for ref, info in found:
        if ref.id in init_ids:
            existing = butler.registry.find_dataset(ref.dataset_type, ref.data_id, [header.output_run])
            if existing is not None and existing.id != ref.id:
                continue
        kept.append((ref, info))
    return kept


def transfer_from_graph(
    graph_path: str | Path,
    butler: Butler,
    *,
    register_dataset_types: bool = True,
    update_output_chain: bool = True,
    progress: Callable[[int], None] | None = None,
    clobber_outputs: bool = False,
    dataset_types: Collection[str] = (),
    dry_run: bool = False,
) -> MergeResult:
    """Register the graph's outputs that exist in ``butler``'s datastore; idempotent.

    An output registered by an earlier merge keeps its record, unless ``clobber_outputs``: its
    jobs were rerun with ``--clobber-outputs``, so the record is replaced by one describing the
    file now there (size and checksum), in the same transaction.

    ``dataset_types``: only outputs of these types (each must be one of the graph's); the counts
    then cover only them.  ``dry_run``: look, change nothing; ``registered`` counts what a real
    merge would newly register.
    """
    header, refs = _predicted_refs(Path(graph_path))
    if dataset_types:
        unknown = sorted(set(dataset_types) - set(header.dataset_types))
        if unknown:
            raise GraphBuildError(
                f"--dataset-type {', '.join(unknown)}: not a dataset type of {graph_path} "
                f"(its types: {', '.join(sorted(header.dataset_types))})"
            )
        wanted = set(dataset_types)
        refs = [ref for ref in refs if ref.dataset_type.name in wanted]
    datastore = butler.datastore
    journaled, journals = read_journals(datastore.root, header.id_prefix)
    found, missing = _find_outputs(datastore, refs, journaled, progress)
    if dry_run:
        recorded = butler.get_records(ref.id for ref, _ in found)
        new = sum(1 for ref, _ in found if ref.id not in recorded)
        _log.info(
            "dry run: %d of %d predicted outputs found; %d would be newly registered in %s",
            len(found),
            len(refs),
            new,
            header.output_run,
        )
        return MergeResult(len(refs), len(found), new, header.output_run, header.output, 0, dry_run=True)
    registry = butler.registry
    with registry.transaction():
        # Name order: concurrent merges then take the same row locks in the same order (no deadlock).
        for dt in sorted(header.dataset_types.values(), key=lambda d: d.name):
            if register_dataset_types:
                registry.register_dataset_type(dt)
            else:
                try:
                    registry.get_dataset_type(dt.name).check_compatible(dt)
                except MissingDatasetTypeError as exc:
                    raise MissingDatasetTypeError(
                        f"{exc} (pass --register-dataset-types to register the graph's dataset types)"
                    ) from exc
        registry.register_run(header.output_run)
        found = _without_kept_init_outputs(butler, header, found)
        inserted = registry.import_datasets([ref for ref, _ in found])
        butler.insert_datastore_records([info for _, info in found])
        # Registered before and rewritten since: every output with --clobber-outputs; without it
        # only provenance, which a rerun of a quantum always replaces (it describes the latest attempt).
        new_ids = {ref.id for ref in inserted}
        rewritable = [
            info
            for ref, info in found
            if ref.id not in new_ids
            and (clobber_outputs or ref.dataset_type.storage_class in _REWRITTEN_STORAGE_CLASSES)
        ]
        if rewritable:
            current = butler.get_records([info.dataset_id for info in rewritable])
            changed = []
            for info in rewritable:
                old = current.get(info.dataset_id)
                if old is not None and (old.file_size, old.checksum) != (info.file_size, info.checksum):
                    changed.append(info)
            if changed:
                butler.replace_datastore_records(changed)
                _log.info("recorded %d rewritten output file(s) as they are now", len(changed))
        if update_output_chain and header.output:
            _update_chain(butler, header)
    if not dataset_types:  # a partial merge leaves them for the rest of the outputs
        remove_journals(journals)
    # Killed jobs leave their temporary files (.tmp-*) beside the outputs they were writing:
    # remove those that no live writer can still own (older than the datastore's threshold).
    # Outputs found give their directories from their records; only missing ones need predicting.
    directories = sorted(
        {info.path.rpartition("/")[0] for _, info in found}
        | {datastore.predict_path(ref).rpartition("/")[0] for ref in missing}
    )
    removed = datastore.remove_stale_temporaries(directories=directories)
    if removed:
        _log.info("removed %d stale temporary file(s) of killed jobs", len(removed))
    _log.info(
        "merged %d of %d predicted outputs into %s (%d newly registered)",
        len(found),
        len(refs),
        header.output_run,
        len(inserted),
    )
    return MergeResult(len(refs), len(found), len(inserted), header.output_run, header.output, len(removed))


def _find_outputs(
    datastore: FileDatastore,
    refs: list[DatasetRef],
    journaled: dict[uuid.UUID, tuple[StoredFileInfo, int]],
    progress: Callable[[int], None] | None,
) -> tuple[list[tuple[DatasetRef, StoredFileInfo]], list[DatasetRef]]:
    """The predicted outputs whose files exist, with the records to register; and the missing ones.

    What is registered is what is there: a file's size and CRC-32 come from the job's journal
    while the file is still the one the journal describes (same size and modification time),
    and from reading the file otherwise.
    """
    found: list[tuple[DatasetRef, StoredFileInfo]] = []
    missing: list[DatasetRef] = []
    root = str(datastore.root)
    for ref in refs:
        info: StoredFileInfo | None = None
        entry = journaled.get(ref.id)
        if entry is not None:
            recorded, mtime = entry
            try:
                st = os.stat(f"{root}/{recorded.path}")
            except OSError:
                st = None
            if st is not None and st.st_size == recorded.file_size and st.st_mtime_ns == mtime:
                info = recorded
        if info is None:
            info = datastore.info_for_existing(ref, checksum=True)
        if info is not None:
            found.append((ref, info))
        else:
            missing.append(ref)
        if progress is not None:
            progress(1)
    return found, missing


def _update_chain(butler: Butler, header: GraphHeader) -> None:
    """Put the output run first in the output chain, creating the chain over the inputs if new.

    The graph's input collections may include the output chain itself (``-i`` defaulting to
    the chain on a rerun); it is never added to itself.
    """
    assert header.output is not None
    output, run = header.output, header.output_run

    def prepend_run(children: list[str]) -> list[str]:
        if not children:
            return [run, *(c for c in header.input_collections if c != output)]
        if run in children:
            return children
        # Inputs named for this run that the chain lacks go right after the run, so everything
        # the run was built from stays searchable through the output collection.
        added = [c for c in header.input_collections if c not in children and c != output]
        return [run, *added, *children]

    # Computed under the chain's lock from its current children, so merges running at the same
    # time into one output chain each add their run and none is lost.
    butler.registry.update_chain(output, prepend_run)

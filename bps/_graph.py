"""Getting the QuantumGraph a submit runs: build it from the pipeline, or copy ``qgraphFile``.

Either way the graph ends up as a file inside the submit directory, because every batch job reads
it from there.  The butler and quantumgraph layers are imported here, lazily, so commands that
do not build graphs (``bps report``) never load them.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ._exceptions import OutputRunTakenError
from .config._model import BpsConfig

if TYPE_CHECKING:
    from quantumgraph import GraphSummary

_LOG = logging.getLogger(__name__)


def make_graph(config: BpsConfig, dest: Path) -> GraphSummary:
    """Write the run's graph to ``dest``; return it in memory (built) or as a reader (copied)."""
    if config.qgraph_file is not None:
        from quantumgraph import GraphReader

        shutil.copyfile(config.qgraph_file, dest)
        reader = GraphReader(dest)
        header = reader.header
        if header.output_run != config.payload.output_run:
            _LOG.warning(
                "qgraphFile %s writes to run %s, not outputRun %s from the config; the graph wins",
                config.qgraph_file,
                header.output_run,
                config.payload.output_run,
            )
        return reader
    from butler import Butler
    from quantumgraph import Pipeline, build_quantum_graph, write_graph

    assert config.pipeline_yaml is not None  # the config requires one when there is no qgraphFile
    butler = Butler(config.payload.butler_config, writeable=False)
    # LSST's FILE.yaml#labels / #subset / #a..b: the loader selects that part of the pipeline.
    pipeline = Pipeline.from_file(config.pipeline_yaml, selection=config.pipeline_fragment or None)
    graph = build_quantum_graph(
        butler,
        pipeline,
        input_collections=list(config.payload.in_collection),
        output_run=config.payload.output_run,
        output=config.payload.output,
        where=config.payload.data_query,
        existing_run_ok=True,  # reserve_output_run refuses it, atomically, once the graph is built
    )
    write_graph(dest, graph)
    return graph


def reserve_output_run(config: BpsConfig, run: str) -> None:
    """Register ``run`` in the payload's repository; refuse it if it already exists.

    The registry's insert reports whether the run was new and is atomic on SQLite and PostgreSQL,
    so of two submits with one outputRun (two in one second share ``{timestamp}``) exactly one
    gets it.  Done after the graph is built, so a build that fails reserves nothing.
    """
    from butler import Butler

    with Butler(config.payload.butler_config) as butler:
        if not butler.registry.register_run(run):
            raise OutputRunTakenError(
                f"output run {run!r} already exists in {butler.root} (another submit or pipetask run "
                "holds it); choose a new payload.outputRun (the default {output}/{timestamp} changes "
                "every second)"
            )

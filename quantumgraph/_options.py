"""The options of ``pipetask qgraph``/``run`` that change what is planned, as one value.

The command line builds a :class:`GraphOptions`; bps builds the same from a submit YAML's
``extraQgraphOptions`` string with :func:`parse_graph_options`, so the two never disagree on what
an option means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class GraphOptions:
    """Options of ``pipetask qgraph``/``run`` beyond where the graph comes from (all LSST's names).

    bps reads the same ones from ``extraQgraphOptions`` (:func:`parse_graph_options`).
    """

    skip_existing_in: tuple[str, ...] = ()
    """Collections whose succeeded quanta (by their metadata) are left out of the graph."""
    skip_existing: bool = False
    """The output run is one of ``skip_existing_in`` (when it exists)."""
    extend_run: bool = False
    """Write into the existing output run (with -o and no --output-run: the output chain's first run)."""
    replace_run: bool = False
    """Take the output chain's first run out of it (and out of the default inputs); see ``prune_replaced``."""
    prune_replaced: str | None = None
    """With ``replace_run``: ``unstore`` removes the replaced run's files, ``purge`` the run itself."""
    config_overrides: tuple[str, ...] = ()
    """``LABEL:KEY=VALUE`` task config overrides (-c)."""
    config_files: tuple[str, ...] = ()
    """``LABEL:FILE.yaml`` task config override files (-C)."""
    select_tasks: tuple[str, ...] = ()
    """Labels (comma-separated allowed) of the only tasks to plan (--select-tasks)."""

    def apply_to_pipeline(self, pipeline: Pipeline) -> Pipeline:
        """``pipeline`` with ``--select-tasks``, ``-C`` and ``-c`` applied (in that order)."""
        from ._overrides import apply_config_overrides, select_tasks

        if self.select_tasks:
            pipeline = select_tasks(pipeline, self.select_tasks)
        if self.config_overrides or self.config_files:
            pipeline = apply_config_overrides(pipeline, self.config_overrides, self.config_files)
        return pipeline

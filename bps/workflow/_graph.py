"""The engine-neutral workflow: jobs and the order they must run in.

:class:`WorkflowGraph` owns a ``networkx.DiGraph`` of job names rather than subclassing it, so
its public surface is the few operations plugins need and jobs cannot be added without their
:class:`GenericJob`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

import networkx as nx

from ..config._model import FinalJobWhen
from ._job import GenericJob


class WorkflowGraph:
    """Jobs (nodes, by unique name) and dependencies (edges parent -> child)."""

    def __init__(self, name: str, *, final_job_when: FinalJobWhen = FinalJobWhen.ALWAYS) -> None:
        self.name = name
        """Usually the config's ``uniqProcName``."""
        self.final_job_when = final_job_when
        self._graph: nx.DiGraph = nx.DiGraph()
        self._jobs: dict[str, GenericJob] = {}
        self._order: list[GenericJob] | None = None

    # -- building --------------------------------------------------------------------------------
    def add_job(self, job: GenericJob, parents: Iterable[str] = ()) -> None:
        self.add_jobs([job])
        self.add_dependencies((parent, job.name) for parent in parents)

    def add_jobs(self, jobs: Iterable[GenericJob]) -> None:
        """Add many jobs at once (one networkx call: building 20,000 jobs one by one is slow)."""
        batch = list(jobs)
        for job in batch:
            if job.name in self._jobs:
                raise ValueError(f"duplicate job name {job.name!r} in workflow {self.name!r}")
            self._jobs[job.name] = job
        self._graph.add_nodes_from(job.name for job in batch)
        self._order = None

    def add_dependencies(self, edges: Iterable[tuple[str, str]]) -> None:
        """Add parent -> child edges; both jobs must already be in the workflow."""
        batch = list(edges)
        for parent, child in batch:
            for name in (parent, child):
                if name not in self._jobs:
                    raise KeyError(f"no job named {name!r} in workflow {self.name!r}")
        self._graph.add_edges_from(batch)
        self._order = None

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[GenericJob]:
        """Jobs in the order they were added."""
        return iter(self._jobs.values())

    def job(self, name: str) -> GenericJob:
        try:
            return self._jobs[name]
        except KeyError:
            raise KeyError(f"no job named {name!r} in workflow {self.name!r}") from None

    @property
    def init_job(self) -> GenericJob | None:
        return next((job for job in self._jobs.values() if job.is_init), None)

    @property
    def final_job(self) -> GenericJob | None:
        return next((job for job in reversed(self._jobs.values()) if job.is_final), None)

    def parents(self, name: str) -> list[str]:
        return list(self._graph.predecessors(name))

    def children(self, name: str) -> list[str]:
        return list(self._graph.successors(name))

    def edges(self) -> Iterator[tuple[str, str]]:
        return iter(self._graph.edges())

    @property
    def number_of_edges(self) -> int:
        return int(self._graph.number_of_edges())

    def is_acyclic(self) -> bool:
        return bool(nx.is_directed_acyclic_graph(self._graph))

    def topological_order(self) -> list[GenericJob]:
        """Every job after all of its parents (cached until the graph changes)."""
        if self._order is None:
            try:
                self._order = [self._jobs[name] for name in nx.topological_sort(self._graph)]
            except nx.NetworkXUnfeasible:
                raise ValueError(f"workflow {self.name!r} has a dependency cycle") from None
        return list(self._order)

    def label_counts(self) -> Counter[str]:
        """Number of jobs per label, in first-seen order."""
        return Counter(job.label for job in self._jobs.values())

"""The engine-neutral workflow: jobs and the order they must run in.

:class:`WorkflowGraph` keeps its own parent/child maps of job names: the few operations plugins
need (parents, children, a topological order, a cycle check) are a few lines each, while
importing networkx would cost ``bps prepare`` about 90 ms of start-up and shutdown.  networkx
is still used, imported on demand, to name the jobs of a cycle when there is one.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator

from ..config._model import FinalJobWhen
from ._job import GenericJob


class WorkflowGraph:
    """Jobs (nodes, by unique name) and dependencies (edges parent -> child)."""

    def __init__(self, name: str, *, final_job_when: FinalJobWhen = FinalJobWhen.ALWAYS) -> None:
        self.name = name
        """Usually the config's ``uniqProcName``."""
        self.final_job_when = final_job_when
        self._children: dict[str, dict[str, None]] = {}
        self._parents: dict[str, dict[str, None]] = {}
        self._edge_count = 0
        self._jobs: dict[str, GenericJob] = {}
        self._order: list[GenericJob] | None = None

    # -- building --------------------------------------------------------------------------------
    def add_job(self, job: GenericJob, parents: Iterable[str] = ()) -> None:
        self.add_jobs([job])
        self.add_dependencies((parent, job.name) for parent in parents)

    def add_jobs(self, jobs: Iterable[GenericJob]) -> None:
        """Add many jobs at once."""
        batch = list(jobs)
        for job in batch:
            if job.name in self._jobs:
                raise ValueError(f"duplicate job name {job.name!r} in workflow {self.name!r}")
            self._jobs[job.name] = job
            self._children[job.name] = {}
            self._parents[job.name] = {}
        self._order = None

    def add_dependencies(self, edges: Iterable[tuple[str, str]]) -> None:
        """Add parent -> child edges; both jobs must already be in the workflow."""
        batch = list(edges)
        for parent, child in batch:
            for name in (parent, child):
                if name not in self._jobs:
                    raise KeyError(f"no job named {name!r} in workflow {self.name!r}")
        for parent, child in batch:
            children = self._children[parent]
            if child not in children:
                children[child] = None
                self._parents[child][parent] = None
                self._edge_count += 1
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
        return list(self._parents[name])

    def children(self, name: str) -> list[str]:
        return list(self._children[name])

    def edges(self) -> Iterator[tuple[str, str]]:
        return ((parent, child) for parent, children in self._children.items() for child in children)

    @property
    def number_of_edges(self) -> int:
        return self._edge_count

    def _kahn_order(self) -> list[str]:
        """Job names parents-first (Kahn's algorithm); shorter than len(self) if there is a cycle."""
        waiting = {name: len(parents) for name, parents in self._parents.items()}
        ready = deque(name for name, n in waiting.items() if n == 0)
        order: list[str] = []
        while ready:
            name = ready.popleft()
            order.append(name)
            for child in self._children[name]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        return order

    def is_acyclic(self) -> bool:
        return len(self._kahn_order()) == len(self._jobs)

    def find_cycle(self) -> list[str]:
        """Job names around one dependency cycle (empty if the workflow is acyclic)."""
        if self.is_acyclic():
            return []
        import networkx as nx  # only on this rare error path

        graph = nx.DiGraph(list(self.edges()))
        return [parent for parent, _child in nx.find_cycle(graph)]

    def topological_order(self) -> list[GenericJob]:
        """Every job after all of its parents (cached until the graph changes)."""
        if self._order is None:
            names = self._kahn_order()
            if len(names) != len(self._jobs):
                cycle = " -> ".join(self.find_cycle()[:10])
                raise ValueError(f"workflow {self.name!r} has a dependency cycle: {cycle}")
            self._order = [self._jobs[name] for name in names]
        return list(self._order)

    def label_counts(self) -> Counter[str]:
        """Number of jobs per label, in first-seen order."""
        return Counter(job.label for job in self._jobs.values())

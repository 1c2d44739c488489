"""``butler query-*`` commands: print what a repository holds as plain tables."""

from __future__ import annotations

import fnmatch
import logging

import click

from ._options import collections_option, repo_argument, where_option
from ._table import format_table

_log = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")


@click.command("query-datasets", short_help="List datasets, one table per dataset type.")
@repo_argument
@click.argument("dataset_types", metavar="[DATASET_TYPE...]", nargs=-1)
@collections_option
@where_option
@click.option(
    "--find-first/--no-find-first",
    default=None,
    help="Show only the first dataset found per data ID, searching --collections in order "
    "(default when --collections is given), or every match. Without --collections all runs are "
    "searched and every match is shown.",
)
def query_datasets(
    repo: str,
    dataset_types: tuple[str, ...],
    collections: tuple[str, ...],
    where: str | None,
    find_first: bool | None,
) -> None:
    """List datasets in REPO: one table per dataset type (type, run, id, data ID columns).

    DATASET_TYPE may be a name or a glob pattern (quote it); with none, every dataset type is
    queried, and those whose dimensions the --where expression cannot apply to are skipped.

    \b
    Examples:
      butler query-datasets my_repo raw --collections Cam/raw/all --where "detector IN (1, 2)"
      butler query-datasets my_repo --collections u/me/run1,Cam/defaults --where "band = 'r'"
    """
    from .. import Butler, DatasetType
    from ..query import parse, referenced_dimensions

    with Butler(repo, writeable=False) as butler:
        registry = butler.registry
        explicit = bool(dataset_types) and not any(_GLOB_CHARS & set(t) for t in dataset_types)
        if dataset_types:
            all_types = registry.query_dataset_types()
            types: list[DatasetType] = []
            for pattern in dataset_types:
                if _GLOB_CHARS & set(pattern):
                    types.extend(
                        t for t in all_types if fnmatch.fnmatchcase(t.name, pattern) and t not in types
                    )
                else:
                    dt = registry.get_dataset_type(pattern)
                    if dt not in types:
                        types.append(dt)
        else:
            types = registry.query_dataset_types()
        if collections:
            search: list[str] = list(collections)
            first = True if find_first is None else find_first
        else:
            if find_first:
                raise click.UsageError("--find-first needs --collections (the order to search in)")
            search = [name for name, ctype in registry.query_collections() if ctype == "RUN"]
            first = False
        if not search:
            return
        node = parse(where) if where else None
        referenced = referenced_dimensions(node) if node is not None else set()
        tables = []
        for dt in types:
            if not explicit and referenced:
                reachable = set(butler.universe.implied_closure(dt.dimensions))
                if not referenced <= reachable:
                    _log.info("skipping %s: --where names dimensions it does not have", dt.name)
                    continue
            refs = registry.query_datasets(dt, search, where=where, find_first=first)
            if refs:
                headers = ["type", "run", "id", *dt.dimensions]
                rows = [[dt.name, r.run, str(r.id), *r.data_id.values_tuple] for r in refs]
                tables.append(format_table(headers, rows))
    click.echo("\n\n".join(tables) if tables else "", nl=bool(tables))


@click.command("query-collections", short_help="List collections and chain contents.")
@repo_argument
@click.argument("pattern", metavar="[PATTERN]", required=False)
def query_collections(repo: str, pattern: str | None) -> None:
    """List the collections of REPO: name, type (RUN or CHAINED) and, for chains, their children.

    PATTERN is a glob on the name (quote it in the shell).

    \b
    Example:
      butler query-collections my_repo 'u/me/*'
    """
    from .. import Butler

    with Butler(repo, writeable=False) as butler:
        registry = butler.registry
        rows = []
        for name, ctype in registry.query_collections(pattern):
            children = ", ".join(registry.get_chain(name)) if ctype == "CHAINED" else ""
            rows.append([name, ctype, children])
    if rows:
        click.echo(format_table(["name", "type", "children"], rows))


@click.command("query-dataset-types", short_help="List registered dataset types.")
@repo_argument
@click.argument("pattern", metavar="[PATTERN]", required=False)
def query_dataset_types(repo: str, pattern: str | None) -> None:
    """List the dataset types registered in REPO: name, dimensions and storage class.

    PATTERN is a glob on the name (quote it in the shell).

    \b
    Example:
      butler query-dataset-types my_repo 'calexp*'
    """
    from .. import Butler

    with Butler(repo, writeable=False) as butler:
        types = butler.registry.query_dataset_types(pattern)
    if types:
        rows = [[t.name, " ".join(t.dimensions), t.storage_class] for t in types]
        click.echo(format_table(["name", "dimensions", "storage_class"], rows))

"""``butler query-*`` commands: print what a repository holds as plain tables."""

from __future__ import annotations

import fnmatch
import logging

import click

from ._options import collections_option, repo_argument, split_commas, where_option
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
@click.option(
    "--order-by",
    multiple=True,
    callback=split_commas,
    metavar="[-]NAME[,...]",
    help="Sort each table by these dimensions (detector) or dimension fields "
    "(exposure.exposure_time), a leading - for descending; repeatable or comma-separated. "
    "Default: by data ID.",
)
@click.option(
    "--limit",
    type=int,
    default=0,
    show_default=True,
    help="Show at most N datasets in all (0: no limit). A negative -N also shows at most N, and warns "
    "when there were more (LSST's convention).",
)
@click.option("--show-uri", is_flag=True, help="Add a column with the URI of each dataset's file.")
def query_datasets(
    repo: str,
    dataset_types: tuple[str, ...],
    collections: tuple[str, ...],
    where: str | None,
    find_first: bool | None,
    order_by: tuple[str, ...],
    limit: int,
    show_uri: bool,
) -> None:
    """List datasets in REPO: one table per dataset type (type, run, id, data ID columns).

    DATASET_TYPE may be a name or a glob pattern (quote it); with none, every dataset type is
    queried, and those whose dimensions the --where expression cannot apply to are skipped.

    \b
    Examples:
      butler query-datasets my_repo raw --collections Cam/raw/all --where "detector IN (1, 2)"
      butler query-datasets my_repo --collections u/me/run1,Cam/defaults --where "band = 'r'"
      butler query-datasets my_repo raw --order-by -exposure,detector --limit 10 --show-uri
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
        cap = abs(limit) if limit else None
        shown = 0
        more = False
        tables = []
        for dt in types:
            if not explicit and referenced:
                reachable = set(butler.universe.implied_closure(dt.dimensions))
                if not referenced <= reachable:
                    _log.info("skipping %s: --where names dimensions it does not have", dt.name)
                    continue
            room = None if cap is None else cap - shown
            if room is not None and room <= 0 and limit > 0:
                break
            # One row beyond the room left tells a negative --limit that there were more.
            query_limit = None if room is None else room + 1
            refs = registry.query_datasets(
                dt, search, where=where, find_first=first, order_by=order_by, limit=query_limit
            )
            if room is not None and len(refs) > room:
                more, refs = True, refs[:room]
            if refs:
                shown += len(refs)
                headers = ["type", "run", "id", *dt.dimensions]
                rows = [[dt.name, r.run, str(r.id), *r.data_id.values_tuple] for r in refs]
                if show_uri:
                    uris = butler.uris(refs)
                    headers.append("uri")
                    for row, ref in zip(rows, refs, strict=True):
                        row.append(uris.get(ref.id, ""))
                tables.append(format_table(headers, rows))
            if more and cap is not None and shown >= cap:
                break
    click.echo("\n\n".join(tables) if tables else "", nl=bool(tables))
    if more and limit < 0:
        _log.warning("more than %d datasets match; showing the first %d (--limit)", cap, cap)


#: LSST's collection types; skybatch makes RUN and CHAINED collections only, so TAGGED and
#: CALIBRATION select nothing here (accepted so LSST command lines run unchanged).
COLLECTION_TYPES = ("RUN", "CHAINED", "TAGGED", "CALIBRATION")
#: LSST's ways of showing chains (``--chains``); TABLE is skybatch's historical output.
CHAIN_MODES = ("TABLE", "INVERSE-TABLE", "TREE", "INVERSE-TREE", "FLATTEN", "NO-CHILDREN")


def _upper(ctx: click.Context, param: click.Parameter, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value.upper()
    return tuple(item.upper() for item in split_commas(ctx, param, value))


@click.command("query-collections", short_help="List collections and chain contents.")
@repo_argument
@click.argument("patterns", metavar="[PATTERN...]", nargs=-1)
@click.option(
    "--collection-type",
    "collection_types",
    multiple=True,
    callback=_upper,
    metavar="TYPE[,TYPE...]",
    help=f"Only collections of these types ({', '.join(COLLECTION_TYPES)}; repeatable or "
    "comma-separated). Default: every type.",
)
@click.option(
    "--chains",
    type=click.Choice(CHAIN_MODES, case_sensitive=False),
    callback=_upper,
    default="TABLE",
    show_default=True,
    help="How chains are shown: TABLE (children in a column), INVERSE-TABLE (the chains each "
    "collection is in), TREE (children indented below each chain, recursively), INVERSE-TREE "
    "(parent chains indented below each collection, recursively), FLATTEN (one list: the matches "
    "and everything their chains contain), NO-CHILDREN (names and types only).",
)
def query_collections(
    repo: str, patterns: tuple[str, ...], collection_types: tuple[str, ...], chains: str
) -> None:
    """List the collections of REPO: name, type (RUN or CHAINED) and, for chains, their children.

    PATTERNs are globs on the name (quote them in the shell); a collection matching any is listed.

    \b
    Examples:
      butler query-collections my_repo 'u/me/*'
      butler query-collections my_repo --chains TREE --collection-type CHAINED
    """
    from .. import Butler

    unknown = [t for t in collection_types if t not in COLLECTION_TYPES]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}: not a collection type ({', '.join(COLLECTION_TYPES)})",
            param_hint="--collection-type",
        )
    with Butler(repo, writeable=False) as butler:
        registry = butler.registry
        types = dict(registry.query_collections())
        children = {name: registry.get_chain(name) for name, kind in types.items() if kind == "CHAINED"}
    parents: dict[str, list[str]] = {}
    for chain, members in sorted(children.items()):
        for child in members:
            parents.setdefault(child, []).append(chain)
    matches = [
        name
        for name in sorted(types)
        if (not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns))
        and (not collection_types or types[name] in collection_types)
    ]
    rows: list[list[str]]
    if chains == "TABLE":
        headers = ["name", "type", "children"]
        rows = [[n, types[n], ", ".join(children.get(n, []))] for n in matches]
    elif chains == "INVERSE-TABLE":
        headers = ["name", "type", "parents"]
        rows = [[n, types[n], ", ".join(parents.get(n, []))] for n in matches]
    elif chains in ("TREE", "INVERSE-TREE"):
        headers = ["name", "type"]
        links = children if chains == "TREE" else parents
        rows = []
        for name in matches:
            _tree_rows(name, 0, links, types, rows, ())
    elif chains == "FLATTEN":
        headers = ["name", "type"]
        seen: list[str] = []
        for name in matches:
            _flatten(name, children, seen)
        rows = [[n, types[n]] for n in seen]
    else:  # NO-CHILDREN
        headers = ["name", "type"]
        rows = [[n, types[n]] for n in matches]
    if rows:
        click.echo(format_table(headers, rows))


def _tree_rows(
    name: str,
    depth: int,
    links: dict[str, list[str]],
    types: dict[str, str],
    rows: list[list[str]],
    path: tuple[str, ...],
) -> None:
    """``name`` indented two spaces per level, then what ``links`` leads to, recursively."""
    rows.append(["  " * depth + name, types.get(name, "?")])
    if name in path:  # chains cannot form cycles, but a display must never loop
        return
    for linked in links.get(name, []):
        _tree_rows(linked, depth + 1, links, types, rows, (*path, name))


def _flatten(name: str, children: dict[str, list[str]], seen: list[str]) -> None:
    if name in seen:
        return
    seen.append(name)
    for child in children.get(name, []):
        _flatten(child, children, seen)


@click.command("query-dataset-types", short_help="List registered dataset types.")
@repo_argument
@click.argument("patterns", metavar="[PATTERN...]", nargs=-1)
@click.option(
    "--collections",
    multiple=True,
    callback=split_commas,
    metavar="COLLECTION[,COLLECTION...]",
    help="Only dataset types with at least one dataset in these collections (repeatable or "
    "comma-separated; CHAINED collections are searched through).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show dimensions and storage class (LSST's option; skybatch's table always shows them).",
)
def query_dataset_types(
    repo: str, patterns: tuple[str, ...], collections: tuple[str, ...], verbose: bool
) -> None:
    """List the dataset types registered in REPO: name, dimensions and storage class.

    PATTERNs are globs on the name (quote them in the shell); a type matching any is listed.

    \b
    Examples:
      butler query-dataset-types my_repo 'calexp*'
      butler query-dataset-types my_repo --collections u/me/run1
    """
    from .. import Butler

    del verbose  # the table is always the verbose one
    with Butler(repo, writeable=False) as butler:
        registry = butler.registry
        types = [
            t
            for t in registry.query_dataset_types()
            if not patterns or any(fnmatch.fnmatchcase(t.name, p) for p in patterns)
        ]
        if collections:
            types = [t for t in types if registry.query_datasets(t, collections, find_first=False, limit=1)]
    if types:
        rows = [[t.name, " ".join(t.dimensions), t.storage_class] for t in types]
        click.echo(format_table(["name", "dimensions", "storage_class"], rows))

"""Arguments and options shared by several ``butler`` commands, defined once."""

from __future__ import annotations

import click


def split_commas(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Accept ``--collections a,b --collections c`` as (a, b, c), order kept, duplicates dropped."""
    out: list[str] = []
    for value in values or ():
        for item in value.split(","):
            item = item.strip()
            if item and item not in out:
                out.append(item)
    return tuple(out)


repo_argument = click.argument("repo", metavar="REPO", type=click.Path(file_okay=False))

collections_option = click.option(
    "--collections",
    multiple=True,
    callback=split_commas,
    metavar="COLLECTION[,COLLECTION...]",
    help="Collections to search, in order (repeatable, or comma-separated). CHAINED collections are "
    "expanded into their runs.",
)

where_option = click.option(
    "--where",
    default=None,
    metavar="EXPR",
    help="Constraint on data IDs, e.g. \"instrument = 'Cam' AND detector IN (1, 2) AND "
    'exposure.exposure_time > 10" or "band = \'r\'".',
)

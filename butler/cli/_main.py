"""The ``butler`` command group: global options, built-in commands, plugins from entry points."""

from __future__ import annotations

import click

from ._group import PluginGroup
from ._ingest import ingest_files
from ._query_commands import query_collections, query_dataset_types, query_datasets
from ._repo_commands import cleanup_temp, create, insert_dimension_records, register_dataset_type

#: Entry-point group through which higher layers add ``butler`` subcommands.
PLUGIN_GROUP = "skybatch.butler_commands"


@click.group(
    cls=PluginGroup,
    plugin_group=PLUGIN_GROUP,
)
def main() -> None:
    """Create and query butler data repositories.

    Errors in your input are reported as one line on stderr with exit status 1; add --log-level
    DEBUG for the traceback. --log-level and --progress may also follow the subcommand. More
    commands are added by installed packages (entry-point group skybatch.butler_commands).

    \b
    Getting started:
      butler create my_repo
      butler insert-dimension-records my_repo records.yaml
      butler register-dataset-type my_repo raw StructuredDataDict exposure detector
      butler ingest-files my_repo raw Cam/raw/all raws.csv
      butler query-datasets my_repo raw --collections Cam/raw/all --where "detector = 1"
    """


for _command in (
    create,
    insert_dimension_records,
    register_dataset_type,
    ingest_files,
    query_datasets,
    query_collections,
    query_dataset_types,
    cleanup_temp,
):
    main.add_command(_command)

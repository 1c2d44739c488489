"""``butler`` commands that create a repository and define what can go in it."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import yaml

from ._options import repo_argument

_log = logging.getLogger(__name__)


def _load_yaml(path: str, what: str) -> object:
    try:
        with open(path) as stream:
            return yaml.safe_load(stream)
    except yaml.YAMLError as err:
        raise click.ClickException(f"{path} is not valid YAML ({what}): {err}") from err


@click.command("create", short_help="Create an empty repository.")
@repo_argument
@click.option(
    "--db-url",
    metavar="URL",
    default=None,
    help="Registry database URL (e.g. postgresql://user@host/db). Default: a SQLite file "
    "REPO/registry.sqlite3.",
)
@click.option(
    "--dimension-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="YAML dimension universe to use instead of the default one shipped with skybatch.",
)
@click.option(
    "--seed-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="YAML butler configuration to start from: registry.db, datastore.root, datastore.template, "
    "datastore.verify_checksums (other keys of LSST seed files are ignored with a warning). "
    "--db-url wins over its registry.db.",
)
@click.option(
    "--override",
    is_flag=True,
    help="Let the seed's repository-relative settings (datastore.root, a SQLite registry.db) "
    "replace the repository's own, as in LSST; without it they are ignored with a warning.",
)
def create(
    repo: str, db_url: str | None, dimension_config: str | None, seed_config: str | None, override: bool
) -> None:
    """Create an empty butler repository at REPO.

    REPO must not exist or must be an empty directory. The dimension universe is stored in the
    registry, so the repository keeps it even if skybatch's default changes later.

    \b
    Examples:
      butler create my_repo
      butler create my_repo --seed-config seed.yaml
    """
    from .. import Butler
    from .._dimensions import DimensionUniverse
    from .._repo_config import RepoConfig

    universe = None
    if dimension_config is not None:
        universe = DimensionUniverse(_load_yaml(dimension_config, "a dimension universe"))  # type: ignore[arg-type]
    config = None
    if seed_config is not None:
        seed = _load_yaml(seed_config, "a butler seed configuration") or {}
        config, notes = RepoConfig.from_seed(seed, seed_config, repo=Path(repo), override=override)  # type: ignore[arg-type]
        for note in notes:
            _log.warning("%s", note)
    elif override:
        raise click.UsageError("--override needs --seed-config (the settings to override with)")
    butler = Butler.create(repo, universe=universe, db_url=db_url, config=config)
    butler.close()
    click.echo(f"Created butler repository at {Path(repo).absolute()}")


@click.command("insert-dimension-records", short_help="Insert dimension records from a YAML file.")
@repo_argument
@click.argument("file", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Silently skip records whose keys already exist (otherwise existing records are an error).",
)
def insert_dimension_records(repo: str, file: str, skip_existing: bool) -> None:
    """Insert dimension records from a YAML FILE into REPO.

    FILE maps element names to lists of records. Elements are inserted in dependency order
    (instrument before detector), all in one transaction: either every record goes in or none.

    \b
    Example FILE:
      instrument:
        - {name: Cam, detector_max: 4}
      band: [{name: r}]
      physical_filter:
        - {instrument: Cam, name: r_01, band: r}
      detector:
        - {instrument: Cam, id: 1, full_name: S00}
    Example:
      butler insert-dimension-records my_repo records.yaml --skip-existing
    """
    from .. import Butler

    data = _load_yaml(file, "dimension records")
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise click.ClickException(f"{file} must map element names to lists of records")
    with Butler(repo) as butler:
        counts = butler.registry.insert_dimension_data(data, skip_existing=skip_existing)
    for element, count in counts.items():
        skipped = len(data[element]) - count
        extra = f" ({skipped} already present)" if skipped else ""
        click.echo(f"{element}: {count} record(s) inserted{extra}")


@click.command("register-dataset-type", short_help="Register a dataset type.")
@repo_argument
@click.argument("name", metavar="NAME")
@click.argument("storage_class", metavar="STORAGE_CLASS")
@click.argument("dimensions", metavar="[DIMENSION...]", nargs=-1)
def register_dataset_type(repo: str, name: str, storage_class: str, dimensions: tuple[str, ...]) -> None:
    """Register dataset type NAME with STORAGE_CLASS and DIMENSIONs in REPO.

    Dimensions are completed with what they require (detector brings instrument). Registering
    the same definition again is harmless; a different definition under the same name is an error.
    Storage classes: StructuredDataDict, Json, NumpyArray, TaskConfig.

    \b
    Example:
      butler register-dataset-type my_repo raw StructuredDataDict exposure detector
    """
    from .. import Butler

    with Butler(repo) as butler:
        new = butler.register_dataset_type(name, dimensions, storage_class)
        dt = butler.registry.get_dataset_type(name)
    summary = (
        f"{dt.name} (dimensions: {', '.join(dt.dimensions) or 'none'}; storage class: {dt.storage_class})"
    )
    click.echo(f"Registered dataset type {summary}" if new else f"Already registered: {summary}")


@click.command("cleanup-temp", short_help="Remove stale temporary files left by killed writers.")
@repo_argument
@click.option(
    "--older-than",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Only files not modified for this long: a running job's file is modified as it is written.",
)
@click.option("--dry-run", is_flag=True, help="List the files that would be removed; remove nothing.")
def cleanup_temp(repo: str, older_than: float, dry_run: bool) -> None:
    """Remove the datastore's temporary files (.tmp-*) that killed jobs left behind in REPO.

    Every write goes to a temporary name and is renamed when complete, so a leftover is never a
    dataset. Only files older than --older-than are removed; dataset files are never touched.
    The merge (butler transfer-from-graph) does the same for its run's directories.

    \b
    Example:
      butler cleanup-temp my_repo --older-than 7200
    """
    from .. import Butler

    with Butler(repo, writeable=not dry_run) as butler:
        store = butler.datastore
        if dry_run:
            found = store.stale_temporaries(older_than)
            for path, size in found:
                click.echo(f"{path}  {size} bytes")
            click.echo(f"would remove {len(found)} stale temporary file(s) older than {older_than:g} s")
            return
        removed = store.remove_stale_temporaries(older_than)
    total = sum(size for _, size in removed)
    click.echo(
        f"removed {len(removed)} stale temporary file(s) ({total} bytes) older than {older_than:g} s "
        f"under {store.root}"
    )

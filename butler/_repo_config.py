"""``butler.yaml``: the one configuration file of a repository, as a typed, versioned model.

The file says where the registry database is and how the datastore lays out files.  It is read
once when a Butler opens and validated then, so a broken or foreign file is a clear
RepositoryError at open time rather than a KeyError somewhere later.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._exceptions import DatastorePathError, RepositoryError

CONFIG_NAME = "butler.yaml"
REGISTRY_FILE = "registry.sqlite3"
#: Version of the butler.yaml layout; a repository with another version is refused.
CONFIG_VERSION = 1


@dataclass(frozen=True, slots=True)
class RepoConfig:
    """Contents of ``butler.yaml``."""

    db: str
    """SQLAlchemy URL of the registry database (SQLite or PostgreSQL)."""
    datastore_root: str = "."
    """Datastore root, relative to the repository directory unless absolute."""
    template: str | None = None
    """File template; None means the datastore's default."""
    verify_checksums: bool = False
    """Whether reads compare each file's CRC-32 with its record (sizes are always compared).
    Off by default for local files, where it would read every file twice; a store whose bytes
    travel over a network should turn it on (``datastore.verify_checksums: true``)."""

    def to_dict(self) -> dict[str, Any]:
        datastore: dict[str, Any] = {"root": self.datastore_root}
        if self.template is not None:
            datastore["template"] = self.template
        if self.verify_checksums:
            datastore["verify_checksums"] = True
        return {"version": CONFIG_VERSION, "registry": {"db": self.db}, "datastore": datastore}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> RepoConfig:
        if not isinstance(data, dict):
            raise RepositoryError(f"{source} is not a butler repository configuration (expected a mapping)")
        version = data.get("version")
        if version != CONFIG_VERSION:
            raise RepositoryError(
                f"{source} has configuration version {version!r}; "
                f"this software reads version {CONFIG_VERSION}"
            )
        registry = data.get("registry")
        if not isinstance(registry, dict) or not isinstance(registry.get("db"), str):
            raise RepositoryError(f"{source} lacks registry.db (the registry database URL)")
        datastore = data.get("datastore") or {}
        if not isinstance(datastore, dict):
            raise RepositoryError(f"{source}: 'datastore' must be a mapping")
        root = datastore.get("root", ".")
        template = datastore.get("template")
        if not isinstance(root, str) or (template is not None and not isinstance(template, str)):
            raise RepositoryError(f"{source}: datastore.root and datastore.template must be strings")
        verify = datastore.get("verify_checksums", False)
        if not isinstance(verify, bool):
            raise RepositoryError(
                f"{source}: datastore.verify_checksums must be true or false, not {verify!r}"
            )
        if template is not None:
            # Checked here, at load, so an ambiguous or malformed template stops the repository
            # from opening at all rather than failing (or colliding) at the first write.
            from .datastore._file_template import FileTemplate

            try:
                FileTemplate(template)
            except DatastorePathError as err:
                raise RepositoryError(f"{source}: datastore.template: {err}") from None
        return cls(db=registry["db"], datastore_root=root, template=template, verify_checksums=verify)

    @classmethod
    def from_seed(
        cls, seed: Mapping[str, Any], source: str, *, repo: Path, override: bool
    ) -> tuple[RepoConfig, list[str]]:
        """The configuration of a new repository from a seed file (``butler create --seed-config``).

        A seed is a partial ``butler.yaml`` (LSST's seed files have the same ``registry.db`` and
        ``datastore.root`` / ``datastore.template`` keys); keys skybatch has no use for are listed
        in the returned notes rather than failing, since LSST seeds carry many.  As in LSST,
        the seed's repository-relative settings -- ``datastore.root`` and a SQLite ``registry.db``
        -- are used only with ``override``; without it the repository keeps its own.  LSST's
        ``<butlerRoot>`` in either stands for the repository directory.
        Returns the configuration and notes for the user.
        """
        default_db = f"sqlite:///{repo.absolute() / REGISTRY_FILE}"
        if not isinstance(seed, Mapping):
            raise RepositoryError(f"{source} is not a butler configuration (expected a mapping)")
        notes: list[str] = []
        registry = seed.get("registry") or {}
        datastore = seed.get("datastore") or {}
        if not isinstance(registry, Mapping) or not isinstance(datastore, Mapping):
            raise RepositoryError(f"{source}: 'registry' and 'datastore' must be mappings")
        ignored = [f"{k}" for k in seed if k not in ("registry", "datastore", "version")]
        ignored += [f"registry.{k}" for k in registry if k != "db"]
        ignored += [f"datastore.{k}" for k in datastore if k not in ("root", "template", "verify_checksums")]
        if ignored:
            notes.append(f"{source}: ignored keys skybatch does not use: {', '.join(ignored)}")
        db = registry.get("db", default_db)
        root = datastore.get("root", ".")
        if not isinstance(db, str) or not isinstance(root, str):
            raise RepositoryError(f"{source}: registry.db and datastore.root must be strings")
        db = db.replace("<butlerRoot>", str(repo.absolute()))
        root = (
            "."
            if root in ("<butlerRoot>", "<butlerRoot>/")
            else root.replace("<butlerRoot>", str(repo.absolute()))
        )
        if db != default_db and db.startswith("sqlite:") and not override:
            notes.append(f"{source}: registry.db {db} not used (a SQLite file; pass --override to use it)")
            db = default_db
        if root != "." and not override:
            notes.append(f"{source}: datastore.root {root} not used (pass --override to use it)")
            root = "."
        data = {
            "version": CONFIG_VERSION,
            "registry": {"db": db},
            "datastore": {
                "root": root,
                **{k: datastore[k] for k in ("template", "verify_checksums") if k in datastore},
            },
        }
        return cls.from_dict(data, source), notes

    @classmethod
    def read(cls, repo: Path) -> RepoConfig:
        path = repo / CONFIG_NAME
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise RepositoryError(f"no butler repository at {repo} ({CONFIG_NAME} not found)") from None
        except OSError as err:
            raise RepositoryError(f"cannot read {path}: {err.strerror}") from err
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RepositoryError(
                f"{path} is not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or type(err).__name__
            raise RepositoryError(f"{path} is not valid YAML{where}: {problem}") from None
        return cls.from_dict(data, str(path))

    def write(self, repo: Path) -> None:
        """Write atomically, so a concurrent reader never sees half a file."""
        fd, tmp = tempfile.mkstemp(prefix=".butler-", suffix=".yaml", dir=repo)
        try:
            with os.fdopen(fd, "w") as stream:
                yaml.safe_dump(self.to_dict(), stream, sort_keys=False)
            os.replace(tmp, repo / CONFIG_NAME)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def resolved_db(self, repo: Path) -> str:
        """The database URL, with a relative SQLite path taken relative to the repository."""
        prefix = "sqlite:///"
        if self.db.startswith(prefix) and not self.db.startswith(prefix + "/"):
            rest = self.db[len(prefix) :]
            if rest and rest != ":memory:":
                return f"{prefix}{(repo / rest).absolute()}"
        return self.db

    def resolved_root(self, repo: Path) -> Path:
        root = Path(self.datastore_root)
        return root if root.is_absolute() else (repo / root).absolute()

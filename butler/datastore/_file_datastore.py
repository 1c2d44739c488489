"""A datastore of plain files under one root directory.

The datastore decides where a dataset's bytes go and how they are encoded; it never decides what
a dataset means.  Its only output is a :class:`StoredFileInfo` per dataset, which the Butler keeps
in the database (:mod:`._record_store`) and the QuantumGraph carries to batch jobs.

Writes are atomic: the formatter writes to a hidden temporary name in the target directory and
the file is then renamed over the final name with ``os.replace``, so a reader (or the merge job
scanning for outputs) sees either no file or a complete one -- never a partial file.  The
temporary name is ``.tmp-<dataset id>-<pid>-<n>``, so leftovers from a killed job are easy to spot
and cannot collide with dataset files; :meth:`FileDatastore.remove_stale_temporaries` removes
them once they are older than a threshold (``butler cleanup-temp``, and the merge job for its
run's directories).  This gives atomic visibility, not durability across a
power cut (no ``fsync``, which would cost milliseconds per write).

This module is on the batch-job import path: no sqlalchemy, no numpy.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import stat
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, get_args

from .._dataset_type import DatasetRef
from .._exceptions import (
    DatasetFileCorruptError,
    DatasetFileExistsError,
    DatasetFileMissingError,
    DatastoreError,
    DatastoreFullError,
    StorageClassError,
)
from .._storage_class import StorageClass, check_object, get_storage_class
from .._stored_file_info import StoredFileInfo
from ..formatters import Formatter, get_formatter
from ._file_template import DEFAULT_TEMPLATE, FileTemplate
from ._paths import path_problem

__all__ = [
    "DEFAULT_TEMPLATE",
    "STALE_TEMP_SECONDS",
    "TEMP_PREFIX",
    "FileDatastore",
    "TransferMode",
    "file_size_and_crc32",
]

#: Name prefix of every temporary file the datastore writes (and the only ones it removes).
TEMP_PREFIX = ".tmp-"
#: A temporary file not modified for this long belongs to a writer that died: a live writer
#: changes its file's mtime with every write, and renames it away as soon as it is complete.
STALE_TEMP_SECONDS = 3600.0

TransferMode = Literal["copy", "symlink", "direct"]
_TRANSFER_MODES: tuple[str, ...] = get_args(TransferMode)


class FileDatastore:
    """Dataset files under ``root``, laid out by a file ``template``.

    Paths in the records it returns are relative to ``root`` (so a repository can be moved),
    except for files ingested with ``transfer="direct"``, which stay where they are and are
    recorded by absolute path.  Such files belong to whoever put them there: :meth:`remove`
    leaves them alone.

    One instance may be used from several threads; directory creation is idempotent and each
    write uses its own temporary name.

    Every record carries the file's size and CRC-32 as written.  A read compares the size always
    (one ``stat``) and the checksum when ``verify_checksums`` is on (it reads the file twice, so
    it is off by default for local files and meant for stores where bytes travel); a mismatch is
    :class:`DatasetFileCorruptError`.
    """

    def __init__(
        self, root: Path | str, template: str = DEFAULT_TEMPLATE, *, verify_checksums: bool = False
    ) -> None:
        self.root = Path(root).absolute()
        self.verify_checksums = verify_checksums
        self.template = FileTemplate(template)
        self._root = str(self.root)
        # Directories known to exist, so a write costs no mkdir/stat in the common case.
        self._known_dirs: set[str] = set()
        self._resolved: dict[str, tuple[StorageClass, Formatter]] = {}
        self._tmp_counter = itertools.count()

    def __repr__(self) -> str:
        return f"FileDatastore({self._root!r}, template={self.template.text!r})"

    # -- looking things up ---------------------------------------------------------------------

    def _storage(self, storage_class: str) -> tuple[StorageClass, Formatter]:
        """The storage class and its default formatter, looked up once per name."""
        found = self._resolved.get(storage_class)
        if found is None:
            sc = get_storage_class(storage_class)
            found = self._resolved[storage_class] = (sc, get_formatter(sc.default_formatter))
        return found

    def predict_path(self, ref: DatasetRef) -> str:
        """The path, relative to the root, that ``ref``'s file has or would have.

        Raises DatastorePathError if the run, dataset type or data ID cannot form a path inside
        the root (see :mod:`._paths` for what is refused and what is escaped).
        """
        _, formatter = self._storage(ref.dataset_type.storage_class)
        return self.template.format(ref, formatter.extension)

    def abspath(self, info: StoredFileInfo) -> Path:
        """The absolute location of the file described by ``info``."""
        return Path(self._abspath(info))

    def _abspath(self, info: StoredFileInfo) -> str:
        path = info.path
        if path.startswith("/"):
            return path  # ingested with transfer="direct"
        reason = path_problem(path)
        if reason is not None:
            raise DatastoreError(
                f"datastore record for dataset {info.dataset_id} has an unusable path {path!r}: {reason}"
            )
        return f"{self._root}/{path}"

    def _ensure_dir(self, directory: str) -> None:
        if directory not in self._known_dirs:
            os.makedirs(directory, exist_ok=True)
            self._known_dirs.add(directory)

    def _temp_name(self, directory: str, ref: DatasetRef) -> str:
        return f"{directory}/{TEMP_PREFIX}{ref.id.hex}-{os.getpid()}-{next(self._tmp_counter)}"

    # -- writing -------------------------------------------------------------------------------

    def write(self, obj: object, ref: DatasetRef, *, overwrite: bool = True) -> StoredFileInfo:
        """Write ``obj`` as ``ref``'s file, atomically.

        The object is checked against the dataset type's storage class first, so a wrong type
        never reaches the disk.  With ``overwrite`` (the full Butler's put, where the registry
        already guarantees no registered dataset has this path) a file already there is replaced.
        Without it (batch jobs, which cannot see the registry: the file may be registered by a
        merge already) the file is put in place only if none is there (a hard link, which fails
        atomically when the name exists); if one is, an identical file (same size and CRC-32: a
        deterministic rerun) is kept as it is, and a different one is
        :class:`DatasetFileExistsError` -- never a registered file rewritten behind the
        registry's back.
        """
        sc, formatter = self._storage(ref.dataset_type.storage_class)
        if not sc.is_instance(obj):
            check_object(sc, obj, ref.dataset_type.name)
        rel = self.template.format(ref, formatter.extension)
        path = f"{self._root}/{rel}"
        directory = path.rpartition("/")[0]
        self._ensure_dir(directory)
        tmp = self._temp_name(directory, ref)
        try:
            try:
                formatter.write(obj, tmp)
            except FileNotFoundError:
                if os.path.isdir(directory):
                    raise
                # Someone removed the directory since we created it; forget it and try once more.
                self._known_dirs.discard(directory)
                self._ensure_dir(directory)
                formatter.write(obj, tmp)
            size, crc = file_size_and_crc32(tmp)
            if overwrite:
                os.replace(tmp, path)
            else:
                self._place_new(tmp, path, ref, size, crc)
        except BaseException as exc:
            _discard(tmp)
            if isinstance(exc, StorageClassError):
                raise StorageClassError(f"cannot write dataset {ref}: {exc}") from exc
            if isinstance(exc, OSError) and is_disk_full(exc):
                raise DatastoreFullError(
                    f"no space left on the device writing dataset {ref} to {path} ({exc})"
                ) from exc
            raise
        return StoredFileInfo(ref.id, rel, formatter.name, sc.name, size, crc)

    def _place_new(self, tmp: str, path: str, ref: DatasetRef, size: int, crc: int) -> None:
        """Give ``tmp`` the name ``path`` unless a file has it; see :meth:`write` (no overwrite)."""
        try:
            os.link(tmp, path)
        except FileExistsError:
            self._keep_identical(path, ref, size, crc)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # No hard links on this file system: check, then rename (not atomic against a
            # concurrent writer of the same dataset, which a graph never schedules).
            if os.path.exists(path):
                self._keep_identical(path, ref, size, crc)
            else:
                os.replace(tmp, path)
                return
        os.unlink(tmp)

    @staticmethod
    def _keep_identical(path: str, ref: DatasetRef, size: int, crc: int) -> None:
        """Accept an existing file only if it is byte-for-byte what is being written (size and CRC-32)."""
        existing = file_size_and_crc32(path)
        if existing != (size, crc):
            raise DatasetFileExistsError(
                f"the file of dataset {ref} already exists with different contents: {path} "
                f"({existing[0]} bytes, CRC-32 {existing[1]:08x}; this write: {size} bytes, CRC-32 "
                f"{crc:08x}). It is from an earlier attempt and may already be registered; rerun with "
                "--clobber-outputs to replace it (then merge with --clobber-outputs)"
            )

    def ingest(
        self, src: Path | str, ref: DatasetRef, transfer: TransferMode, formatter_name: str | None = None
    ) -> StoredFileInfo:
        """Make the existing file ``src`` the file of ``ref``.

        ``copy`` copies it to the predicted path, ``symlink`` puts a symbolic link to it there
        (both atomically, like :meth:`write`); ``direct`` records ``src`` where it is, by absolute
        path, without touching it.  The file must already be in the storage class's format (or
        ``formatter_name``'s, which must be able to hold the storage class's type), as judged by
        its suffix (``.yaml``/``.yml``, ``.json``, ``.npy``); its contents are not read.
        """
        if transfer not in _TRANSFER_MODES:
            raise DatastoreError(
                f"unknown transfer mode {transfer!r}; choose one of: {', '.join(_TRANSFER_MODES)}"
            )
        sc, formatter = self._storage(ref.dataset_type.storage_class)
        if formatter_name is not None and formatter_name != formatter.name:
            formatter = get_formatter(formatter_name)
            if sc.pytype_name not in formatter.pytypes:
                raise DatastoreError(
                    f"cannot ingest {src} as dataset {ref} with formatter {formatter.name}: it cannot "
                    f"hold storage class {sc.name} ({sc.pytype_name}) objects"
                )
        source = Path(src).absolute()
        try:
            src_stat = source.stat()
        except OSError as exc:
            raise DatastoreError(f"cannot ingest {source} as dataset {ref}: {exc.strerror}") from exc
        if not stat.S_ISREG(src_stat.st_mode):
            raise DatastoreError(f"cannot ingest {source} as dataset {ref}: it is not a regular file")
        if not formatter.can_read_suffix(source.suffix):
            raise DatastoreError(
                f"cannot ingest {source} as dataset {ref}: storage class {sc.name} is stored as "
                f"{formatter.name} ({formatter.extension}) files, but this file's suffix is "
                f"{source.suffix or 'empty'}"
            )
        try:
            size, crc = file_size_and_crc32(str(source))
        except OSError as exc:
            raise DatastoreError(f"cannot ingest {source} as dataset {ref}: {exc.strerror}") from exc
        if transfer == "direct":
            return StoredFileInfo(ref.id, str(source), formatter.name, sc.name, size, crc)
        rel = self.template.format(ref, formatter.extension)
        path = f"{self._root}/{rel}"
        directory = path.rpartition("/")[0]
        self._ensure_dir(directory)
        tmp = self._temp_name(directory, ref)
        try:
            if transfer == "copy":
                shutil.copyfile(source, tmp)
            else:
                os.symlink(source.resolve(), tmp)
            os.replace(tmp, path)
        except BaseException as exc:
            _discard(tmp)
            if isinstance(exc, OSError) and is_disk_full(exc):
                raise DatastoreFullError(
                    f"no space left on the device copying {source} as dataset {ref} to {path}"
                ) from exc
            raise
        return StoredFileInfo(ref.id, rel, formatter.name, sc.name, size, crc)

    # -- reading and checking ------------------------------------------------------------------

    def read(self, info: StoredFileInfo, storage_class: str | None = None) -> object:
        """Read the dataset described by ``info``.

        If ``storage_class`` is given and differs from the one the file was written with, the
        object read is checked against it (a dict written as ``StructuredDataDict`` may be read
        as ``TaskConfig``, but not as ``NumpyArray``).  A missing file is
        DatasetFileMissingError naming the dataset and the path.
        """
        formatter = get_formatter(info.formatter)
        path = self._abspath(info)
        try:
            self._check_file(info, path)
            obj = formatter.read(path)
        except FileNotFoundError as exc:
            raise DatasetFileMissingError(
                f"the file of dataset {info.dataset_id} (storage class {info.storage_class}) is missing: "
                f"{path}"
            ) from exc
        if storage_class is not None and storage_class != info.storage_class:
            wanted = get_storage_class(storage_class)
            if not wanted.is_instance(obj):
                raise StorageClassError(
                    f"dataset {info.dataset_id} was stored as {info.storage_class} and cannot be read as "
                    f"storage class {wanted.name}: that holds {wanted.pytype_name} objects, but {path} "
                    f"holds a {type(obj).__name__}"
                )
        return obj

    def _check_file(self, info: StoredFileInfo, path: str) -> None:
        """Refuse a file whose size (always) or checksum (if asked) differs from its record."""
        if info.file_size < 0:
            return
        size = os.stat(path).st_size
        what = f"the file of dataset {info.dataset_id} (storage class {info.storage_class}), {path},"
        if size != info.file_size:
            raise DatasetFileCorruptError(
                f"{what} has {size} bytes but was written with {info.file_size} bytes: it was truncated "
                "or rewritten after it was registered"
            )
        if self.verify_checksums and info.checksum is not None:
            crc = file_size_and_crc32(path)[1]
            if crc != info.checksum:
                raise DatasetFileCorruptError(
                    f"{what} has checksum (CRC-32) {crc:08x}, which does not match {info.checksum:08x} "
                    "recorded when it was written: its contents changed after it was registered"
                )

    def exists(self, info: StoredFileInfo) -> bool:
        """Whether the file described by ``info`` is there (a dangling symlink is not)."""
        return os.path.exists(self._abspath(info))

    def info_for_existing(self, ref: DatasetRef, *, checksum: bool = False) -> StoredFileInfo | None:
        """The record a regular file at ``ref``'s predicted path would have, or None if there is none.

        This is how outputs written by batch jobs, which have no records yet, are found.  With
        ``checksum`` the file is read to record its CRC-32 (the merge does, so what it registers
        is the file it found).
        """
        sc, formatter = self._storage(ref.dataset_type.storage_class)
        rel = self.template.format(ref, formatter.extension)
        try:
            st = os.stat(f"{self._root}/{rel}")
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        if checksum:
            try:
                size, crc = file_size_and_crc32(f"{self._root}/{rel}")
            except FileNotFoundError:
                return None
            return StoredFileInfo(ref.id, rel, formatter.name, sc.name, size, crc)
        return StoredFileInfo(ref.id, rel, formatter.name, sc.name, st.st_size)

    # -- removing ------------------------------------------------------------------------------

    def stale_temporaries(
        self, older_than: float = STALE_TEMP_SECONDS, directories: Iterable[str] | None = None
    ) -> list[tuple[Path, int]]:
        """Temporary files (``.tmp-*``) not modified for ``older_than`` seconds, with their sizes.

        ``directories`` (relative to the root) limits the search to those directories (not
        recursive); by default the whole datastore is walked.
        """
        cutoff = time.time() - older_than
        if directories is None:
            dirs: Iterable[str] = (d for d, _, _ in os.walk(self._root))
        else:
            dirs = (f"{self._root}/{d}" if d else self._root for d in directories)
        out: list[tuple[Path, int]] = []
        for directory in dirs:
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if not entry.name.startswith(TEMP_PREFIX):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # renamed or removed by its writer meanwhile
                if (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and st.st_mtime < cutoff:
                    out.append((Path(entry.path), st.st_size))
        return sorted(out)

    def remove_stale_temporaries(
        self, older_than: float = STALE_TEMP_SECONDS, directories: Iterable[str] | None = None
    ) -> list[tuple[Path, int]]:
        """Remove what :meth:`stale_temporaries` finds; returns what was removed.

        Each file's age is checked again just before it is removed.  Files younger than the
        threshold are never touched, so a job that is still writing keeps its file; a job stuck
        for longer than the threshold in one write would then fail at its rename -- an error, never
        a wrong file.
        """
        cutoff = time.time() - older_than
        removed: list[tuple[Path, int]] = []
        for path, size in self.stale_temporaries(older_than, directories):
            try:
                if os.lstat(path).st_mtime >= cutoff:
                    continue
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append((path, size))
        return removed

    def remove(self, info: StoredFileInfo) -> None:
        """Delete the file described by ``info``; a file already gone is not an error.

        Files ingested with ``transfer="direct"`` (absolute paths) are not the datastore's to
        delete and are left in place.  Directories are left too: another writer may be about to
        use them.
        """
        if info.path.startswith("/"):
            return
        try:
            os.unlink(self._abspath(info))
        except FileNotFoundError:
            pass


def _discard(path: str) -> None:
    """Remove a temporary file if it was created; used on the way out of a failed write."""
    try:
        os.unlink(path)
    except OSError:  # never created, or cannot be removed: the original error matters more
        pass


def file_size_and_crc32(path: str) -> tuple[int, int]:
    """Size and CRC-32 of the file at ``path``, read in 1 MiB pieces.

    CRC-32 (zlib's, in C) detects truncation and accidental damage, which is what a record check
    is for; it is no defence against deliberate tampering.  It costs about a microsecond per
    kilobyte, far less than a cryptographic hash, so every write can afford it.
    """
    crc = 0
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, crc


#: numpy reports a short write without an errno: "131072 requested and 60400 written".
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def is_disk_full(exc: OSError) -> bool:
    """Whether ``exc`` means the device or quota is full (a short write to a regular file does)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return exc.errno is None and _SHORT_WRITE.search(str(exc)) is not None

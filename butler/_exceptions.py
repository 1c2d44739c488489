"""Errors raised by the butler layer.

Every error derives from :class:`ButlerError` and also from the builtin it refines, so callers
may catch either ``ButlerError`` or, say, ``LookupError``::

    ButlerError
     +-- DimensionError
     |    +-- UnknownDimensionError (KeyError)        a dimension name the universe lacks
     |    +-- InvalidDataIdError (ValueError)          a data ID missing keys or with bad values
     |    +-- DimensionValueError (LookupError)        a data ID value that is not registered
     |    +-- DimensionRecordError (ValueError)        a malformed dimension record
     +-- MissingDatasetTypeError (LookupError)        dataset type not registered
     +-- DatasetNotFoundError (LookupError)           no such dataset in the collections searched
     +-- MissingCollectionError (LookupError)         collection does not exist
     +-- CollectionTypeError (TypeError)              wrong kind of collection for the operation
     +-- ConflictingDefinitionError (ValueError)      redefinition that differs from what exists
     +-- InvalidNameError (ValueError)                a collection or dataset type name breaking the rules
     +-- StorageClassError (ValueError)               unknown storage class or wrong Python type
     +-- DatastoreError
     |    +-- DatastorePathError (ValueError)          a path that would escape the datastore root
     |    +-- DatasetFileMissingError (FileNotFoundError) registered dataset whose file is gone
     |    +-- DatasetFileCorruptError (ValueError)     file differs from its record (size, checksum)
     |    +-- DatastoreFullError (OSError)             no space left (or quota exceeded) while writing
     |    +-- DatasetFileExistsError (FileExistsError) a job's output file exists with other contents
     +-- QuerySyntaxError (ValueError)                malformed ``--where`` expression
     +-- QueryError (ValueError)                      well-formed query that cannot be evaluated
     +-- RepositoryError (OSError)                    no repository at the given path, or corrupt
"""

from __future__ import annotations


class ButlerError(Exception):
    """Root of all errors raised by the butler layer."""


class DimensionError(ButlerError):
    """Problems with dimensions, data IDs and dimension records."""


class UnknownDimensionError(DimensionError, KeyError):
    """A dimension or element name that is not part of the universe."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class InvalidDataIdError(DimensionError, ValueError):
    """A data ID that lacks required keys or has values of the wrong type."""


class DimensionValueError(DimensionError, LookupError):
    """A data ID value that has no dimension record in the repository."""


class DimensionRecordError(DimensionError, ValueError):
    """A dimension record that is malformed (missing key fields, unknown fields, bad types)."""


class MissingDatasetTypeError(ButlerError, LookupError):
    """A dataset type that is not registered."""


class DatasetNotFoundError(ButlerError, LookupError):
    """No dataset matches the request in the collections searched."""


class MissingCollectionError(ButlerError, LookupError):
    """A collection name that does not exist."""


class CollectionTypeError(ButlerError, TypeError):
    """The collection exists but is the wrong kind (e.g. putting into a CHAINED collection)."""


class ConflictingDefinitionError(ButlerError, ValueError):
    """A definition that differs from one already registered under the same name."""


class InvalidNameError(ButlerError, ValueError):
    """A collection or dataset type name that breaks the naming rules (commas, globs, `..` ...)."""


class StorageClassError(ButlerError, ValueError):
    """An unknown storage class, or an object that the storage class cannot hold."""


class DatastoreError(ButlerError):
    """Problems reading or writing dataset files."""


class DatastorePathError(DatastoreError, ValueError):
    """A path that would escape the datastore root, or cannot be used as a file name."""


class DatasetFileMissingError(DatastoreError, FileNotFoundError):
    """A dataset is registered but its file is missing from the datastore."""


class DatasetFileCorruptError(DatastoreError, ValueError):
    """A dataset's file is not the file that was written: its size or checksum differs from its record."""


class DatastoreFullError(DatastoreError, OSError):
    """The device (or quota) holding the datastore is full: a file could not be written completely."""


class DatasetFileExistsError(DatastoreError, FileExistsError):
    """A batch job's output file already exists with different contents (it may be registered)."""


class QuerySyntaxError(ButlerError, ValueError):
    """A query expression that cannot be parsed.

    ``position`` is the 0-based character offset of the offending token in ``expression``; the
    message shows the expression with a caret under that position.
    """

    def __init__(self, message: str, expression: str, position: int) -> None:
        self.expression = expression
        self.position = position
        self.reason = message
        caret = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {expression}\n  {caret}")


class QueryError(ButlerError, ValueError):
    """A well-formed query that refers to unknown names or mixes incompatible types."""


class RepositoryError(ButlerError, OSError):
    """No repository at the given location, or its configuration cannot be read."""

"""The butler registry: dimension records, dataset types, collections and datasets in SQL.

Built on SQLAlchemy Core for SQLite and PostgreSQL.  Importing this package imports sqlalchemy;
code that must start fast (batch jobs) uses the quantum-backed butler instead.
"""

from __future__ import annotations

from ._collections import CollectionType
from ._database import Database, make_engine
from ._registry import SCHEMA_VERSION, Registry
from ._resolver import DatasetQueryResolver
from ._schema import FieldSpec, ForeignKeySpec, TableSpec, build_table
from ._tables import RegistryTables, build_registry_tables

__all__ = [
    "SCHEMA_VERSION",
    "CollectionType",
    "Database",
    "DatasetQueryResolver",
    "FieldSpec",
    "ForeignKeySpec",
    "Registry",
    "RegistryTables",
    "TableSpec",
    "build_registry_tables",
    "build_table",
    "make_engine",
]

"""Name resolution for ``where`` expressions: dimension names -> columns, joining tables lazily.

The query compiler (``butler.query.compile_where``) asks for columns by dimension name and field;
this resolver answers from the dataset table when it can and otherwise joins the dimension tables
needed to reach the value, each at most once.  ``band`` for a ``raw`` (instrument, exposure,
detector) dataset therefore becomes two joins: dataset -> exposure (which implies a
physical_filter) -> physical_filter (which implies a band).  Nothing is joined that the expression
does not mention, which keeps the common queries as cheap as a plain dataset-table scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .._dataset_type import DatasetType
from .._dimensions import DimensionUniverse
from .._exceptions import QueryError
from ._dimension_records import ElementLayout


class DatasetQueryResolver:
    """Resolves dimension names and fields for one query over one dataset type.

    Implements the ``butler.query.Resolver`` protocol.  ``from_clause`` grows as joins are added;
    build the SELECT from it only after compiling the expression.
    """

    def __init__(
        self,
        universe: DimensionUniverse,
        dataset_type: DatasetType,
        dataset_table: sa.Table,
        layouts: Mapping[str, ElementLayout],
    ) -> None:
        self._universe = universe
        self._dataset_type = dataset_type
        self._layouts = layouts
        self.from_clause: sa.FromClause = dataset_table
        self._sources: dict[str, sa.ColumnElement[Any]] = {
            d: dataset_table.c[d] for d in dataset_type.dimensions
        }
        self._joined: dict[str, sa.FromClause] = {}
        # For every dimension reachable through implied links: the dimension whose table holds it.
        self._via: dict[str, str] = {}
        reachable = set(dataset_type.dimensions)
        changed = True
        while changed:
            changed = False
            for name in universe.sort(reachable):
                layout = layouts[name]
                if not set(layout.required) <= reachable:
                    continue
                for implied in layout.implies:
                    if implied not in reachable:
                        reachable.add(implied)
                        self._via[implied] = name
                        changed = True

    def _check_known(self, name: str) -> None:
        if name not in self._universe:
            raise QueryError(
                f"{name!r} is not a dimension; expected a dimension or dimension.field "
                f"(dimensions: {', '.join(self._universe.names)})"
            )

    def key_type(self, name: str) -> type:
        """``int`` or ``str``: the type of ``name``'s key, so the compiler can refuse mixed comparisons."""
        self._check_known(name)
        return self._universe[name].key_type

    def _unreachable(self, name: str) -> QueryError:
        dt = self._dataset_type
        return QueryError(
            f"dimension {name!r} is not among the dimensions of dataset type {dt.name} "
            f"({', '.join(dt.dimensions) or 'none'}) and is not implied by them"
        )

    def dimension_key(self, name: str) -> sa.ColumnElement[Any]:
        """The column holding the key value of dimension ``name`` for each dataset."""
        self._check_known(name)
        source = self._sources.get(name)
        if source is not None:
            return source
        via = self._via.get(name)
        if via is None:
            raise self._unreachable(name)
        source = self._join(via).c[name]
        self._sources[name] = source
        return source

    def _join(self, name: str) -> sa.FromClause:
        """Join the record table of ``name`` (once) on its key and required keys."""
        joined = self._joined.get(name)
        if joined is not None:
            return joined
        layout = self._layouts[name]
        key = self.dimension_key(name)
        alias = layout.table.alias(f"{name}_rec")
        conds = [alias.c[layout.key_name] == key]
        conds.extend(alias.c[r] == self.dimension_key(r) for r in layout.required)
        self.from_clause = self.from_clause.join(alias, sa.and_(*conds))
        self._joined[name] = alias
        return alias

    def dimension_field(self, name: str, field: str) -> sa.ColumnElement[Any]:
        """The column of metadata field ``field`` (or key / implied dimension) of ``name``'s record."""
        self._check_known(name)
        layout = self._layouts[name]
        if field == layout.key_name:
            return self.dimension_key(name)
        if field in layout.required or field in layout.implies:
            if field in layout.required:
                return self.dimension_key(field)
            return self._join_reachable(name).c[field]
        if layout.metadata.get(field) == "timespan":
            raise QueryError(
                f"{name}.{field} is a timespan; compare {name}.{field}_begin or {name}.{field}_end instead"
            )
        columns = {c for cols in layout.metadata_cols.values() for c in cols}
        if field not in columns:
            allowed = sorted(columns | {layout.key_name} | set(layout.required) | set(layout.implies))
            raise QueryError(f"dimension {name} has no field {field!r}; fields: {', '.join(allowed)}")
        return self._join_reachable(name).c[field]

    def _join_reachable(self, name: str) -> sa.FromClause:
        if name not in self._sources and name not in self._via:
            raise self._unreachable(name)
        return self._join(name)

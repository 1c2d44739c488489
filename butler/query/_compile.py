"""Turn a parsed query expression into a SQLAlchemy boolean clause.

The compiler knows the language, not the schema: which table and column a dimension lives in is
asked of a :class:`Resolver`, which the registry implements against its own tables.  That keeps the
registry's join planning out of this package and lets tests use a one-table resolver.

Two rules are enforced here rather than left to the database:

* every literal becomes a bound parameter (``sqlalchemy.literal``), so no user text is ever pasted
  into SQL, whatever quotes or comment markers it contains;
* a string compared with a numeric column (or a number with a string column) is a
  :class:`~butler._exceptions.QueryError`.  SQLite would silently compare ``exposure = '12'`` as
  false for every row; a user who typed it deserves to hear why nothing matched.

Comparisons follow SQL's three-valued logic: a row whose metadata field is NULL satisfies neither
``exposure.exposure_time > 20`` nor ``NOT exposure.exposure_time > 20``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy
from sqlalchemy.sql.elements import ColumnElement

from .._exceptions import QueryError, UnknownDimensionError
from ._ast import And, Compare, CompareOp, InList, Literal, Node, Not, Or, Value

__all__ = ["Resolver", "compile_where"]

_OPERATORS: dict[CompareOp, Callable[[ColumnElement[Any], ColumnElement[Any]], ColumnElement[bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Resolver(Protocol):
    """Maps the names in an expression to SQL columns; implemented by whoever owns the tables.

    Both column methods raise :class:`~butler._exceptions.QueryError` for names they do not know.
    For a bare identifier that is not a dimension the message must name it and say that a
    dimension or ``dimension.field`` was expected (listing the dimensions helps).  An
    :class:`~butler._exceptions.UnknownDimensionError` escaping from a lookup in the universe is
    also accepted and converted.
    """

    def dimension_key(self, name: str) -> ColumnElement[Any]:
        """The column holding the key (``id`` or ``name``) of dimension ``name``."""
        ...

    def dimension_field(self, name: str, field: str) -> ColumnElement[Any]:
        """The column for ``name.field``.

        When ``field`` is the dimension's key name (``exposure.id``, ``physical_filter.name``)
        this must return the same column as :meth:`dimension_key`: the two spellings mean the key.
        """
        ...

    def key_type(self, name: str) -> type:
        """``int`` or ``str``: the Python type of dimension ``name``'s key, for type checking."""
        ...


def compile_where(node: Node | None, resolver: Resolver) -> ColumnElement[bool]:
    """Compile ``node`` into a boolean clause for a ``WHERE``; ``None`` compiles to ``TRUE``."""
    if node is None:
        return sqlalchemy.true()
    return _Compiler(resolver).condition(node)


@dataclass(frozen=True, slots=True)
class _Operand:
    """A compiled value with what the type check needs: its kind and how to name it in errors."""

    sql: ColumnElement[Any]
    kind: str | None  # "number", "string", or None when the column's type is not checkable
    description: str
    is_literal: bool


class _Compiler:
    """Walks a tree once, asking the resolver for each identifier as it is met."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    def condition(self, node: Node) -> ColumnElement[bool]:
        match node:
            case And(operands=operands):
                return sqlalchemy.and_(*(self.condition(o) for o in operands))
            case Or(operands=operands):
                return sqlalchemy.or_(*(self.condition(o) for o in operands))
            case Not(operand=operand):
                return sqlalchemy.not_(self.condition(operand))
            case Compare():
                return self._compare(node)
            case InList():
                return self._in_list(node)
        raise QueryError(
            f"expected a condition at position {node.position}, found {self._value(node).description}"
        )

    def _compare(self, node: Compare) -> ColumnElement[bool]:
        left, right = self._value(node.left), self._value(node.right)
        if left.is_literal and right.is_literal:
            raise QueryError(
                f"comparison at position {node.position} has no dimension or field: "
                f"expected a dimension or dimension.field on at least one side of {node.op!r}"
            )
        _check_types(left, right, node.position)
        return _OPERATORS[node.op](left.sql, right.sql)

    def _in_list(self, node: InList) -> ColumnElement[bool]:
        operand = self._value(node.operand)
        if operand.is_literal:
            raise QueryError(
                f"expected a dimension or dimension.field before IN at position {node.position}, "
                f"found {operand.description}"
            )
        sql_values = []
        for item in node.values:
            value = self._value(item)
            _check_types(operand, value, item.position)
            sql_values.append(value.sql)
        return operand.sql.not_in(sql_values) if node.negated else operand.sql.in_(sql_values)

    def _value(self, value: Value) -> _Operand:
        if isinstance(value, Literal):
            return _literal(value)
        try:
            if value.field is None:
                column = self._resolver.dimension_key(value.dimension)
                key_type = self._resolver.key_type(value.dimension)
                kind = _kind_of(key_type)
                type_name = {"number": "integer", "string": "string"}.get(kind or "", key_type.__name__)
                return _Operand(column, kind, f"dimension {value.dimension!r} ({type_name} key)", False)
            column = self._resolver.dimension_field(value.dimension, value.field)
        except UnknownDimensionError as err:
            raise QueryError(
                f"{value.dimension!r} at position {value.position} is not a dimension: "
                f"expected a dimension or dimension.field ({err})"
            ) from None
        kind, type_name = _column_kind(column)
        return _Operand(column, kind, f"field '{value}' ({type_name})", False)


def _literal(value: Literal) -> _Operand:
    """A bound parameter for a literal; ``literal()`` infers Integer, Float or String from it."""
    if isinstance(value.value, str):
        return _Operand(sqlalchemy.literal(value.value), "string", f"string literal {value.value!r}", True)
    return _Operand(sqlalchemy.literal(value.value), "number", f"number {value.value!r}", True)


def _kind_of(python_type: type) -> str | None:
    """Collapse a Python type to the two kinds that must not be mixed; ``bool`` is neither."""
    if issubclass(python_type, bool):
        return None
    if issubclass(python_type, int | float | Decimal):
        return "number"
    if issubclass(python_type, str):
        return "string"
    return None


def _column_kind(column: ColumnElement[Any]) -> tuple[str | None, str]:
    """Kind and a readable type name of a field column, from its SQL type where SQLAlchemy knows it."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return None, str(column.type)
    return _kind_of(python_type), python_type.__name__


def _check_types(left: _Operand, right: _Operand, position: int) -> None:
    if left.kind is not None and right.kind is not None and left.kind != right.kind:
        raise QueryError(f"cannot compare {left.description} with {right.description} at position {position}")

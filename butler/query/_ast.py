"""Syntax tree of a query expression.

Nodes are frozen dataclasses so that a parsed expression can be cached, hashed and shared between
the QuantumGraph builder and the registry without defensive copies.  Each node records the 0-based
offset where its source text starts, for error messages raised after parsing (an unknown field, a
type mismatch).  The position is excluded from equality and hashing: two expressions mean the same
thing whether or not they were spelled with the same spacing, and tests can compare trees built by
hand without computing offsets.

``And`` and ``Or`` are n-ary: ``a OR b OR c`` is one ``Or`` with three operands.  A long generated
disjunction (hundreds of visits) then stays one level deep instead of becoming a left-leaning chain
that would exhaust the recursion limit of the compiler and of SQLAlchemy.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "And",
    "CompareOp",
    "Compare",
    "Identifier",
    "InList",
    "Literal",
    "Node",
    "Not",
    "Or",
    "Value",
    "referenced_dimensions",
]

#: The comparison operators the language spells.
CompareOp: TypeAlias = typing.Literal["=", "!=", "<", "<=", ">", ">="]
COMPARE_OPS: tuple[CompareOp, ...] = ("=", "!=", "<", "<=", ">", ">=")


def _position() -> Any:
    """A ``position`` field left out of ``==`` and ``hash`` (a function because ``Identifier``
    has a field called ``field``, which would shadow :func:`dataclasses.field` in its body)."""
    return dataclasses.field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: an ``int``, ``float`` or ``str`` (already decoded, sign already applied)."""

    value: int | float | str
    position: int = _position()


@dataclass(frozen=True, slots=True)
class Identifier:
    """``dimension`` (its key) or ``dimension.field`` (a metadata field, or the key by its name)."""

    dimension: str
    field: str | None = None
    position: int = _position()

    def __str__(self) -> str:
        return self.dimension if self.field is None else f"{self.dimension}.{self.field}"


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``; each side is an identifier or a literal."""

    op: CompareOp
    left: Value
    right: Value
    position: int = _position()


@dataclass(frozen=True, slots=True)
class InList:
    """``operand [NOT] IN (v1, v2, ...)``; the list holds literals only and is never empty."""

    operand: Value
    values: tuple[Literal, ...]
    negated: bool = False
    position: int = _position()


@dataclass(frozen=True, slots=True)
class And:
    """Conjunction of two or more conditions."""

    operands: tuple[Node, ...]
    position: int = _position()


@dataclass(frozen=True, slots=True)
class Or:
    """Disjunction of two or more conditions."""

    operands: tuple[Node, ...]
    position: int = _position()


@dataclass(frozen=True, slots=True)
class Not:
    """Negation of a condition."""

    operand: Node
    position: int = _position()


Value: TypeAlias = Literal | Identifier
Node: TypeAlias = Literal | Identifier | Compare | InList | And | Or | Not


def referenced_dimensions(node: Node | None) -> set[str]:
    """Names of the dimensions ``node`` mentions, so a caller can join in exactly those tables.

    ``None`` (an empty expression) mentions nothing.  The walk uses an explicit stack so that
    hand-built trees of any depth are safe.
    """
    found: set[str] = set()
    stack: list[Node] = [] if node is None else [node]
    while stack:
        current = stack.pop()
        match current:
            case Identifier(dimension=name):
                found.add(name)
            case Compare(left=left, right=right):
                stack += (left, right)
            case InList(operand=operand):
                stack.append(operand)
            case And(operands=operands) | Or(operands=operands):
                stack += operands
            case Not(operand=operand):
                stack.append(operand)
    return found

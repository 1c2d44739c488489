"""Pipeline contracts: Python-syntax expressions over task configs, evaluated without ``eval``.

A contract such as ``isr.offset == calibrate.offset`` or ``calibrate.scale > 0`` is parsed with
:mod:`ast` and walked by a small evaluator that knows only what a contract needs:

* names are task labels; ``label.field`` is a config value and ``label.connections.name`` the
  dataset type a connection resolves to;
* literals, ``and``/``or``/``not``, comparisons (``==``, ``<``, ``in``, ``is`` ...), arithmetic,
  ``x if c else y``, subscripts of lists and dicts, and the functions ``len``, ``min``, ``max``,
  ``abs``, ``any``, ``all``.

Nothing else is reachable: no builtins, no attribute of a value other than a config's fields (so
no ``__class__`` walks), no calls but the six above, no comprehensions or lambdas.  Contracts are
data in a YAML file, and a pipeline file from a colleague must not be able to run code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._exceptions import PipelineError

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "any": any,
    "all": all,
}
#: A contract may not build a sequence longer than this by repetition (``"x" * 10**12``).
_MAX_REPEAT = 10_000
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


class ContractSyntaxError(PipelineError):
    """A contract that is not an expression the evaluator accepts (reported with its file and index)."""


@dataclass(frozen=True, slots=True)
class ConfigView:
    """What a contract sees of one task: its config fields and its connections' dataset types."""

    label: str
    fields: Mapping[str, Any]
    connections: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Contract:
    """One ``contracts:`` entry: the expression, its optional message, and where it was written."""

    expression: str
    msg: str | None
    source: str
    """``FILE: contracts[i]``, for error messages."""
    tree: ast.Expression

    @classmethod
    def parse(cls, expression: str, msg: str | None, source: str) -> Contract:
        """Parse and check the expression's shape now, so a bad contract fails at load time."""
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as exc:
            raise ContractSyntaxError(
                f"{source}: not a Python expression: {expression!r} ({exc.msg})"
            ) from None
        for node in ast.walk(tree):
            _check_node(node, source, expression)
        return cls(expression, msg, source, tree)

    def labels(self) -> set[str]:
        """Task labels the expression names (the functions it may call excluded)."""
        called = {
            n.func.id for n in ast.walk(self.tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)} - called

    def check(self, views: Mapping[str, ConfigView]) -> None:
        """Raise PipelineError naming the contract (and its message) unless it evaluates true."""
        try:
            result = _Evaluator(views, self.source).visit(self.tree.body)
        except PipelineError:
            raise
        except Exception as exc:  # a TypeError from comparing a str with an int, say
            raise PipelineError(
                f"{self.source}: contract {self.expression!r} could not be evaluated: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if not result:
            extra = f": {self.msg}" if self.msg else ""
            raise PipelineError(f"{self.source}: contract {self.expression!r} is not satisfied{extra}")


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Compare,
    ast.IfExp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Subscript,
    ast.Call,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    *_BINARY,
    *_COMPARE,
)


def _check_node(node: ast.AST, source: str, expression: str) -> None:
    if not isinstance(node, _ALLOWED):
        raise ContractSyntaxError(
            f"{source}: contract {expression!r} uses {type(node).__name__}, which contracts do not allow "
            "(use labels, config fields, literals, comparisons, and/or/not, arithmetic, "
            f"and the functions {', '.join(_FUNCTIONS)})"
        )
    if isinstance(node, ast.Call) and not (
        isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords
    ):
        raise ContractSyntaxError(
            f"{source}: contract {expression!r} calls something other than {', '.join(_FUNCTIONS)}"
        )
    if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        raise ContractSyntaxError(
            f"{source}: contract {expression!r} names a private attribute {node.attr!r}"
        )


class _Connections:
    def __init__(self, view: ConfigView) -> None:
        self.view = view


class _Evaluator:
    """Walks a checked contract tree; every node type reached here passed :func:`_check_node`."""

    def __init__(self, views: Mapping[str, ConfigView], source: str) -> None:
        self._views = views
        self._source = source

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}")
        return method(node)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        view = self._views.get(node.id)
        if view is None:
            raise PipelineError(
                f"{self._source}: contract names {node.id!r}, which is not a task label of this pipeline "
                f"(labels: {', '.join(self._views) or 'none'})"
            )
        return view

    def _Attribute(self, node: ast.Attribute) -> Any:
        owner = self.visit(node.value)
        if isinstance(owner, ConfigView):
            if node.attr == "connections":
                return _Connections(owner)
            if node.attr not in owner.fields:
                raise PipelineError(
                    f"{self._source}: task {owner.label!r} has no config field {node.attr!r} "
                    f"(fields: {', '.join(owner.fields) or 'none'}, connections)"
                )
            return owner.fields[node.attr]
        if isinstance(owner, _Connections):
            if node.attr not in owner.view.connections:
                raise PipelineError(
                    f"{self._source}: task {owner.view.label!r} has no connection {node.attr!r} "
                    f"(connections: {', '.join(owner.view.connections)})"
                )
            return owner.view.connections[node.attr]
        raise PipelineError(
            f"{self._source}: contracts read attributes of task labels only, not .{node.attr}"
        )

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            result: Any = True
            for value in node.values:
                result = self.visit(value)
                if not result:
                    return result
            return result
        result = False
        for value in node.values:
            result = self.visit(value)
            if result:
                return result
        return result

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Mult) and any(
            isinstance(a, str | list | tuple) and isinstance(b, int) and b > _MAX_REPEAT
            for a, b in ((left, right), (right, left))
        ):
            raise PipelineError(f"{self._source}: contract repeats a sequence more than {_MAX_REPEAT} times")
        return _BINARY[type(node.op)](left, right)

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def _Subscript(self, node: ast.Subscript) -> Any:
        container = self.visit(node.value)
        if not isinstance(container, list | tuple | dict | str):
            raise PipelineError(f"{self._source}: only lists, dicts and strings can be subscripted")
        return container[self.visit(node.slice)]

    def _Call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)  # checked at parse time
        return _FUNCTIONS[node.func.id](*(self.visit(arg) for arg in node.args))

    def _List(self, node: ast.List) -> list[Any]:
        return [self.visit(e) for e in node.elts]

    def _Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self.visit(e) for e in node.elts)

    def _Set(self, node: ast.Set) -> set[Any]:
        return {self.visit(e) for e in node.elts}

    def _Dict(self, node: ast.Dict) -> dict[Any, Any]:
        if any(k is None for k in node.keys):
            raise PipelineError(f"{self._source}: '**' is not allowed in contracts")
        return {
            self.visit(k): self.visit(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None
        }

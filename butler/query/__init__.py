"""The query expression language of ``butler query-datasets --where``, ``pipetask -d`` and bps ``dataQuery``.

Parse once with :func:`parse`, ask :func:`referenced_dimensions` which tables the expression
needs, then :func:`compile_where` it against a :class:`Resolver` for those tables::

    node = parse("instrument = 'LSSTCam' AND exposure.exposure_time > 10 AND detector IN (1, 2)")
    clause = compile_where(node, resolver)  # literals are bound parameters

An empty expression parses to ``None``, meaning no constraint; both other functions accept it.
"""

from ._ast import (
    And,
    Compare,
    CompareOp,
    Identifier,
    InList,
    Literal,
    Node,
    Not,
    Or,
    Value,
    referenced_dimensions,
)
from ._compile import Resolver, compile_where
from ._parser import parse

__all__ = [
    "And",
    "Compare",
    "CompareOp",
    "Identifier",
    "InList",
    "Literal",
    "Node",
    "Not",
    "Or",
    "Resolver",
    "Value",
    "compile_where",
    "parse",
    "referenced_dimensions",
]

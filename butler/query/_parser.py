"""Recursive-descent parser for query expressions.

Grammar (``docs/contracts.md``), lowest precedence first, so ``NOT`` binds tighter than ``AND``,
which binds tighter than ``OR``::

    expr    := or
    or      := and ('OR' and)*
    and     := not ('AND' not)*
    not     := 'NOT' not | cmp
    cmp     := '(' expr ')'
             | value ('=' | '!=' | '<' | '<=' | '>' | '>=') value
             | value 'NOT'? 'IN' '(' literal (',' literal)* ')'
    value   := literal | identifier ('.' identifier)?
    literal := integer | float | string | '-' (integer | float)

The contract's ``operand := ... | '(' expr ')'`` is narrowed here: a parenthesised group is always
a condition, and the sides of a comparison are always values.  ``(a = 1) = 2`` and a bare
``exposure`` are therefore syntax errors with a caret, rather than type errors discovered later.

It is hand written rather than generated so that every failure can say what was expected where,
what was found instead, and at which offset.
"""

from __future__ import annotations

from .._exceptions import QuerySyntaxError
from ._ast import COMPARE_OPS, And, Compare, CompareOp, Identifier, InList, Literal, Node, Not, Or, Value
from ._lexer import Token, TokenKind, tokenize

__all__ = ["MAX_NESTING", "parse"]

#: Deepest nesting of parentheses and ``NOT`` accepted.  Human-written queries nest a few levels.
#: SQLite's parser stack overflows ("parser stack overflow") at roughly 18-30 levels depending on
#: the shape, so the cap is set where every shape still runs there; beyond it the user gets a caret
#: at the offending '(' or NOT instead of a database error or a Python RecursionError.
MAX_NESTING = 16

_INT64 = 2**63
_OPS_TEXT = ", ".join(COMPARE_OPS)
_OP_BY_TEXT: dict[str, CompareOp] = {op: op for op in COMPARE_OPS}


def parse(text: str) -> Node | None:
    """Parse a query expression.

    An empty or all-whitespace expression means "no constraint" and returns ``None``: a bps
    ``dataQuery: ''`` or an omitted ``--where`` then need no special case in their callers, and
    :func:`~butler.query.compile_where` and :func:`~butler.query.referenced_dimensions` accept
    ``None``.
    """
    if not text.strip():
        return None
    return _Parser(text).parse()


class _Parser:
    """One parse of one expression: the token list, a cursor and the current nesting depth."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = tokenize(text)
        self._index = 0
        self._depth = 0

    # --- cursor -----------------------------------------------------------------------------

    def _peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._index + ahead, len(self._tokens) - 1)]

    def _advance(self) -> Token:
        token = self._peek()
        self._index += 1
        return token

    def _is_keyword(self, word: str, ahead: int = 0) -> bool:
        token = self._peek(ahead)
        return token.kind is TokenKind.KEYWORD and token.value == word

    def _fail(self, expected: str, token: Token | None = None) -> QuerySyntaxError:
        """Build (not raise, so callers read ``raise self._fail(...)``) an expected/found error."""
        token = token or self._peek()
        return QuerySyntaxError(f"expected {expected}, found {token.describe()}", self._text, token.position)

    def _nest(self, token: Token) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise QuerySyntaxError(
                f"expected at most {MAX_NESTING} levels of parentheses and NOT, found more",
                self._text,
                token.position,
            )

    # --- grammar ----------------------------------------------------------------------------

    def parse(self) -> Node:
        node = self._or()
        if self._peek().kind is not TokenKind.EOF:
            raise self._fail("AND, OR or end of input")
        return node

    def _or(self) -> Node:
        start = self._peek().position
        operands = [self._and()]
        while self._is_keyword("OR"):
            self._advance()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands), start)

    def _and(self) -> Node:
        start = self._peek().position
        operands = [self._not()]
        while self._is_keyword("AND"):
            self._advance()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else And(tuple(operands), start)

    def _not(self) -> Node:
        if not self._is_keyword("NOT"):
            return self._cmp()
        token = self._advance()
        self._nest(token)
        operand = self._not()
        self._depth -= 1
        return Not(operand, token.position)

    def _cmp(self) -> Node:
        if self._peek().kind is TokenKind.LPAREN:
            return self._group()
        left = self._value("a condition (NOT, '(', an identifier or a literal)")
        token = self._peek()
        if token.kind is TokenKind.OP:
            self._advance()
            right = self._value(f"an identifier or literal after {token.text!r}")
            return Compare(_OP_BY_TEXT[token.text], left, right, left.position)
        if self._is_keyword("IN") or (self._is_keyword("NOT") and self._is_keyword("IN", 1)):
            return self._in_list(left)
        raise self._fail(f"a comparison operator ({_OPS_TEXT}) or IN after {_describe(left)}")

    def _group(self) -> Node:
        opening = self._advance()
        self._nest(opening)
        node = self._or()
        if self._peek().kind is not TokenKind.RPAREN:
            raise self._fail(f"AND, OR or ')' to close the '(' at position {opening.position}")
        self._advance()
        self._depth -= 1
        return node

    def _in_list(self, operand: Value) -> InList:
        negated = self._is_keyword("NOT")
        if negated:
            self._advance()
        keyword = self._advance()
        if self._peek().kind is not TokenKind.LPAREN:
            raise self._fail(f"'(' after {keyword.value}")
        self._advance()
        values = [self._literal(f"a literal in the {keyword.value} list")]
        while self._peek().kind is TokenKind.COMMA:
            self._advance()
            values.append(self._literal(f"a literal after ',' in the {keyword.value} list"))
        if self._peek().kind is not TokenKind.RPAREN:
            raise self._fail(f"',' or ')' in the {keyword.value} list")
        self._advance()
        return InList(operand, tuple(values), negated, operand.position)

    def _value(self, expected: str) -> Value:
        token = self._peek()
        if token.kind is TokenKind.IDENT:
            return self._identifier()
        if token.kind in (TokenKind.INT, TokenKind.FLOAT, TokenKind.STRING, TokenKind.MINUS):
            return self._literal(expected)
        raise self._fail(expected)

    def _identifier(self) -> Identifier:
        name = self._advance()
        if self._peek().kind is not TokenKind.DOT:
            return Identifier(str(name.value), None, name.position)
        self._advance()
        field = self._peek()
        if field.kind is not TokenKind.IDENT:
            raise self._fail(f"a field name after '{name.value}.'")
        self._advance()
        return Identifier(str(name.value), str(field.value), name.position)

    def _literal(self, expected: str) -> Literal:
        token = self._advance()
        if token.kind is TokenKind.STRING:
            return Literal(token.value, token.position)
        sign = 1
        start = token.position
        if token.kind is TokenKind.MINUS:
            sign = -1
            token = self._advance()
            if token.kind not in (TokenKind.INT, TokenKind.FLOAT):
                raise self._fail("a number after '-'", token)
        elif token.kind not in (TokenKind.INT, TokenKind.FLOAT):
            raise self._fail(expected, token)
        value = token.value
        assert isinstance(value, int | float)
        value = sign * value
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            raise QuerySyntaxError(
                f"expected an integer that fits in 64 bits, found {token.text}", self._text, start
            )
        return Literal(value, start)


def _describe(value: Value) -> str:
    if isinstance(value, Identifier):
        return f"identifier {str(value)!r}"
    return f"literal {value.value!r}"

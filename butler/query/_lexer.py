"""Split a query expression into tokens that remember where they started.

Query expressions are typed on command lines and in YAML files, so the most useful thing an error
can do is point at the exact character that is wrong.  Every token therefore carries its 0-based
start offset, and lexical errors (a stray ``@``, an unterminated string) are reported here with
the same :class:`~butler._exceptions.QuerySyntaxError` the parser uses.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from .._exceptions import QuerySyntaxError

__all__ = ["KEYWORDS", "Token", "TokenKind", "tokenize"]


class TokenKind(enum.Enum):
    """The lexical categories the parser distinguishes."""

    IDENT = "identifier"
    KEYWORD = "keyword"
    INT = "integer"
    FLOAT = "float"
    STRING = "string"
    OP = "comparison operator"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    DOT = "'.'"
    MINUS = "'-'"
    EOF = "end of input"


#: Reserved words, matched case-insensitively; their token value is the upper-case spelling.
KEYWORDS = frozenset({"AND", "OR", "NOT", "IN"})

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_PUNCTUATION = {
    "(": TokenKind.LPAREN,
    ")": TokenKind.RPAREN,
    ",": TokenKind.COMMA,
    ".": TokenKind.DOT,
    "-": TokenKind.MINUS,
}
_OPERATORS = ("<=", ">=", "!=", "=", "<", ">")  # two-character spellings first: longest match wins
#: Spellings from other languages that users reach for; named so the error can suggest the fix.
_FOREIGN_OPERATORS = {"==": "=", "<>": "!="}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its decoded value, where it starts and how it was spelled."""

    kind: TokenKind
    value: int | float | str
    position: int
    text: str

    def describe(self) -> str:
        """Name this token the way an error message should ("identifier 'visit'", "end of input")."""
        if self.kind is TokenKind.EOF:
            return "end of input"
        if self.kind is TokenKind.KEYWORD:
            return f"keyword {self.value}"
        if self.kind is TokenKind.IDENT:
            return f"identifier {self.text!r}"
        if self.kind in (TokenKind.INT, TokenKind.FLOAT):
            return f"number {self.text}"
        if self.kind is TokenKind.STRING:
            return f"string {self.text}"
        return repr(self.text)


def tokenize(text: str) -> list[Token]:
    """Return the tokens of ``text``, always ending with an EOF token at ``len(text)``."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        token = _next_token(text, pos)
        tokens.append(token)
        pos += len(token.text)
    tokens.append(Token(TokenKind.EOF, "", len(text), ""))
    return tokens


def _next_token(text: str, pos: int) -> Token:
    """Read the single token that starts at ``pos`` (which is not whitespace)."""
    char = text[pos]
    if char in "'\"":
        return _string(text, pos)
    if match := _IDENT.match(text, pos):
        word = match.group()
        if word.upper() in KEYWORDS:
            return Token(TokenKind.KEYWORD, word.upper(), pos, word)
        return Token(TokenKind.IDENT, word, pos, word)
    if char.isdigit():
        return _number(text, pos)
    for spelling, replacement in _FOREIGN_OPERATORS.items():
        if text.startswith(spelling, pos):
            raise QuerySyntaxError(f"expected {replacement!r}, found {spelling!r}", text, pos)
    for op in _OPERATORS:
        if text.startswith(op, pos):
            return Token(TokenKind.OP, op, pos, op)
    if char == "!":
        raise QuerySyntaxError("expected '!=', found '!'", text, pos)
    if char in _PUNCTUATION:
        return Token(_PUNCTUATION[char], char, pos, char)
    raise QuerySyntaxError(
        f"expected an identifier, literal, operator, parenthesis or comma, found {char!r}", text, pos
    )


def _number(text: str, pos: int) -> Token:
    """Read an integer or float literal; a number glued to letters (``12abc``) is an error."""
    match = _NUMBER.match(text, pos)
    assert match is not None  # the caller saw a digit
    end = match.end()
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        bad = _IDENT.match(text, end)
        spelled = text[pos : bad.end() if bad else end + 1]
        raise QuerySyntaxError(f"expected a number, found {spelled!r}", text, pos)
    spelling = match.group()
    if any(c in spelling for c in ".eE"):
        value = float(spelling)
        if math.isinf(value):
            raise QuerySyntaxError(f"expected a finite number, found {spelling}", text, pos)
        return Token(TokenKind.FLOAT, value, pos, spelling)
    return Token(TokenKind.INT, int(spelling), pos, spelling)


def _string(text: str, pos: int) -> Token:
    """Read a quoted string, decoding backslash escapes.

    An unterminated string is reported at its opening quote rather than at the end of the input:
    the caret then shows where the runaway string began, which is what the user needs to fix.
    """
    quote = text[pos]
    chars: list[str] = []
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == quote:
            return Token(TokenKind.STRING, "".join(chars), pos, text[pos : i + 1])
        if char == "\\":
            if i + 1 >= len(text):
                break
            escaped = text[i + 1]
            if escaped not in _ESCAPES:
                expected = "one of the escapes \\\\ \\' \\\" \\n \\t"
                found = repr("\\" + escaped)
                raise QuerySyntaxError(f"expected {expected}, found {found}", text, i)
            chars.append(_ESCAPES[escaped])
            i += 2
            continue
        chars.append(char)
        i += 1
    raise QuerySyntaxError(f"unterminated string: expected a closing {quote} before end of input", text, pos)

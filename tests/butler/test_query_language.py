"""Tests for the ``--where`` / ``dataQuery`` expression language (``butler.query``).

Compiled clauses are executed against a real in-memory SQLite table through a small resolver, so
what is checked is which rows a user gets back, not the SQL text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import ColumnElement

from butler._dimensions import DimensionUniverse
from butler._exceptions import QueryError, QuerySyntaxError
from butler.query import (
    And,
    Compare,
    Identifier,
    InList,
    Literal,
    Node,
    Not,
    Or,
    Resolver,
    compile_where,
    parse,
    referenced_dimensions,
)
from butler.query._parser import MAX_NESTING

# --- a one-table "registry" ---------------------------------------------------------------------

COLUMNS = ("instrument", "exposure", "detector", "physical_filter", "exposure_time", "obs_id")
ROWS = [
    dict(zip(COLUMNS, row, strict=True))
    for row in [
        ("LSSTCam", 1, 0, "g_01", 15.0, "AT_1"),
        ("LSSTCam", 1, 1, "g_01", 15.0, "AT_1"),
        ("LSSTCam", 2, 0, "r_03", 30.0, "AT_2"),
        ("LSSTCam", 2, 1, "r_03", 30.0, "AT_2"),
        ("HSC", 3, 0, "i_01", None, "O'Brien"),  # no exposure time: NULL in SQL
    ]
]


class TableResolver:
    """Resolves dimension keys to columns of one data-ID table, and a few exposure fields."""

    def __init__(self, table: sqlalchemy.Table, universe: DimensionUniverse) -> None:
        self.table = table
        self.universe = universe
        self.fields = {
            ("exposure", "exposure_time"): table.c.exposure_time,
            ("exposure", "obs_id"): table.c.obs_id,
        }

    def dimension_key(self, name: str) -> ColumnElement[Any]:
        if name not in self.universe:
            raise QueryError(
                f"{name!r} is not a dimension; expected a dimension or dimension.field "
                f"(dimensions: {', '.join(self.universe.names)})"
            )
        if name not in self.table.c:
            raise QueryError(f"dimension {name!r} is not available in this query")
        return self.table.c[name]

    def dimension_field(self, name: str, field: str) -> ColumnElement[Any]:
        if name in self.universe and field == self.universe[name].key_name:
            return self.dimension_key(name)
        try:
            return self.fields[name, field]
        except KeyError:
            raise QueryError(f"unknown field {name}.{field}") from None

    def key_type(self, name: str) -> type:
        return self.universe[name].key_type


class UniverseLookupResolver(TableResolver):
    """A resolver that lets the universe's UnknownDimensionError escape, to test its conversion."""

    def dimension_key(self, name: str) -> ColumnElement[Any]:
        self.universe[name]
        return super().dimension_key(name)


@pytest.fixture(scope="module")
def db() -> Iterator[tuple[sqlalchemy.Engine, sqlalchemy.Table]]:
    engine = sqlalchemy.create_engine("sqlite://")
    metadata = sqlalchemy.MetaData()
    table = sqlalchemy.Table(
        "data_id",
        metadata,
        sqlalchemy.Column("instrument", sqlalchemy.String(32), nullable=False),
        sqlalchemy.Column("exposure", sqlalchemy.BigInteger, nullable=False),
        sqlalchemy.Column("detector", sqlalchemy.Integer, nullable=False),
        sqlalchemy.Column("physical_filter", sqlalchemy.String(32), nullable=False),
        sqlalchemy.Column("exposure_time", sqlalchemy.Float, nullable=True),
        sqlalchemy.Column("obs_id", sqlalchemy.String(64), nullable=False),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), ROWS)
    yield engine, table
    engine.dispose()


@pytest.fixture(scope="module")
def resolver(db: tuple[sqlalchemy.Engine, sqlalchemy.Table]) -> TableResolver:
    return TableResolver(db[1], DimensionUniverse.default())


Db = tuple[sqlalchemy.Engine, sqlalchemy.Table]


def select(db: Db, resolver: Resolver, where: str) -> set[tuple[int, int]]:
    """(exposure, detector) of the rows ``where`` selects, by running a real SELECT."""
    engine, table = db
    query = sqlalchemy.select(table.c.exposure, table.c.detector).where(compile_where(parse(where), resolver))
    with engine.connect() as conn:
        return {(row.exposure, row.detector) for row in conn.execute(query)}


def ident(dimension: str, field: str | None = None) -> Identifier:
    return Identifier(dimension, field)


def eq(name: str, value: int | float | str) -> Compare:
    return Compare("=", Identifier(name), Literal(value))


# --- parse trees ----------------------------------------------------------------------------------


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    assert parse("a = 1 OR b = 2 AND NOT c = 3") == Or((eq("a", 1), And((eq("b", 2), Not(eq("c", 3))))))
    assert parse("NOT a = 1 AND b = 2") == And((Not(eq("a", 1)), eq("b", 2)))
    assert parse("a = 1 AND b = 2 OR c = 3") == Or((And((eq("a", 1), eq("b", 2))), eq("c", 3)))


def test_parentheses_override_precedence() -> None:
    assert parse("(a = 1 OR b = 2) AND c = 3") == And((Or((eq("a", 1), eq("b", 2))), eq("c", 3)))
    assert parse("NOT (a = 1 OR b = 2)") == Not(Or((eq("a", 1), eq("b", 2))))
    assert parse("((a = 1))") == eq("a", 1)


def test_chains_are_flat() -> None:
    assert parse("a = 1 OR a = 2 OR a = 3") == Or((eq("a", 1), eq("a", 2), eq("a", 3)))
    assert parse("a = 1 AND a = 2 AND a = 3") == And((eq("a", 1), eq("a", 2), eq("a", 3)))
    assert parse("NOT NOT a = 1") == Not(Not(eq("a", 1)))


def test_comparison_operators_and_sides() -> None:
    for op in ("=", "!=", "<", "<=", ">", ">="):
        assert parse(f"exposure {op} 5") == Compare(op, ident("exposure"), Literal(5))  # type: ignore[arg-type]
    assert parse("5 < exposure") == Compare("<", Literal(5), ident("exposure"))
    assert parse("exposure=detector") == Compare("=", ident("exposure"), ident("detector"))
    assert parse("exposure.exposure_time>=1.5") == Compare(
        ">=", ident("exposure", "exposure_time"), Literal(1.5)
    )


def test_in_and_not_in() -> None:
    assert parse("detector IN (1, -2, 3.5, 'x')") == InList(
        ident("detector"), (Literal(1), Literal(-2), Literal(3.5), Literal("x")), False
    )
    assert parse("detector NOT IN (4)") == InList(ident("detector"), (Literal(4),), True)
    assert parse("NOT detector IN (4)") == Not(InList(ident("detector"), (Literal(4),), False))


def test_keywords_are_case_insensitive() -> None:
    assert parse("a = 1 and not b in (2) Or c not In (3)") == parse("a = 1 AND NOT b IN (2) OR c NOT IN (3)")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-42", -42),
        ("- 42", -42),
        ("0", 0),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        ("'r_03'", "r_03"),
        ('"r_03"', "r_03"),
        ("''", ""),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\\b'", "a\\b"),
        (r"'tab\there\nnewline'", "tab\there\nnewline"),
        ('"it\'s"', "it's"),
        ("'AND OR NOT IN ( ) @'", "AND OR NOT IN ( ) @"),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_literals(text: str, value: int | float | str) -> None:
    node = parse(f"x = {text}")
    assert isinstance(node, Compare) and isinstance(node.right, Literal)
    assert node.right.value == value
    assert type(node.right.value) is type(value)  # 1 == 1.0, so check the type too


def test_positions_are_offsets_of_node_starts() -> None:
    text = "NOT exposure.id = -3 OR (detector IN (1, 'a') AND b != 2)"
    node = parse(text)
    assert isinstance(node, Or) and node.position == 0
    negation, conjunction = node.operands
    assert isinstance(negation, Not) and negation.position == 0
    compare = negation.operand
    assert isinstance(compare, Compare) and compare.position == 4
    assert compare.left.position == 4 and compare.right.position == text.index("-3")
    assert isinstance(conjunction, And) and conjunction.position == text.index("detector")
    in_list = conjunction.operands[0]
    assert isinstance(in_list, InList)
    assert [v.position for v in in_list.values] == [text.index("1,"), text.index("'a'")]


def test_positions_do_not_affect_equality() -> None:
    assert parse("a=1") == parse("  a   =   1  ")
    assert hash(parse("a=1")) == hash(parse(" a = 1"))


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_expression_means_no_constraint(text: str) -> None:
    assert parse(text) is None
    assert referenced_dimensions(None) == set()


def test_referenced_dimensions() -> None:
    node = parse(
        "instrument = 'HSC' AND (exposure.exposure_time > 3 OR NOT detector IN (1)) AND 4 < visit.id"
    )
    assert referenced_dimensions(node) == {"instrument", "exposure", "detector", "visit"}
    assert referenced_dimensions(parse("exposure = detector")) == {"exposure", "detector"}


# --- syntax errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("exposure =", 10, "expected an identifier or literal after '=', found end of input"),
        ("detector IN (1, 2", 17, "expected ',' or ')' in the IN list, found end of input"),
        ("a == 3", 2, "expected '=', found '=='"),
        ("a <> 3", 2, "expected '!=', found '<>'"),
        ("a ! 3", 2, "expected '!=', found '!'"),
        ("'unterminated", 0, "unterminated string: expected a closing ' before end of input"),
        ('x = "open', 4, 'expected a closing " before end of input'),
        ("x = 'ends in backslash\\", 4, "unterminated string"),
        ("x = 'bad \\q escape'", 9, "found '\\\\q'"),
        (
            "exposure = 1 AND",
            16,
            "expected a condition (NOT, '(', an identifier or a literal), found end of input",
        ),
        ("exposure = 1 OR", 15, "found end of input"),
        ("NOT", 3, "found end of input"),
        ("(detector = 1", 13, "expected AND, OR or ')' to close the '(' at position 0, found end of input"),
        ("detector = 1 detector = 2", 13, "expected AND, OR or end of input, found identifier 'detector'"),
        ("detector = 1)", 12, "expected AND, OR or end of input, found ')'"),
        ("detector IN ()", 13, "expected a literal in the IN list, found ')'"),
        ("detector IN (1,)", 15, "expected a literal after ',' in the IN list, found ')'"),
        ("detector IN (visit)", 13, "expected a literal in the IN list, found identifier 'visit'"),
        ("detector IN 1", 12, "expected '(' after IN, found number 1"),
        ("detector NOT IN 1", 16, "expected '(' after IN, found number 1"),
        ("detector @ 3", 9, "found '@'"),
        ("@", 0, "found '@'"),
        (
            "exposure",
            8,
            "expected a comparison operator (=, !=, <, <=, >, >=) or IN after identifier 'exposure'",
        ),
        ("exposure AND detector = 1", 9, "or IN after identifier 'exposure', found keyword AND"),
        ("(a = 1) = 2", 8, "expected AND, OR or end of input, found '='"),
        ("a = (1)", 4, "expected an identifier or literal after '=', found '('"),
        ("a.b.c = 1", 3, "after identifier 'a.b', found '.'"),
        ("a. = 1", 3, "expected a field name after 'a.', found '='"),
        ("a = -x", 5, "expected a number after '-', found identifier 'x'"),
        ("a = -'x'", 5, "expected a number after '-', found string 'x'"),
        ("a = 12abc", 4, "expected a number, found '12abc'"),
        ("a = 1e999", 4, "expected a finite number"),
        ("a = 9223372036854775808", 4, "expected an integer that fits in 64 bits"),
        ("a NOT = 1", 2, "found keyword NOT"),
        ("AND a = 1", 0, "found keyword AND"),
        ("a = 1 AND OR b = 2", 10, "found keyword OR"),
        ("in = 1", 0, "found keyword IN"),
    ],
)
def test_syntax_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    err = info.value
    assert err.position == position, err
    assert message in err.reason
    assert err.expression == text
    assert isinstance(err, ValueError)


def test_syntax_error_message_shows_a_caret() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse("detector IN ()")
    lines = str(info.value).splitlines()
    assert lines[0].endswith("at position 13:")
    assert lines[1] == "  detector IN ()"
    assert lines[2] == "  " + " " * 13 + "^"


def test_nesting_is_capped_with_a_syntax_error() -> None:
    assert parse("(" * MAX_NESTING + "a = 1" + ")" * MAX_NESTING) == eq("a", 1)
    assert parse("NOT " * MAX_NESTING + "a = 1") is not None
    with pytest.raises(QuerySyntaxError, match="levels of parentheses and NOT") as info:
        parse("(" * (MAX_NESTING + 1) + "a = 1" + ")" * (MAX_NESTING + 1))
    assert info.value.position == MAX_NESTING
    with pytest.raises(QuerySyntaxError, match="levels of parentheses and NOT"):
        parse("NOT " * 10_000 + "a = 1")


# --- compiled and executed -----------------------------------------------------------------------------

ALL = {(1, 0), (1, 1), (2, 0), (2, 1), (3, 0)}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("", ALL),
        ("exposure = 1", {(1, 0), (1, 1)}),
        ("exposure != 1", {(2, 0), (2, 1), (3, 0)}),
        ("1 = exposure", {(1, 0), (1, 1)}),
        ("2 < exposure", {(3, 0)}),
        ("exposure <= 1", {(1, 0), (1, 1)}),
        ("exposure >= 3", {(3, 0)}),
        ("exposure = 2.0", {(2, 0), (2, 1)}),
        ("exposure < 1.5", {(1, 0), (1, 1)}),
        ("exposure.id = 2", {(2, 0), (2, 1)}),
        ("exposure = -1", set()),
        ("instrument = 'HSC'", {(3, 0)}),
        ('instrument.name = "HSC"', {(3, 0)}),
        ("physical_filter = 'r_03' AND detector = 1", {(2, 1)}),
        ("physical_filter.name > 'h'", {(2, 0), (2, 1), (3, 0)}),
        ("exposure.exposure_time > 20", {(2, 0), (2, 1)}),
        ("exposure.exposure_time = 15", {(1, 0), (1, 1)}),
        ("exposure.obs_id = 'O\\'Brien'", {(3, 0)}),
        ('exposure.obs_id = "O\'Brien"', {(3, 0)}),
        ("detector IN (0)", {(1, 0), (2, 0), (3, 0)}),
        ("detector NOT IN (0)", {(1, 1), (2, 1)}),
        ("exposure IN (1, 3) AND NOT detector = 1", {(1, 0), (3, 0)}),
        ("exposure IN (2.0, 9)", {(2, 0), (2, 1)}),
        ("physical_filter IN ('g_01', 'i_01')", {(1, 0), (1, 1), (3, 0)}),
        ("exposure = 1 OR exposure = 2 AND detector = 1", {(1, 0), (1, 1), (2, 1)}),
        ("(exposure = 1 OR exposure = 2) AND detector = 1", {(1, 1), (2, 1)}),
        ("exposure = detector", {(1, 1)}),
        ("exposure.id > detector", {(1, 0), (2, 0), (2, 1), (3, 0)}),
        ("exposure = 1 and detector = 0", {(1, 0)}),
        ("NOT NOT exposure = 3", {(3, 0)}),
        # SQL three-valued logic: a NULL field satisfies neither a comparison nor its negation.
        ("NOT exposure.exposure_time > 20", {(1, 0), (1, 1)}),
    ],
)
def test_compiled_queries_select_the_right_rows(
    db: Db, resolver: TableResolver, where: str, expected: set[Any]
) -> None:
    assert select(db, resolver, where) == expected


def test_empty_expression_compiles_to_true(resolver: TableResolver) -> None:
    clause = compile_where(None, resolver)
    assert str(clause.compile(dialect=sqlite.dialect())) == "1"


def test_literals_are_bound_parameters_never_sql_text(resolver: TableResolver) -> None:
    node = parse(
        "exposure = 123456 AND exposure.obs_id != 'zzz_marker' AND detector IN (777, 888) OR 4.75 < exposure"
    )
    compiled = compile_where(node, resolver).compile(dialect=sqlite.dialect())
    sql = str(compiled)
    for text in ("123456", "zzz_marker", "777", "888", "4.75"):
        assert text not in sql
    assert set(compiled.params.values()) == {123456, "zzz_marker", 777, 888, 4.75}


@pytest.mark.parametrize(
    "hostile",
    [
        "x' OR 1=1 --",
        'x" OR 1=1 --',
        "'; DROP TABLE data_id; --",
        "AT_1' OR 'a'='a",
        "%",
        "AT_%",
    ],
)
def test_injection_attempts_match_nothing_and_break_nothing(
    db: Db, resolver: TableResolver, hostile: str
) -> None:
    escaped = hostile.replace("\\", "\\\\").replace("'", "\\'")
    assert select(db, resolver, f"exposure.obs_id = '{escaped}'") == set()
    assert select(db, resolver, f"exposure.obs_id IN ('{escaped}')") == set()
    assert select(db, resolver, f"physical_filter = '{escaped}' OR instrument = '{escaped}'") == set()
    # The table and its contents are untouched.
    assert select(db, resolver, "") == ALL


def test_long_generated_expressions(db: Db, resolver: TableResolver) -> None:
    disjunction = " OR ".join(f"exposure = {i}" for i in range(3, 503))
    assert select(db, resolver, disjunction) == {(3, 0)}
    in_list = "exposure IN (" + ", ".join(str(i) for i in range(2, 2002)) + ")"
    assert select(db, resolver, in_list) == {(2, 0), (2, 1), (3, 0)}


@pytest.mark.parametrize(
    ("pattern", "levels_per_round"),
    [
        ("NOT (exposure = {i} OR {w})", 2),
        ("(exposure = {i} OR (exposure = 2 AND {w}))", 2),
        ("exposure = {i} AND (exposure = 2 OR {w})", 1),
        ("exposure = {i} OR NOT (exposure = 2 AND {w})", 2),
        ("exposure IN ({i}) AND (detector NOT IN (2, 3) OR {w})", 1),
    ],
)
def test_deepest_accepted_nesting_compiles_and_runs_on_sqlite(
    db: Db, resolver: TableResolver, pattern: str, levels_per_round: int
) -> None:
    where = "exposure = 1"
    for i in range(MAX_NESTING // levels_per_round):
        where = pattern.format(i=i + 10, w=where)
    select(db, resolver, where)  # no "parser stack overflow" from SQLite
    deeper = pattern.format(i=99, w=where)
    with pytest.raises(QuerySyntaxError, match="levels of parentheses and NOT"):
        parse(deeper)


# --- semantic errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "fragments"),
    [
        ("exposure = 'x'", ["'exposure'", "integer key", "string literal 'x'"]),
        ("'12' < exposure", ["'exposure'", "integer key", "string literal '12'"]),
        ("physical_filter = 3", ["'physical_filter'", "string key", "number 3"]),
        ("instrument = 1.5", ["'instrument'", "string key", "number 1.5"]),
        ("exposure.id = 'x'", ["exposure.id", "int"]),
        ("exposure.exposure_time = 'long'", ["exposure.exposure_time", "float", "string literal 'long'"]),
        ("exposure.obs_id = 7", ["exposure.obs_id", "str", "number 7"]),
        ("detector IN (1, 'a')", ["'detector'", "integer key", "string literal 'a'", "position 16"]),
        ("instrument = detector", ["'instrument'", "'detector'"]),
    ],
)
def test_type_mismatches_are_query_errors(resolver: TableResolver, where: str, fragments: list[str]) -> None:
    with pytest.raises(QueryError) as info:
        compile_where(parse(where), resolver)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("where", "fragments"),
    [
        ("visitt = 1", ["'visitt'", "expected a dimension or dimension.field"]),
        ("exposure.nope = 1", ["exposure.nope"]),
        ("visit = 1", ["'visit'", "not available"]),
        ("1 = 1", ["no dimension or field", "position 0"]),
        ("'a' < 'b'", ["no dimension or field"]),
        ("1 IN (1, 2)", ["before IN", "number 1"]),
    ],
)
def test_unknown_names_and_meaningless_comparisons(
    resolver: TableResolver, where: str, fragments: list[str]
) -> None:
    with pytest.raises(QueryError) as info:
        compile_where(parse(where), resolver)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_unknown_dimension_error_from_resolver_becomes_query_error(
    db: Db,
) -> None:
    resolver = UniverseLookupResolver(db[1], DimensionUniverse.default())
    with pytest.raises(QueryError, match="'visitt' at position 17 is not a dimension") as info:
        compile_where(parse("exposure = 1 AND visitt = 1"), resolver)
    assert "expected a dimension or dimension.field" in str(info.value)
    assert "known dimensions" in str(info.value)


def test_hand_built_value_is_not_a_condition(resolver: TableResolver) -> None:
    bare: Node = Identifier("exposure", None, 3)
    with pytest.raises(QueryError, match="expected a condition at position 3"):
        compile_where(bare, resolver)
    with pytest.raises(QueryError, match="expected a condition"):
        compile_where(And((eq("exposure", 1), Literal(1))), resolver)

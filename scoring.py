"""Judging a model's answer against a row's gold SQL: pure functions over the SQL sandbox.

    gold = prepare_gold(row["sql_context"], row["sql"])   # once per row, shared by every model judged
    verdict = judge(gold, answer)                          # per model answer

A read query is right when it returns the gold's rows (as a multiset; as a list when the gold has
ORDER BY); a data- or schema-changing query is right when the database ends in the gold's state.
Gretel's sample tables hold 1-5 rows, so a wrong query often gives the gold's answer by luck: each
row is therefore also judged, test-suite style, on extra databases made from its schema with random
rows that reuse the gold query's literals, and a test-suite-correct answer agrees on all of them
(except those where the gold's own result is arbitrary: rows that tie on its ORDER BY keys, or a
result that changes when the rows are stored in another order; there a right answer that breaks
the tie otherwise would be punished).

No model, network or file here: evaluation.py does those. Imports nothing of ours but the sandbox.
"""

from __future__ import annotations

import datetime
import random
import string
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field

import sqlglot
import sqlparse
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sandbox import (
    QueryResult,
    SandboxError,
    database_state,
    extract_sql,
    has_order_by,
    is_read_query,
    new_database,
    results_match,
    run_query,
    to_sqlite,
)

TIMEOUT_S = 2.0  # per statement, gold and prediction alike
MAX_ROWS = 1000  # rows kept per result
SUITE_SIZE = 10  # extra test-suite databases per row
SUITE_ROWS = (3, 8)  # random rows added to each table of a test-suite database (min, max)
POOL_SHARE = 0.4  # chance a value is one of the gold's literals for its column; failing that, a sample value
DIALECTS = ("sqlite", "mysql", "postgres")  # the flavours gretel's SQL comes in
STATEMENT_TYPES = (exp.Query, exp.Values, exp.DML, exp.DDL, exp.Alter, exp.Drop, exp.TruncateTable)


@dataclass
class Gold:
    """One row's gold query, made ready to judge answers against."""

    context: str  # CREATE TABLE + INSERT statements: the sample database
    sql: str  # the gold as the dataset has it
    runnable: str | None = None  # the gold as SQLite runs it (sqlglot's translation when needed)
    reads: bool = True
    ordered: bool = False
    outcome: QueryResult | dict | None = None  # its result (reads) or end state (writes) on the sample rows
    suite: list[tuple[str, str]] = field(default_factory=list)  # test-suite databases: (SQL text, same rows reversed)
    tie_breaks: list[str] = field(default_factory=list)  # the gold with two opposite tie-breaks added (ORDER BY only)
    error: str | None = None  # why the gold cannot run: then the row is reported apart, never judged
    _suite_outcomes: list | None = field(default=None, repr=False)

    def suite_outcomes(self, timeout_s: float) -> list:
        """The gold's outcome on each test-suite database, computed once; None where that database
        cannot judge: the gold fails there, or its result there is arbitrary (see _settled_outcome)."""
        if self._suite_outcomes is None:
            self._suite_outcomes = [self._settled_outcome(databases, timeout_s) for databases in self.suite]
        return self._suite_outcomes

    def _settled_outcome(self, databases: tuple[str, str], timeout_s: float):
        """The gold's outcome, if the same with the rows stored in reverse and with either tie-break."""
        forward, backward = databases
        runs = [(forward, self.runnable), (backward, self.runnable), *((forward, sql) for sql in self.tie_breaks)]
        outcomes = [_outcome_or_none(db, sql, self.reads, timeout_s) for db, sql in runs]
        if any(other is None or difference(outcomes[0], other, self.ordered) for other in outcomes):
            return None
        return outcomes[0]


@dataclass
class Verdict:
    sql: str | None  # the SQL found in the answer
    parses: bool  # sqlglot reads it as one SQL statement
    exact_match: bool  # the gold's text, up to whitespace and keyword case
    execution_correct: bool | None = None  # None: the gold cannot run, the row is not judged
    test_suite_correct: bool | None = None
    error: str | None = None  # why it is wrong (or not judged); None when right


# ---------------------------------------------------------------- judging


def prepare_gold(context: str, gold_sql: str, suite_size: int = SUITE_SIZE, seed: int = 0,
                 timeout_s: float = TIMEOUT_S) -> Gold:
    """Run the gold on the sample rows and make its test-suite databases; Gold.error says why not."""
    gold = Gold(context=context, sql=gold_sql)
    try:
        conn = new_database(context, timeout_s)
    except SandboxError as error:
        gold.error = f"the schema fails: {error}"
        return gold
    try:
        gold.runnable = runnable_sql(conn, gold_sql)
        gold.reads, gold.ordered = is_read_query(gold.runnable), has_order_by(gold.runnable)
        gold.outcome = outcome(context, gold.runnable, gold.reads, timeout_s)
        if gold.ordered:
            gold.tie_breaks = tie_broken(gold.runnable, len(gold.outcome.columns))
        gold.suite = suite_databases(conn, gold.runnable, suite_size, seed=f"{seed}\n{context}\n{gold_sql}")
    except SandboxError as error:
        gold.error = f"the gold SQL fails: {error}"
    finally:
        conn.close()
    return gold


def judge(gold: Gold, answer: str, timeout_s: float = TIMEOUT_S) -> Verdict:
    """The verdict on one answer: execution-correct on the sample rows, test-suite-correct on all."""
    sql = extract_sql(answer or "")
    verdict = Verdict(sql=sql, parses=sql is not None and parse(sql) is not None,
                      exact_match=sql is not None and normalise(sql) == normalise(gold.sql))
    if gold.error:
        verdict.error = f"not judged: {gold.error}"
        return verdict
    verdict.execution_correct = verdict.test_suite_correct = False
    if sql is None:
        verdict.error = "no SQL in the answer"
        return verdict
    try:
        with closing(new_database(gold.context, timeout_s)) as conn:
            runnable = runnable_sql(conn, sql)
        got = outcome(gold.context, runnable, gold.reads, timeout_s)
    except SandboxError as error:
        verdict.error = f"the prediction fails: {error}"
        return verdict
    verdict.error = difference(gold.outcome, got, gold.ordered)
    verdict.execution_correct = verdict.error is None
    if verdict.execution_correct:
        verdict.error = suite_disagreement(gold, runnable, timeout_s)
        verdict.test_suite_correct = verdict.error is None
    return verdict


def suite_disagreement(gold: Gold, runnable: str, timeout_s: float) -> str | None:
    """Why the prediction parts from the gold on a test-suite database, or None when it never does."""
    for number, ((db, _), expected) in enumerate(zip(gold.suite, gold.suite_outcomes(timeout_s)), start=1):
        if expected is None:  # the gold fails there or its result there is arbitrary: no verdict from it
            continue
        where = f"test-suite database {number} of {len(gold.suite)}"
        try:
            got = outcome(db, runnable, gold.reads, timeout_s)
        except SandboxError as error:
            return f"right on the sample rows, but fails on {where}: {error}"
        if (reason := difference(expected, got, gold.ordered)) is not None:
            return f"right on the sample rows, but on {where} it {reason}"
    return None


def runnable_sql(conn, sql: str) -> str:
    """`sql` itself when SQLite compiles it on this schema, else sqlglot's SQLite translation of it
    (gretel's SQL is partly MySQL or PostgreSQL). Raises SandboxError with SQLite's own reason.
    Only compiled (EXPLAIN), never run: a query that times out is not tried a second time."""
    try:
        run_query(conn, f"EXPLAIN {sql}", max_rows=0)
        return sql
    except SandboxError:
        translated = to_sqlite(sql, conn)
        if translated is None:
            raise
        return translated


def outcome(db_sql: str, sql: str, reads: bool, timeout_s: float = TIMEOUT_S) -> QueryResult | dict:
    """Run `sql` in a fresh database made from `db_sql`: its result for a read query, else the end state."""
    with closing(new_database(db_sql, timeout_s)) as conn:
        result = run_query(conn, sql, timeout_s, MAX_ROWS)
        return result if reads else canonical_state(database_state(conn))


def _outcome_or_none(db_sql: str, sql: str, reads: bool, timeout_s: float):
    try:
        return outcome(db_sql, sql, reads, timeout_s)
    except SandboxError:
        return None


def difference(expected: QueryResult | dict, got: QueryResult | dict, ordered: bool) -> str | None:
    """How `got` differs from the gold's outcome, in words ("returns 3 rows, the gold 2"); None if alike."""
    if isinstance(expected, dict):
        return None if expected == got else "leaves the database in another state than the gold"
    if results_match(expected, got, ordered):
        return None
    if len(got.rows) != len(expected.rows):
        return f"returns {len(got.rows)} rows, the gold {len(expected.rows)}"
    if ordered and results_match(expected, got, ordered=False):
        return "returns the gold's rows in another order (the gold sorts with ORDER BY)"
    if len(got.columns) != len(expected.columns):
        return f"returns {len(got.columns)} columns, the gold {len(expected.columns)}"
    return "returns other values than the gold"


def canonical_state(state: dict) -> dict:
    """A database state that compares equal when the data is equal: numbers as 10-digit floats (2 is
    2.0, and 1.1 * 100 is 110.0, as the result comparison's tolerance allows) and rows in one order."""
    return {table: (columns, sorted((tuple(_canonical(value) for value in row) for row in rows), key=repr))
            for table, (columns, *rows) in state.items()}


def _canonical(value):
    return float(f"{value:.10g}") if isinstance(value, (int, float)) else value


# ---------------------------------------------------------------- reading SQL text


def parse(sql: str) -> exp.Expression | None:
    """sqlglot's tree of one SQL statement, read as SQLite, MySQL or PostgreSQL; None when none reads it."""
    for dialect in DIALECTS:
        try:
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        except SqlglotError:
            continue
        if len(statements) == 1 and isinstance(statements[0], STATEMENT_TYPES):
            return statements[0]
    return None


def normalise(sql: str) -> str:
    """SQL text for exact match: comments and the final `;` dropped, whitespace collapsed (also
    around commas and parentheses), keywords upper-cased. Names and literals keep their case."""
    statements = sqlparse.parse(sqlparse.format(sql, strip_comments=True).strip().rstrip(";"))
    tokens = [token for statement in statements for token in statement.flatten() if not token.is_whitespace]
    return " ".join(" ".join(t.value.upper().split()) if t.is_keyword else t.value for t in tokens)


# ---------------------------------------------------------------- test-suite databases


def tie_broken(sql: str, width: int) -> list[str]:
    """The query with all its `width` output columns added to its ORDER BY, ascending and then
    descending: where the two disagree, rows tie on the query's own sort keys."""
    tree = parse(sql)
    if tree is None or tree.args.get("order") is None:
        return []
    variants = []
    for descending in (False, True):
        variant = tree.copy()
        for position in range(1, width + 1):
            variant.args["order"].append("expressions", exp.Ordered(this=exp.Literal.number(position), desc=descending))
        variants.append(variant.sql(dialect="sqlite"))
    return variants


def suite_databases(conn, gold_sql: str, count: int, seed: str) -> list[tuple[str, str]]:
    """`count` test-suite databases for the sample database `conn`, each as a pair of SQL texts: its
    schema and sample rows plus random rows for every table, and the same with every table's rows
    inserted in reverse. Values fit the column types and are drawn partly from the sample rows and
    the gold's literals (and their neighbours: 1000 brings 999 and 1001), so that the gold's
    conditions split the new rows. Seeded by `seed`: the same row gets the same databases."""
    tables = table_columns(conn)
    rows = stored_rows(conn, tables)
    samples, literals = value_pools(tables, rows, gold_sql)
    first, last = schema_sql(conn)
    rng = random.Random(seed)
    databases = []
    for _ in range(count):
        filled = {table: rows[table] + [random_row(columns, samples, literals, rng) for _ in range(rng.randint(*SUITE_ROWS))]
                  for table, columns in tables.items()}
        try:  # keep the rows SQLite kept (a duplicate key is ignored), so both orders hold the same data
            with closing(new_database(";\n".join([*first, *inserts_sql(tables, filled)]))) as db:
                filled = stored_rows(db, tables)
        except SandboxError:  # random rows the schema refuses (a STRICT table ...): one database fewer
            continue
        databases.append(tuple(";\n".join([*first, *inserts_sql(tables, filled, reverse), *last])
                               for reverse in (False, True)))
    return databases


def stored_rows(conn, tables: dict) -> dict[str, list[tuple]]:
    return {table: run_query(conn, f"SELECT * FROM {_quoted(table)}", max_rows=MAX_ROWS).rows for table in tables}


def schema_sql(conn) -> tuple[list[str], list[str]]:
    """The sample database's CREATE statements as SQLite keeps them (translated already): tables and
    indexes, to run before the rows go in, and views and triggers, to run after (no trigger fires)."""
    objects = run_query(conn, "SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite%' "
                              "ORDER BY rowid").rows
    return ([sql for kind, sql in objects if kind in ("table", "index")],
            [sql for kind, sql in objects if kind in ("view", "trigger")])


def inserts_sql(tables: dict, rows: dict, reverse: bool = False) -> list[str]:
    statements = []
    for table, columns in tables.items():
        if rows[table]:
            names = ", ".join(_quoted(column) for column, _ in columns)
            values = ", ".join("(" + ", ".join(_sql_literal(v) for v in row) + ")"
                               for row in (reversed(rows[table]) if reverse else rows[table]))
            # OR IGNORE: a row that breaks a PRIMARY KEY, UNIQUE or CHECK constraint is skipped, not fatal.
            statements.append(f"INSERT OR IGNORE INTO {_quoted(table)} ({names}) VALUES {values}")
    return statements


def table_columns(conn) -> dict[str, list[tuple[str, str]]]:
    """{table: [(column, kind)]} with kind int, real, text, date or bool, from the declared types."""
    names = run_query(conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'").rows
    return {name: [(column, column_kind(declared)) for _, column, declared, *_ in
                   run_query(conn, f"PRAGMA table_info({_quoted(name)})").rows] for (name,) in names}


def column_kind(declared: str) -> str:
    declared = (declared or "").upper()
    for kind, markers in (("date", ("DATE", "TIME")), ("bool", ("BOOL",)), ("int", ("INT",)),
                          ("text", ("CHAR", "CLOB", "TEXT")), ("real", ("REAL", "FLOA", "DOUB", "DEC", "NUM"))):
        if any(marker in declared for marker in markers):
            return kind
    return "text"


def value_pools(tables: dict, rows: dict, gold_sql: str) -> tuple[dict, dict]:
    """({column name: sample values}, {column name: gold literals}) worth reusing: the column's values
    in the sample rows, and the literals the gold compares it with. Columns the gold joins on share
    their sample values, so that new rows find partners."""
    samples, literals = defaultdict(list), defaultdict(list)
    for table, columns in tables.items():
        for row in rows[table]:
            for (column, _), value in zip(columns, row):
                if value is not None:
                    samples[column.lower()].append(value)
    tree = parse(gold_sql)
    for predicate in tree.find_all(exp.Predicate) if tree is not None else ():
        columns = {column.name.lower() for column in predicate.find_all(exp.Column)}
        values = [value for literal in predicate.find_all(exp.Literal)
                  for value in literal_values(literal, isinstance(predicate, (exp.Like, exp.ILike)))]
        for column in columns:
            literals[column] += values
        if len(columns) > 1 and not values:  # a join condition
            shared = [value for column in columns for value in samples[column]]
            for column in columns:
                samples[column] = list(shared)
    return samples, literals


def literal_values(literal: exp.Literal, in_like: bool) -> list:
    """A gold literal and its neighbours, so both sides of `> 1000` or `< '2023-06-02'` turn up."""
    text = literal.this
    if not literal.is_string:
        try:
            number = int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return []
        return [number - 1, number, number + 1]
    if in_like:  # '%Patel%' -> 'Patel', 'xPatel', 'Patelx' ...: strings the pattern matches
        return [text.replace("%", filler).replace("_", "a") for filler in ("", "x", "Zz ")]
    if (day := _date(text)) is not None:
        return [_shift(text, day, -1), text, _shift(text, day, 1)]
    return [text]


def random_row(columns: list[tuple[str, str]], samples: dict, literals: dict, rng: random.Random) -> list:
    return [random_value(kind, samples[column.lower()], literals[column.lower()], rng) for column, kind in columns]


def random_value(kind: str, samples: list, literals: list, rng: random.Random):
    """A value for a column of this kind (only values of that kind are reused): often one of the
    gold's literals for it, else often a sample value, else a fresh one in and around their range."""
    samples, literals = [v for v in samples if _fits(kind, v)], [v for v in literals if _fits(kind, v)]
    for pool in (literals, samples):
        if pool and rng.random() < POOL_SHARE:
            return rng.choice(pool)
    known = samples + literals
    if kind == "bool":
        return rng.randint(0, 1)
    if kind in ("int", "real"):
        low, high = min(known, default=0), max(known, default=100)
        spread = max(high - low, 10)
        low, high = (max(low - spread, 0) if low >= 0 else low - spread), high + spread
        return rng.randint(int(low), int(high)) if kind == "int" else round(rng.uniform(low, high), 2)
    if kind == "date":
        base = rng.choice(known) if known else "2022-06-15"
        return _shift(base, _date(base), rng.randint(-400, 400))
    return "".join(rng.choices(string.ascii_letters, k=rng.randint(3, 10)))


def _fits(kind: str, value) -> bool:
    if kind in ("int", "real", "bool"):
        return isinstance(value, (int, float))
    if kind == "date":
        return isinstance(value, str) and _date(value) is not None
    return isinstance(value, str)


def _date(text: str) -> datetime.date | None:
    """The date a 'YYYY-MM-DD...' string starts with, or None."""
    try:
        return datetime.date.fromisoformat(text[:10])
    except (TypeError, ValueError):
        return None


def _shift(text: str, day: datetime.date, days: int) -> str:
    """The date string moved by `days`, keeping whatever follows the date (a time of day)."""
    return (day + datetime.timedelta(days=days)).isoformat() + text[10:]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)

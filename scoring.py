"""The judge: a model's answer against a row's gold SQL, run in the SQL sandbox.

    gold = prepare_gold(row["sql_context"], row["sql"])   # once per row, shared by every model judged
    verdict = judge(gold, answer)                          # per model answer

A read query is right when it returns the gold's rows (as a multiset; as a list when the gold has ORDER BY,
where rows that tie on the gold's sort keys may come in any order) and changes nothing. A data- or
schema-changing query is right when the database ends in the gold's state: every table with its rows, every
view with its rows, indexes and triggers by their definitions. Values compare exactly (2 is 2.0), floats to
10 significant digits; the number of columns must match. Gretel's sample tables hold 1-5 rows, so a wrong
query often gives the gold's answer by luck: each row is also judged, test-suite style, on extra databases
made from its schema with random rows that reuse the gold's literals; a test-suite-correct answer agrees
on all of them, except those where the gold's own result depends on the order rows were stored in.

Everything about understanding SQL lives here: finding it in an answer, reading it with sqlglot,
translating MySQL and PostgreSQL to SQLite, comparing results. The sandbox only runs it.
"""

from __future__ import annotations

import datetime
import logging
import random
import re
import sqlite3
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

import sqlglot
import sqlparse
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from sandbox import MAX_ROWS, TIMEOUT_S, Job, Outcome, QueryResult, Sandbox, SandboxError, default_sandbox

# The judge reads many texts sqlglot cannot parse (model answers, trigger bodies) on purpose: its fallback warnings are noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

SUITE_SIZE = 10  # extra test-suite databases per row
SUITE_ROWS = (3, 8)  # random rows added to each table of a test-suite database (min, max)
POOL_SHARE = 0.4  # chance a value is one of the gold's literals for its column; failing that, a sample value
DIALECTS = ("sqlite", "mysql", "postgres")  # the flavours gretel's SQL comes in
SQLGLOT_GIVES_UP = (SqlglotError, RecursionError)  # RecursionError: a runaway answer nested past Python's stack
STATEMENT_TYPES = (exp.Query, exp.Values, exp.DML, exp.DDL, exp.Alter, exp.Drop, exp.TruncateTable)
SQL_FENCE_TAGS = frozenset({"sql", "sqlite", "mysql", "postgresql", "postgres"})
FENCED_BLOCK = re.compile(r"```[ \t]*(\w*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)  # an unclosed fence runs to the end
SQL_START = re.compile(r"(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|REPLACE)\b", re.IGNORECASE)


@dataclass
class Expected:
    """What a right answer does on one database: the gold's end state (when the gold writes), or its result."""

    state: dict | None = None  # canonical_state() of the end state
    width: int = 0  # the result's number of columns
    rows: list[tuple] = field(default_factory=list)  # canonical rows, in the gold's order
    ordered: bool = False
    # Where rows tie on the gold's ORDER BY keys: (start, end, [row lists any of which is right there]).
    ties: list[tuple[int, int, list[list[tuple]]]] | None = None


@dataclass
class Gold:
    """One row's gold query, made ready to judge answers against."""

    context: str  # CREATE TABLE + INSERT statements: the sample database
    sql: str  # the gold as the dataset has it
    schema: tuple[str, ...] = ()  # the context's statements as SQLite runs them (translated where needed)
    runnable: str | None = None  # the gold as SQLite runs it
    writes: bool = False  # it changes the data or the schema: judged by the end state
    ordered: bool = False
    expected: Expected | None = None  # on the sample rows
    suite: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)  # (schema, rows reversed)
    tie_breaks: list[str] = field(default_factory=list)  # the gold with two opposite tie-breaks (ORDER BY only)
    error: str | None = None  # why the gold cannot run: then the row is reported apart, never judged
    normalised: str = ""  # normalise(sql), for exact match
    timeout_s: float = TIMEOUT_S
    sandbox: Sandbox | None = field(default=None, repr=False)
    _suite_expected: list | None = field(default=None, repr=False)

    def suite_expected(self) -> list[Expected | None]:
        """What a right answer does on each test-suite database, computed once; None where that database
        cannot judge: the gold fails there, or its result depends on the order the rows were stored in."""
        if self._suite_expected is None:
            jobs = [job for forward, backward in self.suite for job in self.gold_jobs(forward, backward)]
            outcomes = iter(self.sandbox.run_all(jobs))
            per_database = len(jobs) // max(len(self.suite), 1)
            self._suite_expected = [settled([next(outcomes) for _ in range(per_database)], self.ordered)
                                    for _ in self.suite]
        return self._suite_expected

    def gold_jobs(self, *schemas: tuple[str, ...]) -> list[Job]:
        """The gold on each schema, then (ORDER BY only) its two tie-broken forms on the first."""
        job = Job(queries=(self.runnable,), state=self.writes, timeout_s=self.timeout_s)
        return ([replace(job, schema=schema) for schema in schemas]
                + [replace(job, schema=schemas[0], queries=(sql,)) for sql in self.tie_breaks])


@dataclass
class Verdict:
    sql: str | None  # the SQL found in the answer
    parses: bool  # sqlglot reads it as one SQL statement
    exact_match: bool  # the gold's text, up to whitespace and keyword case
    runs: bool = False  # its SQL ran on the sample rows (right or wrong)
    execution_correct: bool | None = None  # None: the gold cannot run, the row is not judged
    test_suite_correct: bool | None = None
    error: str | None = None  # why it is wrong (or not judged); None when right


# ---------------------------------------------------------------- judging


def prepare_gold(context: str, gold_sql: str, suite_size: int = SUITE_SIZE, seed: int = 0,
                 timeout_s: float = TIMEOUT_S, sandbox: Sandbox | None = None) -> Gold:
    """Run the gold on the sample rows and make its test-suite databases; Gold.error says why not."""
    gold = Gold(context=context, sql=gold_sql, normalised=normalise(gold_sql), timeout_s=timeout_s,
                sandbox=sandbox or default_sandbox())
    try:
        gold.schema = load_schema(context, gold.sandbox, timeout_s)
    except SandboxError as error:
        gold.error = f"the schema fails: {error}"
        return gold
    try:
        start = gold.sandbox.run(Job(gold.schema, state=True, timeout_s=timeout_s))
        # The end state too: whether the gold writes is known only once it has run.
        first, gold.runnable = run_sql(gold.sandbox, Job(gold.schema, state=True, timeout_s=timeout_s), gold_sql)
        gold.writes = first.wrote
        gold.ordered = not gold.writes and has_order_by(gold.runnable)
        if gold.ordered:
            gold.tie_breaks = tie_broken(gold.runnable, len(first.results[0].columns))
        tie_broken_runs = gold.sandbox.run_all(gold.gold_jobs(gold.schema)[1:])
        gold.expected = settled([first, *tie_broken_runs], gold.ordered, sample=True)
        gold.suite = suite_databases(gold.sandbox, start.state, gold.runnable, suite_size,
                                     seed=f"{seed}\n{context}\n{gold_sql}")
    except SandboxError as error:
        gold.error = f"the gold SQL fails: {error}"
    return gold


def judge(gold: Gold, answer: str) -> Verdict:
    """The verdict on one answer: execution-correct on the sample rows, test-suite-correct on all."""
    sql = extract_sql(answer or "")
    verdict = Verdict(sql=sql, parses=sql is not None and parse(sql) is not None,
                      exact_match=sql is not None and normalise(sql) == gold.normalised)
    if gold.error:
        verdict.error = f"not judged: {gold.error}"
        return verdict
    verdict.execution_correct = verdict.test_suite_correct = False
    if sql is None:
        verdict.error = "no SQL in the answer"
        return verdict
    try:
        got, runnable = run_sql(gold.sandbox, Job(gold.schema, state=gold.writes, timeout_s=gold.timeout_s), sql)
    except SandboxError as error:
        verdict.error = f"the prediction fails: {error}"
        return verdict
    verdict.runs = True
    verdict.error = difference(gold.expected, got)
    verdict.execution_correct = verdict.error is None
    if verdict.execution_correct:
        verdict.error = suite_disagreement(gold, runnable)
        verdict.test_suite_correct = verdict.error is None
    return verdict


def suite_disagreement(gold: Gold, runnable: str) -> str | None:
    """Why the prediction parts from the gold on a test-suite database, or None when it never does."""
    judging = [(number, (forward, _), expected) for number, ((forward, _), expected)
               in enumerate(zip(gold.suite, gold.suite_expected()), start=1) if expected is not None]
    jobs = [Job(forward, (runnable,), gold.writes, gold.timeout_s) for _, (forward, _), _ in judging]
    for (number, _, expected), got in zip(judging, gold.sandbox.run_all(jobs)):
        where = f"test-suite database {number} of {len(gold.suite)}"
        if isinstance(got, SandboxError):
            return f"right on the sample rows, but fails on {where}: {got}"
        if (reason := difference(expected, got)) is not None:
            return f"right on the sample rows, but on {where} it {reason}"
    return None


def settled(outcomes: list, ordered: bool, sample: bool = False) -> Expected | None:
    """What a right answer does, from the gold's outcomes on one database: [as stored, (with the rows
    stored in reverse,) tie-broken ascending, tie-broken descending (ORDER BY only)]. On a test-suite
    database, None when the gold fails or the reversed rows give another answer: its result is arbitrary
    there. On the sample rows the gold must run (a SandboxError is raised)."""
    if failure := next((o for o in outcomes if isinstance(o, SandboxError)), None):
        if sample:
            raise failure
        return None
    first, others = outcomes[0], outcomes[1:]
    if first.wrote:
        expected = Expected(state=canonical_state(first.state))
    else:
        result = first.results[0]
        rows = canonical_rows(result)
        expected = Expected(width=len(result.columns), rows=rows, ordered=ordered)
        if ordered:
            ascending, descending = (canonical_rows(o.results[0]) for o in others[-2:])
            expected.ties = None if ascending == descending else tie_groups(rows, ascending, descending)
    if not sample and difference(expected, others[0]) is not None:
        return None
    return expected


def tie_groups(rows: list[tuple], ascending: list[tuple], descending: list[tuple]) -> list:
    """The stretches where the gold's two tie-broken orders hold the same rows in another order: rows that tie
    on its sort keys. A stretch still open at the end (LIMIT cut through a tie) may hold any of the three."""
    groups, start, up, down = [], 0, Counter(), Counter()
    for end, (a, d) in enumerate(zip(ascending, descending), start=1):
        up[a] += 1
        down[d] += 1
        if up == down:
            groups.append((start, end, [ascending]))
            start, up, down = end, Counter(), Counter()
    if start < len(rows):
        groups.append((start, len(rows), [ascending, descending, rows]))
    return groups


def difference(expected: Expected, got: Outcome) -> str | None:
    """How the answer's outcome differs from what a right answer does, in words; None if it does not."""
    if expected.state is not None:
        return state_difference(expected.state, canonical_state(got.state))
    if got.wrote:
        return "changes the database, while the gold only reads it"
    result = got.results[0]
    if len(result.columns) != expected.width:
        return f"returns {len(result.columns)} columns, the gold {expected.width}"
    rows = canonical_rows(result)
    if len(rows) != len(expected.rows):
        return f"returns {len(rows)} rows, the gold {len(expected.rows)}"
    # Right columns in another order count too: rows are compared once more with the values of each row
    # sorted. Looser than one column permutation for all rows, a price worth paying: `SELECT name, id`
    # for the gold's `SELECT id, name` is common and right, while such coincidences in wrong answers are rare.
    if any(same_rows(expected, rows, view) for view in (tuple, sorted_values)):
        return None
    if expected.ordered and Counter(rows) == Counter(expected.rows):
        return "returns the gold's rows in another order (the gold sorts with ORDER BY)"
    return "returns other values than the gold"


def same_rows(expected: Expected, rows: list[tuple], view) -> bool:
    def seen(some_rows):
        return [view(row) for row in some_rows]

    if not expected.ordered:
        return Counter(seen(rows)) == Counter(seen(expected.rows))
    if expected.ties is None:
        return seen(rows) == seen(expected.rows)
    return all(any(Counter(seen(rows[start:end])) == Counter(seen(allowed[start:end])) for allowed in alternatives)
               for start, end, alternatives in expected.ties)


def state_difference(expected: dict, got: dict) -> str | None:
    for part in ("tables", "views", "indexes", "triggers"):
        for name in sorted(expected[part].keys() | got[part].keys()):
            if expected[part].get(name) != got[part].get(name):
                return f"leaves the database in another state than the gold ({part[:-1]} {name})"
    return None


# ---------------------------------------------------------------- canonical values


def canonical(value):
    """A value that equals another's canonical value when they should count as equal: integers exactly
    (2 == 2.0 already in Python), other floats to 10 significant digits (0.1 + 0.2 is 0.3)."""
    if isinstance(value, float) and not value.is_integer():
        return float(f"{value:.10g}")
    return value


def canonical_rows(result: QueryResult) -> list[tuple]:
    return [tuple(canonical(value) for value in row) for row in result.rows]


def sorted_values(row: tuple) -> tuple:
    """The row's values in SQLite's order of types (NULL, numbers, text, blobs), then by value."""
    rank = {type(None): 0, int: 1, float: 1, str: 2, bytes: 3}
    return tuple(sorted(row, key=lambda value: (rank[type(value)], value if value is not None else 0)))


def canonical_state(state: dict) -> dict:
    """A database state that compares equal when the databases are alike: table and column names in any case,
    declared types by SQLite's type affinity, rows as multisets of canonical values; views by their rows;
    indexes and triggers by their definitions (an index's name is not part of it)."""
    def contents(columns, rows, typed):
        names = tuple((name.lower(), affinity(declared) if typed else None) for name, declared in columns)
        return names, Counter(tuple(canonical(value) for value in row) for row in rows)

    definitions = {"indexes": {}, "triggers": {}}
    for kind, name, table, sql in state["objects"]:
        if kind == "index" and sql:
            definitions["indexes"][f"{table.lower()}: {index_definition(sql)}"] = True
        elif kind == "trigger":
            definitions["triggers"][name.lower()] = normalise(sql)
    return {"tables": {name.lower(): contents(*content, True) for name, content in state["tables"].items()},
            "views": {name.lower(): contents(*content, False) for name, content in state["views"].items()},
            **definitions}


def affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (its rules, in its order)."""
    declared = (declared or "").upper()
    if "INT" in declared:
        return "INTEGER"
    if any(marker in declared for marker in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not declared or "BLOB" in declared:
        return "BLOB"
    if any(marker in declared for marker in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def index_definition(sql: str) -> str:
    """CREATE INDEX without the index's name, as sqlglot writes it with names in lower case."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except SQLGLOT_GIVES_UP:
        return normalise(sql)
    tree.this.set("this", None)
    tree.set("exists", False)
    return tree.sql(dialect="sqlite", normalize=True)


# ---------------------------------------------------------------- running SQL text in the sandbox


def load_schema(context: str, sandbox: Sandbox, timeout_s: float = TIMEOUT_S) -> tuple[str, ...]:
    """The context's statements as SQLite runs them: each as written, or else sqlglot's SQLite translation
    of it read as MySQL, then as PostgreSQL. Raises SandboxError naming the statement that fails."""
    schema = split_statements(context)
    while True:
        try:
            outcome = sandbox.run(Job(schema, timeout_s=timeout_s))
        except SandboxError as error:
            failed = error.statement
            if error.stopped or failed is None or len(schema[failed]) > 1 or not translations(schema[failed][0]):
                raise
            schema = (*schema[:failed], (schema[failed][0], *translations(schema[failed][0])), *schema[failed + 1:])
            continue
        return tuple(statement[index] for statement, index in zip(schema, outcome.schema_chosen))


def run_sql(sandbox: Sandbox, job: Job, sql: str) -> tuple[Outcome, str]:
    """`job` with `sql` as its query: as written, or else its first SQLite translation that runs
    (gretel's SQL is partly MySQL or PostgreSQL). (the outcome, the SQL that ran); raises SandboxError
    in SQLite's words about the SQL as written."""
    try:
        return sandbox.run(replace(job, queries=((sql,),))), sql
    except SandboxError as error:
        alternatives = translations(sql)
        if error.stopped or not alternatives:  # a query stopped by a limit is not run a second time
            raise
        try:
            outcome = sandbox.run(replace(job, queries=(tuple(alternatives),)))
        except SandboxError:
            raise error from None
        return outcome, alternatives[outcome.chosen[0]]


def execute(context: str, sql: str, sandbox: Sandbox, timeout_s: float = TIMEOUT_S, max_rows: int = MAX_ROWS) -> QueryResult:
    """The result of `sql` on a fresh database made from `context` (the chat's way to run an answer)."""
    schema = load_schema(context, sandbox, timeout_s)
    return run_sql(sandbox, Job(schema, timeout_s=timeout_s, max_rows=max_rows), sql)[0].results[0]


# ---------------------------------------------------------------- execution-guided answers


@dataclass
class Ballot:
    winner: int | None  # the chosen answer's index; None when no candidate's SQL runs
    agreeing: int  # candidates whose SQL gives the winner's result (the winner included)
    running: int  # candidates whose SQL runs at all


def vote(answers: list[str], schema: tuple[str, ...], sandbox: Sandbox, timeout_s: float = TIMEOUT_S) -> Ballot:
    """Execution-guided choice among a model's candidate answers, the most likely first: run each one's SQL
    on `schema` (load_schema's statements), drop those without SQL or that fail, and choose the answer whose
    result (or end state, for a data change) most candidates share; a tie goes to the most likely."""
    outcomes = {}
    for index, answer in enumerate(answers):
        if (sql := extract_sql(answer or "")) is None:
            continue
        try:
            outcomes[index] = run_sql(sandbox, Job(schema, state=True, timeout_s=timeout_s), sql)[0]
        except SandboxError:
            continue
    # Two candidates agree when the judge would take one's outcome for the other's (rows as multisets).
    expected = {index: settled([outcome], ordered=False, sample=True) for index, outcome in outcomes.items()}
    votes = {index: sum(difference(expected[index], other) is None for other in outcomes.values()) for index in outcomes}
    if not votes:
        return Ballot(None, 0, 0)
    winner = max(votes, key=lambda index: (votes[index], -index))
    return Ballot(winner, votes[winner], len(votes))


# ---------------------------------------------------------------- reading SQL text


def extract_sql(answer: str) -> str | None:
    """The SQL in a model's answer: the first ```sql block, else the first plain ``` block, else the
    answer's first statement when it starts with a SQL keyword; None when there is no SQL."""
    blocks = [(tag.lower(), body) for tag, body in FENCED_BLOCK.findall(answer)]
    fenced = next((body for tag, body in blocks if tag in SQL_FENCE_TAGS), None)
    if fenced is None:
        fenced = next((body for tag, body in blocks if not tag), None)
    if fenced is not None:
        return _clean_sql(fenced)
    text = answer.strip()
    if not SQL_START.match(text):
        return None
    # A bare statement ends at its `;` or at the first blank line, where prose usually begins.
    statements = split_statements(re.split(r"\n\s*\n", text, maxsplit=1)[0])
    return _clean_sql(statements[0][0]) if statements else None


def _clean_sql(sql: str) -> str | None:
    return sql.strip().rstrip(";").strip() or None


def split_statements(sql: str) -> tuple[tuple[str], ...]:
    """The statements of a text of several separated by `;`, each as a one-alternative tuple. SQLite's own
    tokenizer decides where one ends, so a `;` inside a string or a trigger body does not split."""
    statements, current = [], ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            statements.append(current[:-1].strip())
            current = ""
    statements.append(current[:-1].strip())  # the text after the last complete statement
    return tuple((statement,) for statement in statements if statement)


def parse(sql: str) -> exp.Expression | None:
    """sqlglot's tree of one SQL statement, read as SQLite, MySQL or PostgreSQL; None when none reads it."""
    for dialect in DIALECTS:
        try:
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        except SQLGLOT_GIVES_UP:
            continue
        if len(statements) == 1 and isinstance(statements[0], STATEMENT_TYPES):
            return statements[0]
    return None


def has_order_by(sql: str) -> bool:
    """Whether the outermost query sorts its rows (an ORDER BY in a subquery or window does not count)."""
    tree = parse(sql)
    return tree is not None and tree.args.get("order") is not None


def translations(sql: str) -> list[str]:
    """sqlglot's one-statement SQLite translations of `sql` read as MySQL, then as PostgreSQL, without
    repeats. Unsupported bits (ENGINE=InnoDB ...) are dropped rather than refused."""
    found = []
    for dialect in DIALECTS[1:]:
        try:
            statements = sqlglot.transpile(sql, read=dialect, write="sqlite", unsupported_level=ErrorLevel.IGNORE)
        except SQLGLOT_GIVES_UP:
            continue
        if len(statements) == 1 and statements[0] not in found and statements[0] != sql:
            found.append(statements[0])
    return found


def normalise(sql: str) -> str:
    """SQL text for exact match: comments and the final `;` dropped, whitespace collapsed (also
    around commas and parentheses), keywords upper-cased. Names and literals keep their case."""
    try:
        statements = sqlparse.parse(sqlparse.format(sql, strip_comments=True).strip().rstrip(";"))
    except sqlparse.exceptions.SQLParseError:  # nested past sqlparse's limit (100 levels): a runaway answer, no gold
        return " ".join(sql.split())
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


def suite_databases(sandbox: Sandbox, state: dict, gold_sql: str, count: int, seed: str) -> list[tuple[tuple, tuple]]:
    """`count` test-suite databases for the sample database whose end state is `state`, each as a pair of
    schemas: its tables and sample rows plus random rows for every table, and the same with every table's
    rows inserted in reverse. Values fit the column types and are drawn partly from the sample rows and
    the gold's literals (and their neighbours: 1000 brings 999 and 1001), so that the gold's conditions
    split the new rows. Seeded by `seed`: the same row gets the same databases."""
    tables = {name: [(column, column_kind(declared)) for column, declared in columns]
              for name, (columns, _) in state["tables"].items()}
    rows = {name: list(table_rows) for name, (_, table_rows) in state["tables"].items()}
    samples, literals = value_pools(tables, rows, gold_sql)
    first = tuple(sql for kind, _, _, sql in state["objects"] if kind in ("table", "index") and sql)
    last = tuple(sql for kind, _, _, sql in state["objects"] if kind in ("view", "trigger"))
    rng = random.Random(seed)
    filled = [{table: rows[table] + [random_row(columns, samples, literals, rng) for _ in range(rng.randint(*SUITE_ROWS))]
               for table, columns in tables.items()} for _ in range(count)]
    # Keep the rows SQLite kept (a duplicate key is ignored), so both orders hold the same data.
    stored = sandbox.run_all([Job((*first, *inserts_sql(tables, rows_of)), state=True) for rows_of in filled])
    return [tuple((*first, *inserts_sql(tables, {name: kept for name, (_, kept) in outcome.state["tables"].items()},
                                        reverse), *last) for reverse in (False, True))
            for outcome in stored if not isinstance(outcome, SandboxError)]  # rows the schema refuses: one fewer


def inserts_sql(tables: dict, rows: dict, reverse: bool = False) -> list[str]:
    statements = []
    for table, columns in tables.items():
        if rows.get(table):
            names = ", ".join(_quoted(column) for column, _ in columns)
            values = ", ".join("(" + ", ".join(_sql_literal(v) for v in row) + ")"
                               for row in (reversed(rows[table]) if reverse else rows[table]))
            # OR IGNORE: a row that breaks a PRIMARY KEY, UNIQUE or CHECK constraint is skipped, not fatal.
            statements.append(f"INSERT OR IGNORE INTO {_quoted(table)} ({names}) VALUES {values}")
    return statements


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

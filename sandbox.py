"""The SQL sandbox: throwaway in-memory SQLite databases that run untrusted SQL safely.

Evaluation runs gold and predicted SQL here and compares the results; the chat UI runs the
model's SQL here on the user's schema. Every database lives in memory only, refuses to open files
or load extensions, and stops any statement that outruns its time limit. A statement may change
the data (INSERT, UPDATE, CREATE ...): it only touches the throwaway database.

Deliberately imports nothing else of ours: the sandbox must stay safe to use from anywhere.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

# Upper bounds SQLite enforces on every statement, schema and query alike.
_LIMITS = {
    # Largest string, blob or row: zeroblob(), randomblob(), printf() or group_concat() cannot
    # build a value big enough to exhaust memory.
    sqlite3.SQLITE_LIMIT_LENGTH: 1_000_000,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 1_000_000,
    # No second database, on disk or in memory: ATTACH fails even if the authorizer missed it.
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
    # Deeply nested expressions and triggers cost C stack, not time the progress handler sees.
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 200,
    sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH: 10,
    # Sorts stay on the calling thread, where the time limit applies.
    sqlite3.SQLITE_LIMIT_WORKER_THREADS: 0,
}
_MAX_PAGES = 25_600  # 4 KiB pages: each database (main and temp) stops growing at 100 MiB
_PROGRESS_EVERY = 1_000  # SQLite VM instructions between two looks at the clock

# PRAGMAs that only describe the schema. Every other PRAGMA is refused, since many of them change
# settings (journal_mode, writable_schema ...) and a few can reach the file system.
_READ_ONLY_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
)
_TRANSLATE_FROM = ("mysql", "postgres")  # the flavours gretel's SQL comes in besides SQLite's
_SQL_FENCE_TAGS = frozenset({"sql", "sqlite", "mysql", "postgresql", "postgres"})
_FENCED_BLOCK = re.compile(r"```[ \t]*(\w*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)  # an unclosed fence runs to the end
_SQL_START = re.compile(r"(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|REPLACE)\b", re.IGNORECASE)
_QUOTED_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?\*/", re.DOTALL)
_INNERMOST_PARENTHESES = re.compile(r"\([^()]*\)")
_WORD = re.compile(r"[A-Za-z_]+")
_STATEMENT_VERBS = frozenset({"SELECT", "VALUES", "INSERT", "UPDATE", "DELETE", "REPLACE"})


class SandboxError(Exception):
    """Any failure in the sandbox, with a one-line reason in words."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool  # True when the query had more than max_rows rows and only the first ones are here


class _Guard:
    """What the SQLite callbacks of one connection share: the current deadline, and the reason the
    authorizer last refused something (SQLite itself only says it was not authorized)."""

    def __init__(self) -> None:
        self.deadline = math.inf
        self.refusal: str | None = None

    def past_deadline(self) -> bool:
        # Used as the progress handler: a true return makes SQLite interrupt the statement.
        return time.monotonic() > self.deadline

    def authorize(self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        refusal = _refusal(action, arg1, arg2)
        if refusal is None:
            return sqlite3.SQLITE_OK
        self.refusal = refusal
        return sqlite3.SQLITE_DENY


def _refusal(action: int, arg1: str | None, arg2: str | None) -> str | None:
    """Why the sandbox refuses this authorizer action, or None when it is allowed."""
    if action == sqlite3.SQLITE_ATTACH:
        # VACUUM INTO 'file' and plain VACUUM reach the authorizer as an ATTACH of the target (an
        # empty name for VACUUM), so this one rule keeps all three away from files.
        return "ATTACH is not allowed in the sandbox (nor VACUUM, which attaches a database too)"
    if action == sqlite3.SQLITE_DETACH:
        return "DETACH is not allowed in the sandbox"
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in _READ_ONLY_PRAGMAS:
        return f"PRAGMA {arg1} is not allowed in the sandbox"
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension":
        return "load_extension() is not allowed in the sandbox"
    return None


class _SandboxConnection(sqlite3.Connection):
    """A connection that carries its guard, so run_query can set the deadline and explain refusals.
    The guard does not point back at the connection: no reference cycle keeps a database alive."""

    guard: _Guard


def _protected_connection() -> _SandboxConnection:
    # Autocommit: every statement stands alone, so a failed or interrupted one leaves no open
    # transaction behind. check_same_thread=False lets the UI's worker threads take turns on one
    # database; callers must not use one connection from two threads at the same time.
    conn = sqlite3.connect(":memory:", factory=_SandboxConnection, isolation_level=None, check_same_thread=False)
    if hasattr(conn, "enable_load_extension"):  # absent where Python was built without extension loading
        conn.enable_load_extension(False)
    for limit, value in _LIMITS.items():
        conn.setlimit(limit, value)
    # These PRAGMAs run before the authorizer, which would refuse them.
    conn.execute("PRAGMA temp_store = MEMORY")  # temporary tables, indices and sorts never go to a file
    conn.execute(f"PRAGMA main.max_page_count = {_MAX_PAGES}")
    conn.execute(f"PRAGMA temp.max_page_count = {_MAX_PAGES}")
    conn.guard = _Guard()
    conn.set_authorizer(conn.guard.authorize)
    conn.set_progress_handler(conn.guard.past_deadline, _PROGRESS_EVERY)
    return conn


@contextmanager
def _time_limit(guard: _Guard, timeout_s: float) -> Iterator[None]:
    guard.deadline = time.monotonic() + timeout_s
    guard.refusal = None
    try:
        yield
    finally:
        guard.deadline = math.inf


def _sandbox_reason(error: sqlite3.Error, guard: _Guard, timeout_s: float, what: str) -> str | None:
    """The reason in words when the sandbox itself stopped the statement, else None (then SQLite's
    own message, like "no such column: x", says it best)."""
    message = _one_line(error)
    # SQLite words a refusal by where it happened ("not authorized", "authorization denied", "not
    # authorized to use function: ..."); checking it keeps a stale refusal from explaining another error.
    if "authoriz" in message and guard.refusal:
        return guard.refusal
    if message == "interrupted" and guard.past_deadline():
        return f"{what} stopped after {float(timeout_s)} s time limit"
    if message.startswith("You can only execute one statement"):
        return f"{what} holds several statements; the sandbox runs one at a time"
    if message == "string or blob too big":
        return f"a value grew past the sandbox's {_LIMITS[sqlite3.SQLITE_LIMIT_LENGTH]:,}-byte limit"
    if message == "database or disk is full":
        return f"the database grew past the sandbox's {_MAX_PAGES * 4 // 1024} MiB limit"
    return None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _split_statements(sql: str) -> list[str]:
    """The statements in a text of several separated by `;`, without the `;`. SQLite's own
    tokenizer decides where one ends, so a `;` inside a string or trigger body does not split."""
    statements, current = [], ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            statements.append(current[:-1].strip())
            current = ""
    statements.append(current[:-1].strip())  # the text after the last complete statement
    return [statement for statement in statements if statement]


def new_database(schema_sql: str, timeout_s: float = 2.0) -> sqlite3.Connection:
    """A fresh protected in-memory database with the statements of `schema_sql` (CREATE TABLE,
    INSERT ...) run in it. A statement SQLite rejects is retried as sqlglot's SQLite translation
    of it read as MySQL, then as PostgreSQL. Raises SandboxError naming the statement that fails."""
    conn = _protected_connection()
    statements = _split_statements(schema_sql)
    try:
        with _time_limit(conn.guard, timeout_s):
            for number, statement in enumerate(statements, start=1):
                _run_schema_statement(conn, statement, f"schema statement {number} of {len(statements)}", timeout_s)
    except SandboxError:
        conn.close()
        raise
    return conn


def _run_schema_statement(conn: _SandboxConnection, statement: str, label: str, timeout_s: float) -> None:
    try:
        conn.execute(statement)
    except sqlite3.Error as error:
        # Refused or timed-out statements get no second chance; the rest may be MySQL or PostgreSQL.
        if _sandbox_reason(error, conn.guard, timeout_s, "schema") is None and _run_translation(conn, statement):
            return
        reason = _sandbox_reason(error, conn.guard, timeout_s, "schema") or f"{label} fails: {_one_line(error)}"
        raise SandboxError(reason) from error


def _run_translation(conn: sqlite3.Connection, statement: str) -> bool:
    """Run the first of sqlglot's translations of `statement` that SQLite accepts; False if none does."""
    for translation in _translations(statement):
        try:
            for translated in translation:
                conn.execute(translated)
        except sqlite3.Error:
            continue
        return True
    return False


def run_query(conn: sqlite3.Connection, sql: str, timeout_s: float = 2.0, max_rows: int = 1000) -> QueryResult:
    """Run one statement on a database from new_database: at most timeout_s seconds, at most
    max_rows rows kept (truncated=True when there were more). Raises SandboxError on any failure;
    the connection answers the next query as before."""
    if not sql.strip():
        raise SandboxError("the query is empty")
    with _time_limit(conn.guard, timeout_s):
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)  # one row more than kept tells whether there were more
            columns = [column[0] for column in cursor.description or ()]
        except sqlite3.Error as error:
            raise SandboxError(_sandbox_reason(error, conn.guard, timeout_s, "query") or _one_line(error)) from error
        finally:
            cursor.close()  # resets an unfinished SELECT, so it holds no lock against the next statement
    return QueryResult(columns=columns, rows=rows[:max_rows], truncated=len(rows) > max_rows)


def database_state(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every user table as [column names, *rows sorted], so that two databases can be compared by
    their end state after data-changing statements, whatever order the rows went in."""
    try:
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
        return {name: _table_contents(conn, name) for (name,) in tables}
    except sqlite3.Error as error:
        raise SandboxError(f"cannot read the database state: {error}") from error


def _table_contents(conn: sqlite3.Connection, table: str) -> list[tuple]:
    quoted = '"' + table.replace('"', '""') + '"'
    columns = tuple(column[0] for column in conn.execute(f"SELECT * FROM {quoted} LIMIT 0").description)
    # SQLite sorts its own mixed-type values (NULL, numbers, text, blobs) without a Python key.
    order = ", ".join(str(position) for position in range(1, len(columns) + 1))
    return [columns, *conn.execute(f"SELECT * FROM {quoted} ORDER BY {order}").fetchall()]


def extract_sql(answer: str) -> str | None:
    """The SQL in a model's answer: the first ```sql block, else the first plain ``` block, else the
    answer's first statement when it starts with a SQL keyword; None when there is no SQL."""
    blocks = [(tag.lower(), body) for tag, body in _FENCED_BLOCK.findall(answer)]
    fenced = next((body for tag, body in blocks if tag in _SQL_FENCE_TAGS), None)
    if fenced is None:
        fenced = next((body for tag, body in blocks if not tag), None)
    if fenced is not None:
        return _clean_sql(fenced)
    text = answer.strip()
    if not _SQL_START.match(text):
        return None
    # A bare statement ends at its `;` or at the first blank line, where prose usually begins.
    first_paragraph = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    statements = _split_statements(first_paragraph)
    return _clean_sql(statements[0]) if statements else None


def _clean_sql(sql: str) -> str | None:
    cleaned = sql.strip().rstrip(";").strip()
    return cleaned or None


def _parse(sql: str) -> exp.Expression | None:
    """sqlglot's tree of a single statement read as SQLite, or None when it cannot be had."""
    try:
        statements = [statement for statement in sqlglot.parse(sql, read="sqlite") if statement is not None]
    except SqlglotError:
        return None
    return statements[0] if len(statements) == 1 else None


def _outer_level(sql: str) -> str:
    """The text of the outermost statement alone: quotes, comments and everything inside
    parentheses (subqueries, CTE bodies, OVER clauses) removed. The fallback when sqlglot fails."""
    text = _QUOTED_OR_COMMENT.sub(" ", sql)
    while (inner_removed := _INNERMOST_PARENTHESES.sub(" ", text)) != text:
        text = inner_removed
    return text


def is_read_query(sql: str) -> bool:
    """Whether the statement only reads: SELECT, WITH ... SELECT, a set operation or VALUES."""
    tree = _parse(sql)
    if tree is not None:
        return isinstance(tree, (exp.Query, exp.Values))
    words = _WORD.findall(_outer_level(sql).upper())
    if words and words[0] == "WITH":  # the verb follows the CTEs: WITH x AS (...) DELETE ...
        words = [word for word in words if word in _STATEMENT_VERBS]
    return bool(words) and words[0] in ("SELECT", "VALUES")


def has_order_by(sql: str) -> bool:
    """Whether the outermost query sorts its rows (an ORDER BY in a subquery or window does not count)."""
    tree = _parse(sql)
    if tree is not None:
        return tree.args.get("order") is not None
    return re.search(r"\bORDER\s+BY\b", _outer_level(sql), re.IGNORECASE) is not None


def _translations(sql: str) -> Iterator[list[str]]:
    """sqlglot's SQLite statements for `sql` read as each flavour in turn, skipping flavours it
    cannot read. Unsupported bits (ENGINE=InnoDB ...) are dropped rather than refused."""
    for dialect in _TRANSLATE_FROM:
        try:
            statements = sqlglot.transpile(sql, read=dialect, write="sqlite", unsupported_level=ErrorLevel.IGNORE)
        except SqlglotError:
            continue
        if statements:
            yield statements


def to_sqlite(sql: str, conn: sqlite3.Connection | None = None) -> str | None:
    """SQLite for MySQL- or PostgreSQL-flavoured `sql` (read as MySQL first), or None when sqlglot
    cannot translate it. Given a sandbox connection, only a translation that compiles against its
    tables counts (checked with EXPLAIN, which runs nothing): sqlglot's MySQL reading sometimes
    keeps functions SQLite lacks where the PostgreSQL reading does not. Meant as a fallback for SQL
    that fails as written: a valid SQLite query read as MySQL can change meaning ("x" is a string)."""
    for statements in _translations(sql):
        candidate = ";\n".join(statements)
        if conn is None or _compiles(conn, candidate):
            return candidate
    return None


def _compiles(conn: sqlite3.Connection, sql: str) -> bool:
    try:
        conn.execute(f"EXPLAIN {sql}").close()
    except sqlite3.Error:
        return False
    return True


def results_match(
    gold: QueryResult, pred: QueryResult, ordered: bool, rel_tol: float = 1e-6, abs_tol: float = 1e-6
) -> bool:
    """Whether two results hold the same rows: as lists when `ordered`, else as multisets. Numbers
    compare with tolerance (2 == 2.0); column names are ignored.

    When that fails and both have as many columns, the rows are compared once more with the values
    inside each row sorted, so a prediction listing the right columns in another order counts as
    right. That is looser than finding one column permutation for all rows (rows (1, 2) and (2, 1)
    become alike), a price worth paying: such coincidences are rare in a wrong answer, while
    `SELECT name, id` for gold's `SELECT id, name` is common and right."""

    def same(gold_rows: list[tuple], pred_rows: list[tuple]) -> bool:
        return _rows_match(gold_rows, pred_rows, ordered, rel_tol, abs_tol)

    if same(gold.rows, pred.rows):
        return True
    if len(gold.columns) != len(pred.columns):
        return False
    return same([_sorted_values(row) for row in gold.rows], [_sorted_values(row) for row in pred.rows])


def _rows_match(gold: list[tuple], pred: list[tuple], ordered: bool, rel_tol: float, abs_tol: float) -> bool:
    if len(gold) != len(pred):
        return False
    if not ordered:
        # Sorting both sides pairs equal rows up; see _value_key for why numbers sort coarsely.
        gold, pred = sorted(gold, key=_row_key), sorted(pred, key=_row_key)
    return all(_rows_equal(g, p, rel_tol, abs_tol) for g, p in zip(gold, pred))


def _rows_equal(gold: tuple, pred: tuple, rel_tol: float, abs_tol: float) -> bool:
    return len(gold) == len(pred) and all(_values_equal(g, p, rel_tol, abs_tol) for g, p in zip(gold, pred))


def _values_equal(gold: object, pred: object, rel_tol: float, abs_tol: float) -> bool:
    if isinstance(gold, (int, float)) and isinstance(pred, (int, float)):
        return math.isclose(gold, pred, rel_tol=rel_tol, abs_tol=abs_tol)
    return gold == pred


def _value_key(value: object) -> tuple:
    """A sort key for SQLite values of mixed types, in SQLite's order: NULL, numbers, text, blobs.
    Numbers sort by 6 significant digits, so values equal within the default tolerance sort as
    ties and the later columns decide; exact values could pair (1.0, 'b') with (1.0000000001, 'a')."""
    if value is None:
        return (0, 0.0)
    if isinstance(value, (int, float)):
        return (1, float(f"{value:.6g}"))
    if isinstance(value, str):
        return (2, value)
    return (3, value)


def _row_key(row: tuple) -> tuple:
    return tuple(_value_key(value) for value in row)


def _sorted_values(row: tuple) -> tuple:
    return tuple(sorted(row, key=_value_key))

"""The SQL sandbox on real SQLite: hostile SQL is stopped in time and touches no file, results
compare as evaluation needs, and gretel's own schemas and gold queries run."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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

LIMIT_S = 0.5
SLACK_S = 1.5  # how far past the limit a stopped statement may return (progress-handler granularity, slow CI)
THOUSAND_ROWS = (
    "CREATE TABLE n (x INTEGER); "
    "INSERT INTO n WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 1000) SELECT x FROM r"
)


@pytest.fixture
def in_empty_dir(tmp_path, monkeypatch):
    """Run in an empty directory that must stay empty: the sandbox never creates a file."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def db(in_empty_dir):
    conn = new_database(THOUSAND_ROWS)
    yield conn
    conn.close()


def result(rows, columns=None):
    width = len(rows[0]) if rows else 0
    return QueryResult(columns=columns or [f"c{i}" for i in range(width)], rows=rows, truncated=False)


# --- hostile SQL ------------------------------------------------------------------------------

HOSTILE_QUERIES = {
    "attach": ("ATTACH DATABASE 'x.db' AS x", "ATTACH is not allowed"),
    "load_extension": ("SELECT load_extension('x')", "load_extension() is not allowed"),
    "pragma_writable_schema": ("PRAGMA writable_schema=1", "PRAGMA writable_schema is not allowed"),
    "pragma_journal_mode": ("PRAGMA journal_mode=WAL", "PRAGMA journal_mode is not allowed"),
    "pragma_as_table": ("SELECT * FROM pragma_journal_mode", "PRAGMA journal_mode is not allowed"),
    "vacuum_into": ("VACUUM INTO 'out.db'", "ATTACH is not allowed"),
    "endless_recursive_cte": (
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
        "query stopped after 0.5 s time limit",
    ),
    "billion_row_cross_join": ("SELECT count(*) FROM n a, n b, n c", "query stopped after 0.5 s time limit"),
    "two_statements": ("SELECT 1; SELECT 2", "several statements"),
    "huge_value": ("SELECT zeroblob(50000000)", "byte limit"),
    "huge_table": (
        "CREATE TABLE big AS WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 200) "
        "SELECT zeroblob(900000) AS b FROM r",
        "MiB limit",
    ),
}


@pytest.mark.parametrize("sql, message", HOSTILE_QUERIES.values(), ids=HOSTILE_QUERIES.keys())
def test_hostile_query_is_stopped_in_time_and_the_connection_still_answers(db, sql, message):
    start = time.monotonic()
    with pytest.raises(SandboxError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        run_query(db, sql, timeout_s=LIMIT_S)
    assert time.monotonic() - start < LIMIT_S + SLACK_S
    assert "\n" not in str(caught.value)
    assert run_query(db, "SELECT count(*) FROM n").rows == [(1000,)]


def test_huge_result_never_returns_more_than_max_rows(db):
    sql = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 1000000) SELECT x FROM r"
    start = time.monotonic()
    try:
        got = run_query(db, sql, timeout_s=LIMIT_S, max_rows=100)
    except SandboxError as error:  # timing out instead is fine too
        assert "time limit" in str(error)
    else:
        assert got.truncated and got.rows == [(x,) for x in range(1, 101)]
    assert time.monotonic() - start < LIMIT_S + SLACK_S
    assert run_query(db, "SELECT max(x) FROM n").rows == [(1000,)]


def test_result_that_fits_is_not_truncated(db):
    got = run_query(db, "SELECT x FROM n WHERE x <= 3 ORDER BY x", max_rows=3)
    assert got == QueryResult(columns=["x"], rows=[(1,), (2,), (3,)], truncated=False)


HOSTILE_SCHEMAS = {
    "does_not_parse": ("CREAT TABLE t (a INT)", 'schema statement 1 of 1 fails: near "CREAT": syntax error'),
    "unknown_table": ("CREATE TABLE t (a INT); INSERT INTO u VALUES (1)", "schema statement 2 of 2 fails: no such table: u"),
    "attach": ("CREATE TABLE t (a INT); ATTACH 'x.db' AS x", "ATTACH is not allowed"),
    "vacuum_into": ("CREATE TABLE t (a INT); VACUUM INTO 'out.db'", "ATTACH is not allowed"),
    "endless": (
        "CREATE TABLE t (a INT); INSERT INTO t WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) "
        "SELECT x FROM r",
        "schema stopped after 0.5 s time limit",
    ),
}


@pytest.mark.parametrize("schema, message", HOSTILE_SCHEMAS.values(), ids=HOSTILE_SCHEMAS.keys())
def test_bad_schema_fails_in_time_with_a_clear_message(in_empty_dir, schema, message):
    start = time.monotonic()
    with pytest.raises(SandboxError) as caught:
        new_database(schema, timeout_s=LIMIT_S)
    assert time.monotonic() - start < LIMIT_S + SLACK_S
    assert message in str(caught.value)


def test_read_only_pragma_and_ordinary_errors(db):
    assert run_query(db, "PRAGMA table_info(n)").rows == [(0, "x", "INTEGER", 0, None, 0)]
    with pytest.raises(SandboxError, match="^no such column: nope$"):
        run_query(db, "SELECT nope FROM n")
    with pytest.raises(SandboxError, match="empty"):
        run_query(db, "   ")


def test_sandbox_imports_no_training_or_ui_code():
    forbidden = ("trl", "transformers", "gradio", "torch")
    check = f"import sandbox, sys; print([m for m in {forbidden!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- data-changing statements and database state -----------------------------------------------


def test_database_state_follows_insert_update_delete_create(in_empty_dir):
    conn = new_database("CREATE TABLE t (id INT, name TEXT); INSERT INTO t VALUES (2, 'b'), (1, 'a')")
    assert database_state(conn) == {"t": [("id", "name"), (1, "a"), (2, "b")]}
    for sql in (
        "INSERT INTO t VALUES (3, 'c')",
        "UPDATE t SET name = 'B' WHERE id = 2",
        "DELETE FROM t WHERE id = 1",
        "CREATE TABLE u (k TEXT PRIMARY KEY)",
        "INSERT INTO u VALUES ('z')",
    ):
        assert run_query(conn, sql) == QueryResult(columns=[], rows=[], truncated=False)
    assert database_state(conn) == {"t": [("id", "name"), (2, "B"), (3, "c")], "u": [("k",), ("z",)]}


def test_same_end_state_whatever_order_rows_went_in(in_empty_dir):
    first, second = new_database("CREATE TABLE t (a)"), new_database("CREATE TABLE t (a)")
    run_query(first, "INSERT INTO t VALUES (1), ('x'), (NULL), (2.5)")
    run_query(second, "INSERT INTO t VALUES ('x'), (2.5), (NULL), (1)")
    assert database_state(first) == database_state(second) == {"t": [("a",), (None,), (1,), (2.5,), ("x",)]}


# --- other SQL flavours -------------------------------------------------------------------------


def test_mysql_flavoured_schema_loads(in_empty_dir):
    conn = new_database(
        "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT, name VARCHAR(20), PRIMARY KEY (id)) ENGINE=InnoDB; "
        "INSERT INTO t (name) VALUES ('O\\'Reilly'), ('b');"
    )
    assert run_query(conn, "SELECT id, name FROM t ORDER BY id").rows == [(1, "O'Reilly"), (2, "b")]


def test_postgres_flavoured_schema_loads(in_empty_dir):
    conn = new_database("CREATE TABLE s (id SERIAL PRIMARY KEY, d DATE); INSERT INTO s (d) VALUES ('2020-01-31'::date)")
    assert run_query(conn, "SELECT d FROM s").rows == [("2020-01-31",)]


@pytest.mark.parametrize(
    "flavoured, expected",
    [
        ("SELECT CONCAT(name, '-', id) FROM t ORDER BY id", [("a-1",), ("b-2",)]),
        ("SELECT IF(id > 1, 'big', 'small') FROM t ORDER BY id", [("small",), ("big",)]),
        ("SELECT DATE_FORMAT(d, '%Y-%m') FROM t ORDER BY id", [("2020-03",), ("2021-12",)]),
        ("SELECT price::int FROM t ORDER BY id", [(5,), (7,)]),
        # sqlglot's MySQL reading keeps NOW(), which SQLite lacks; its PostgreSQL reading does not.
        ("SELECT DATEDIFF(NOW(), d) > 1000 FROM t ORDER BY id", [(1,), (1,)]),
    ],
)
def test_to_sqlite_translates_what_sqlite_rejects(in_empty_dir, flavoured, expected):
    conn = new_database(
        "CREATE TABLE t (id INT, name TEXT, d DATE, price REAL); "
        "INSERT INTO t VALUES (1, 'a', '2020-03-04', 5.5), (2, 'b', '2021-12-01', 7.25)"
    )
    with pytest.raises(SandboxError):
        run_query(conn, flavoured)
    translated = to_sqlite(flavoured, conn)
    assert translated is not None
    assert run_query(conn, translated).rows == expected


def test_to_sqlite_gives_none_for_what_it_cannot_read():
    assert to_sqlite("SELECT FROM WHERE (") is None


# --- reading a model's answer -------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Here you go:\n```sql\nSELECT a FROM t;\n```\nThis lists a.", "SELECT a FROM t"),
        ("```\nSELECT a\nFROM t\n```", "SELECT a\nFROM t"),
        ("```python\nprint(1)\n```\n```\nSELECT 1\n```\n```sql\nSELECT 2\n```", "SELECT 2"),
        ("```sql\nSELECT a FROM t WHERE b = ';'", "SELECT a FROM t WHERE b = ';'"),  # cut off before the fence closed
        ("  select a from t;  ", "select a from t"),
        ("WITH x AS (SELECT 1) SELECT * FROM x; -- the answer\nIt returns 1.", "WITH x AS (SELECT 1) SELECT * FROM x"),
        ("UPDATE t SET a = 1\n\nThis sets every a to 1.", "UPDATE t SET a = 1"),
        ("I cannot answer that from this schema.", None),
        ("Selecting is not possible here.", None),
        ("```sql\n\n```", None),
        ("", None),
    ],
)
def test_extract_sql(answer, expected):
    assert extract_sql(answer) == expected


@pytest.mark.parametrize(
    "sql, read",
    [
        ("SELECT 1", True),
        ("  with x as (select 1) select * from x", True),
        ("SELECT a FROM t UNION SELECT b FROM u", True),
        ("VALUES (1), (2)", True),
        ("WITH x AS (SELECT 1) DELETE FROM t WHERE a IN (SELECT * FROM x)", False),
        ("INSERT INTO t SELECT * FROM u", False),
        ("CREATE TABLE t (a)", False),
        ("PRAGMA table_info(t)", False),
        # SQLite's numbered parameter ?1 is beyond sqlglot: these take the keyword fallback.
        ("WITH x AS (SELECT ?1 AS a) SELECT * FROM x", True),
        ("WITH x AS (SELECT ?1 AS a) DELETE FROM t WHERE a IN (SELECT a FROM x)", False),
    ],
)
def test_is_read_query(sql, read):
    assert is_read_query(sql) is read


@pytest.mark.parametrize(
    "sql, ordered",
    [
        ("SELECT a FROM t ORDER BY a DESC LIMIT 3", True),
        ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", True),
        ("WITH x AS (SELECT a FROM t ORDER BY a) SELECT * FROM x", False),
        ("SELECT * FROM (SELECT a FROM t ORDER BY a)", False),
        ("SELECT a, RANK() OVER (ORDER BY a) FROM t", False),
        ("SELECT a FROM t WHERE b = 'ORDER BY'", False),
        # SQLite's numbered parameter ?1 is beyond sqlglot: these take the keyword fallback.
        ("SELECT a FROM t WHERE b = ?1 ORDER  BY a", True),
        ("SELECT a, RANK() OVER (ORDER BY a) FROM (SELECT a FROM t ORDER BY a) WHERE b = ?1", False),
        ("SELECT a FROM t WHERE b = ')ORDER BY' AND c = ?1 -- ORDER BY a", False),
    ],
)
def test_has_order_by(sql, ordered):
    assert has_order_by(sql) is ordered


# --- comparing results --------------------------------------------------------------------------


def test_numbers_compare_with_tolerance():
    assert results_match(result([(2, 0.1 + 0.2)]), result([(2.0, 0.3)]), ordered=False)
    assert results_match(result([(100.0,)]), result([(100.00001,)]), ordered=False)
    assert not results_match(result([(100.0,)]), result([(100.1,)]), ordered=False)
    assert not results_match(result([("2",)]), result([(2,)]), ordered=False)  # text is not a number
    assert results_match(result([(None, "a")]), result([(None, "a")]), ordered=False)


def test_rows_compare_as_multisets_unless_ordered():
    gold = result([(1, "a"), (2, "b"), (2, "b")])
    shuffled = result([(2, "b"), (1, "a"), (2, "b")])
    assert results_match(gold, shuffled, ordered=False)
    assert not results_match(gold, shuffled, ordered=True)
    assert results_match(gold, result([(1, "a"), (2, "b"), (2, "b")]), ordered=True)
    assert not results_match(gold, result([(1, "a"), (2, "b")]), ordered=False)  # a duplicate row counts
    assert not results_match(gold, result([(1, "a"), (1, "a"), (2, "b")]), ordered=False)


def test_columns_in_another_order_match_but_other_columns_do_not():
    gold = result([(1, "Alice", 3.5), (2, "Bob", 4.0)], columns=["id", "name", "score"])
    assert results_match(gold, result([("Bob", 4.0, 2), ("Alice", 3.5, 1)]), ordered=False)
    assert results_match(gold, result([("Alice", 1, 3.5), ("Bob", 2, 4.0)]), ordered=True)
    assert not results_match(gold, result([("Alice", 1), ("Bob", 2)]), ordered=False)
    assert not results_match(gold, result([("Alice", 1, 3.5), ("Bob", 2, 4.5)]), ordered=False)


def test_near_equal_numbers_do_not_upset_multiset_pairing():
    gold = result([(1.0, "b"), (1.0000000001, "a")])
    pred = result([(1.0000000001, "b"), (1.0, "a")])
    assert results_match(gold, pred, ordered=False)


def test_empty_results_match():
    assert results_match(result([], ["a"]), result([], ["a", "b"]), ordered=False)


# --- real data ----------------------------------------------------------------------------------


def test_gretel_sample_schemas_build_and_gold_queries_run(in_empty_dir, real_gretel_rows):
    for row in real_gretel_rows:
        conn = new_database(row["sql_context"])
        got = run_query(conn, row["sql"])
        assert not got.truncated, row["id"]
        assert is_read_query(row["sql"]), row["id"]
        assert extract_sql("```sql\n" + row["sql"] + "\n```") == row["sql"].strip().rstrip(";").strip(), row["id"]
        conn.close()

"""Judging answers on real SQLite: right SQL scores right however it is written, wrong SQL scores wrong
with a reason, lucky SQL fails the test suite, and hostile SQL ends as an error in time."""

import time

import pytest
from conftest import shipped_rows

from scoring import judge, normalise, parse, prepare_gold

SHOP = (
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(30), city VARCHAR(30)); "
    "CREATE TABLE orders (order_id INT, customer_id INT, amount DECIMAL(8,2), placed DATE); "
    "INSERT INTO customers VALUES (1, 'Ann', 'Springfield'), (2, 'Bob', 'Shelbyville'), (3, 'Cy', 'Springfield'); "
    "INSERT INTO orders VALUES (10, 1, 250.00, '2023-01-05'), (11, 1, 80.50, '2023-02-11'), "
    "(12, 2, 1200.00, '2023-03-20'), (13, 3, 640.00, '2022-12-30');"
)
# The prompt template's own example: without its city condition the gold still finds only 'Downtown Loop' here.
BUS_ROUTES = (
    "CREATE TABLE bus_routes (route_id INT, route_name VARCHAR(50), city VARCHAR(50), daily_riders INT); "
    "INSERT INTO bus_routes (route_id, route_name, city, daily_riders) VALUES (1, 'Downtown Loop', 'Springfield', 1200), "
    "(2, 'Airport Express', 'Springfield', 800), (3, 'Harbor Line', 'Shelbyville', 950);"
)
LIMIT_S = 0.5
SLACK_S = 2.0  # a busy CI machine


def fenced(sql):
    return f"```sql\n{sql}\n```"


def verdict_on(context, gold_sql, answer):
    return judge(prepare_gold(context, gold_sql), answer)


def assert_right(verdict):
    assert (verdict.execution_correct, verdict.test_suite_correct, verdict.error) == (True, True, None)


# --- gold as prediction -------------------------------------------------------------------------


def assert_gold_scores_full_marks(rows):
    for row in rows:
        gold = prepare_gold(row["sql_context"], row["sql"])
        assert gold.error is None, (row["id"], gold.error)
        verdict = judge(gold, fenced(row["sql"]))
        assert_right(verdict)
        assert verdict.exact_match and verdict.parses, row["id"]


def test_gold_as_prediction_scores_full_marks_on_the_shipped_test_rows():
    assert_gold_scores_full_marks(shipped_rows("test"))


def test_gold_as_prediction_scores_full_marks_on_real_gretel_rows(real_gretel_rows):
    assert_gold_scores_full_marks(real_gretel_rows)


# --- wrong answers ------------------------------------------------------------------------------

WRONG = {
    "another_column": ("SELECT name FROM customers WHERE city = 'Springfield'",
                       "SELECT city FROM customers WHERE city = 'Springfield'", "returns other values than the gold"),
    "missing_where": ("SELECT name FROM customers WHERE city = 'Springfield'",
                      "SELECT name FROM customers", "returns 3 rows, the gold 2"),
    "wrong_aggregate": ("SELECT MAX(amount) FROM orders", "SELECT MIN(amount) FROM orders", "other values"),
    "wrong_order": ("SELECT order_id FROM orders ORDER BY amount DESC", "SELECT order_id FROM orders ORDER BY amount",
                    "the gold's rows in another order"),
    "extra_column": ("SELECT name FROM customers", "SELECT name, city FROM customers", "returns 2 columns, the gold 1"),
    "unknown_column": ("SELECT name FROM customers", "SELECT nope FROM customers", "the prediction fails: no such column: nope"),
    "no_sql": ("SELECT name FROM customers", "I do not know.", "no SQL in the answer"),
}


@pytest.mark.parametrize("gold_sql, answer, reason", WRONG.values(), ids=WRONG.keys())
def test_wrong_answers_score_wrong_with_a_reason(gold_sql, answer, reason):
    verdict = verdict_on(SHOP, gold_sql, answer)
    assert (verdict.execution_correct, verdict.test_suite_correct) == (False, False)
    assert reason in verdict.error


def test_a_dropped_condition_that_matches_by_luck_fails_the_test_suite():
    gold_sql = "SELECT route_name FROM bus_routes WHERE city = 'Springfield' AND daily_riders > 1000"
    verdict = verdict_on(BUS_ROUTES, gold_sql, "SELECT route_name FROM bus_routes WHERE daily_riders > 1000")
    assert verdict.execution_correct is True
    assert verdict.test_suite_correct is False
    assert verdict.error.startswith("right on the sample rows, but on test-suite database")


# --- right answers written differently ----------------------------------------------------------

JOIN_GOLD = "SELECT c.name, o.amount FROM customers c JOIN orders o ON c.id = o.customer_id WHERE o.amount > 500"
RIGHT = {
    "aliases": ("SELECT name FROM customers WHERE city = 'Springfield'",
                "SELECT c.name AS customer FROM customers AS c WHERE c.city = 'Springfield'"),
    "join_written_another_way": (JOIN_GOLD, ("SELECT customers.name, orders.amount FROM orders, customers "
                                             "WHERE orders.customer_id = customers.id AND 500 < orders.amount")),
    "columns_in_another_order": (JOIN_GOLD, ("SELECT o.amount, c.name FROM orders o INNER JOIN customers c "
                                             "ON o.customer_id = c.id WHERE o.amount > 500")),
    "count_a_column_and_keyword_case": ("SELECT COUNT(*) FROM orders WHERE amount > 100",
                                        "select count(order_id) from orders where amount > 100"),
    "between_for_two_comparisons": ("SELECT order_id FROM orders WHERE placed >= '2023-01-01' AND placed <= '2023-02-28'",
                                    "SELECT order_id FROM orders WHERE placed BETWEEN '2023-01-01' AND '2023-02-28'"),
    "mysql_flavoured": ("SELECT strftime('%Y-%m', placed) FROM orders", "SELECT DATE_FORMAT(placed, '%Y-%m') FROM orders"),
}


@pytest.mark.parametrize("gold_sql, answer", RIGHT.values(), ids=RIGHT.keys())
def test_right_answers_written_differently_score_right(gold_sql, answer):
    assert_right(verdict_on(SHOP, gold_sql, fenced(answer)))


def test_a_different_tie_break_is_not_punished():
    """Where rows tie on the gold's ORDER BY keys its pick among them is arbitrary: such test-suite
    databases are skipped, and the others still judge."""
    gold = prepare_gold(SHOP, "SELECT order_id FROM orders ORDER BY amount DESC LIMIT 2")
    assert_right(judge(gold, "SELECT order_id FROM orders ORDER BY amount DESC, order_id DESC LIMIT 2"))
    judging = [outcome for outcome in gold.suite_outcomes(timeout_s=2.0) if outcome is not None]
    assert 0 < len(judging) < len(gold.suite)


def test_test_suite_databases_repeat():
    first, second = (prepare_gold(BUS_ROUTES, "SELECT route_name FROM bus_routes WHERE daily_riders > 1000") for _ in range(2))
    assert first.suite == second.suite and len(first.suite) == 10


# --- data- and schema-changing queries ----------------------------------------------------------

CHANGES = {
    "update_another_way": ("UPDATE orders SET amount = amount * 1.1 WHERE customer_id = 1",
                           "UPDATE orders SET amount = amount + amount * 0.1 WHERE customer_id IN (1)", True),
    "update_without_where": ("UPDATE orders SET amount = amount * 1.1 WHERE customer_id = 1",
                             "UPDATE orders SET amount = amount * 1.1", False),
    "insert_columns_in_another_order": ("INSERT INTO customers (id, name, city) VALUES (4, 'Dee', 'Ogdenville')",
                                        "INSERT INTO customers (city, name, id) VALUES ('Ogdenville', 'Dee', 4)", True),
    "insert_another_row": ("INSERT INTO customers (id, name, city) VALUES (4, 'Dee', 'Ogdenville')",
                           "INSERT INTO customers (id, name, city) VALUES (4, 'Dee', 'Springfield')", False),
    "delete": ("DELETE FROM orders WHERE placed < '2023-01-01'", "DELETE FROM orders WHERE NOT placed >= '2023-01-01'", True),
    "create_table": ("CREATE TABLE suppliers (id INT, name TEXT)", "CREATE TABLE suppliers (id INTEGER, name VARCHAR(40))", True),
    "create_another_table": ("CREATE TABLE suppliers (id INT, name TEXT)", "CREATE TABLE supplier (id INT, name TEXT)", False),
    "alter_table": ("ALTER TABLE customers ADD COLUMN email VARCHAR(50)", "ALTER TABLE customers ADD email TEXT", True),
    "alter_another_column": ("ALTER TABLE customers ADD COLUMN email VARCHAR(50)", "ALTER TABLE customers ADD phone TEXT", False),
    "drop_table": ("DROP TABLE orders", "DROP TABLE IF EXISTS orders", True),
    "delete_for_drop": ("DROP TABLE orders", "DELETE FROM orders", False),
    "select_for_delete": ("DELETE FROM orders WHERE amount > 1000", "SELECT * FROM orders WHERE amount > 1000", False),
}


@pytest.mark.parametrize("gold_sql, answer, right", CHANGES.values(), ids=CHANGES.keys())
def test_changes_are_judged_by_the_database_state(gold_sql, answer, right):
    verdict = verdict_on(SHOP, gold_sql, fenced(answer))
    if right:
        assert_right(verdict)
    else:
        assert verdict.execution_correct is False
        assert "another state than the gold" in verdict.error


def test_a_delete_that_matches_by_luck_fails_the_test_suite():
    verdict = verdict_on(SHOP, "DELETE FROM orders WHERE placed < '2023-01-01'", "DELETE FROM orders WHERE amount = 640")
    assert (verdict.execution_correct, verdict.test_suite_correct) == (True, False)


# --- gold SQL in other flavours, and gold SQL that cannot run -----------------------------------


def test_a_mysql_only_gold_runs_after_translation():
    gold_sql = "SELECT DATE_FORMAT(placed, '%Y') AS year, SUM(amount) FROM orders GROUP BY DATE_FORMAT(placed, '%Y')"
    gold = prepare_gold(SHOP, gold_sql)
    assert gold.error is None and gold.runnable != gold_sql
    assert_right(judge(gold, fenced(gold_sql)))
    assert_right(judge(gold, "SELECT strftime('%Y', placed), SUM(amount) FROM orders GROUP BY 1"))
    assert judge(gold, "SELECT strftime('%Y', placed), MAX(amount) FROM orders GROUP BY 1").execution_correct is False


@pytest.mark.parametrize(
    "context, gold_sql, reason",
    [
        (SHOP, "SELECT * FROM nowhere", "the gold SQL fails: no such table: nowhere"),
        (SHOP, "SELECT FROM WHERE (", "the gold SQL fails"),
        ("CREATE TABL oops (a INT)", "SELECT 1", "the schema fails"),
    ],
)
def test_a_gold_that_cannot_run_is_not_judged(context, gold_sql, reason):
    gold = prepare_gold(context, gold_sql)
    assert reason in gold.error
    verdict = judge(gold, fenced(gold_sql))
    assert (verdict.execution_correct, verdict.test_suite_correct) == (None, None)
    assert verdict.error.startswith("not judged: ")


# --- hostile answers ----------------------------------------------------------------------------

HOSTILE = {
    "attach": ("ATTACH DATABASE 'stolen.db' AS x", "ATTACH is not allowed"),
    "load_extension": ("SELECT load_extension('/tmp/evil.so')", "load_extension() is not allowed"),
    "pragma": ("PRAGMA writable_schema = 1", "PRAGMA writable_schema is not allowed"),
    "endless_recursive_cte": ("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
                              "time limit"),
    "huge_cross_join": ("SELECT count(*) FROM " + ", ".join(f"orders o{i}" for i in range(20)), "time limit"),
}


@pytest.mark.parametrize("answer, reason", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_answers_end_as_errors_in_time_and_the_next_row_is_judged(tmp_path, monkeypatch, answer, reason):
    monkeypatch.chdir(tmp_path)  # whatever happens, no file may appear
    gold = prepare_gold(SHOP, "SELECT COUNT(*) FROM orders", timeout_s=LIMIT_S)
    start = time.monotonic()
    verdict = judge(gold, fenced(answer), timeout_s=LIMIT_S)
    assert time.monotonic() - start < LIMIT_S + SLACK_S
    assert verdict.execution_correct is False and reason in verdict.error
    assert_right(judge(gold, "SELECT count(*) FROM orders", timeout_s=LIMIT_S))
    assert list(tmp_path.iterdir()) == []


# --- reading answers ----------------------------------------------------------------------------


def test_exact_match_ignores_whitespace_keyword_case_and_the_final_semicolon():
    gold = "SELECT name, COUNT(*) FROM customers WHERE city = 'Springfield' GROUP BY name"
    assert normalise(gold) == normalise("select name,COUNT(*)\n  from customers\nwhere city='Springfield'\ngroup  by name;")
    assert normalise(gold) != normalise(gold.replace("'Springfield'", "'springfield'"))
    assert normalise(gold) != normalise(gold.replace("name", "NAME"))


@pytest.mark.parametrize("sql, parses", [
    ("SELECT a FROM t WHERE b > 1", True),
    ("UPDATE t SET a = 1", True),
    ("SELECT DATE_FORMAT(d, '%Y') FROM t", True),
    ("hello world", False),
    ("SELECT a FROM WHERE (", False),
    ("SELECT 1; SELECT 2", False),
])
def test_parses_as_sql(sql, parses):
    assert (parse(sql) is not None) is parses

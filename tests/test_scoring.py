"""Judging answers on real SQLite: right SQL scores right however it is written, wrong SQL scores wrong
with a reason, lucky SQL fails the test suite, and hostile SQL ends as an error in time."""

import time

import pytest
from conftest import shipped_rows

from sandbox import Job, SandboxError, default_sandbox
from scoring import (
    Ballot, canonical, extract_sql, has_order_by, judge, load_schema, normalise, parse, prepare_gold, run_sql, vote,
)

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
    assert verdict.runs is not ("prediction fails" in reason or reason == "no SQL in the answer")


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
    """Where rows tie on the gold's ORDER BY keys, their order (and, cut by LIMIT, the pick among them) is
    the gold's arbitrary choice: any order of the tied rows is right, on every test-suite database."""
    gold = prepare_gold(SHOP, "SELECT order_id FROM orders ORDER BY amount DESC LIMIT 2")
    assert_right(judge(gold, "SELECT order_id FROM orders ORDER BY amount DESC, order_id DESC LIMIT 2"))
    assert judge(gold, "SELECT order_id FROM orders ORDER BY amount LIMIT 2").execution_correct is False
    assert all(expected is not None for expected in gold.suite_expected())


def test_ties_on_the_sample_rows_are_judged_as_on_the_test_suite():
    """Ann and Cy tie on city: either may come first, but Bob (Shelbyville) must come before both."""
    gold = prepare_gold(SHOP, "SELECT name FROM customers ORDER BY city")
    assert_right(judge(gold, "SELECT name FROM customers ORDER BY city, name DESC"))
    assert_right(judge(gold, "SELECT name FROM customers ORDER BY city, name"))
    verdict = judge(gold, "SELECT name FROM customers ORDER BY city DESC")
    assert verdict.execution_correct is False and "another order" in verdict.error


def test_test_suite_databases_repeat():
    first, second = (prepare_gold(BUS_ROUTES, "SELECT route_name FROM bus_routes WHERE daily_riders > 1000") for _ in range(2))
    assert first.suite == second.suite and len(first.suite) == 10


# --- data- and schema-changing queries ----------------------------------------------------------

TRIGGER = "CREATE TRIGGER stamp AFTER INSERT ON orders BEGIN  UPDATE orders SET placed = '2024-01-01'; END"
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
    # views, indexes and triggers are part of the end state (a SELECT used to pass for them)
    "view_written_another_way": ("CREATE VIEW big AS SELECT order_id FROM orders WHERE amount > 500",
                                 "CREATE VIEW big AS SELECT o.order_id FROM orders o WHERE NOT o.amount <= 500", True),
    "select_for_view": ("CREATE VIEW big AS SELECT order_id FROM orders WHERE amount > 500", "SELECT 1", False),
    "view_with_other_rows": ("CREATE VIEW big AS SELECT order_id FROM orders WHERE amount > 500",
                             "CREATE VIEW big AS SELECT order_id FROM orders", False),
    "index_named_otherwise": ("CREATE INDEX idx_city ON customers (city)", "CREATE INDEX city_index ON customers(city)", True),
    "select_for_index": ("CREATE INDEX idx_city ON customers (city)", "SELECT 1", False),
    "index_on_another_column": ("CREATE INDEX idx_city ON customers (city)", "CREATE INDEX idx_city ON customers (name)", False),
    "trigger": (TRIGGER, TRIGGER.replace("  ", " "), True),
    "select_for_trigger": (TRIGGER, "SELECT 1", False),
    # integers exactly: 12,345,678,901 and 12,345,678,902 used to be one 10-digit float
    "integer_off_by_one": ("UPDATE orders SET order_id = 12345678901 WHERE order_id = 10",
                           "UPDATE orders SET order_id = 12345678902 WHERE order_id = 10", False),
}


@pytest.mark.parametrize("gold_sql, answer, right", CHANGES.values(), ids=CHANGES.keys())
def test_changes_are_judged_by_the_database_state(gold_sql, answer, right):
    verdict = verdict_on(SHOP, gold_sql, fenced(answer))
    if right:
        assert_right(verdict)
    else:
        assert verdict.execution_correct is False
        assert "another state than the gold" in verdict.error


WRONG_THAT_USED_TO_PASS = {
    "drop_for_an_empty_read": ("SELECT name FROM customers WHERE city = 'Nowhere'", "DROP TABLE orders",
                               "changes the database, while the gold only reads it"),
    "empty_with_more_columns": ("SELECT name FROM customers WHERE city = 'Nowhere'",
                                "SELECT name, city FROM customers WHERE city = 'Nowhere'", "returns 2 columns, the gold 1"),
    "integer_off_by_one": ("SELECT amount * 10000 FROM orders WHERE order_id = 12",
                           "SELECT amount * 10000 + 1 FROM orders WHERE order_id = 12", "other values"),
    "values_paired_across_rows": ("SELECT order_id + 0.0000001 * customer_id, name FROM orders JOIN customers "
                                  "ON customers.id = customer_id WHERE order_id < 12",
                                  "SELECT order_id + 0.0000001 * customer_id, CASE WHEN order_id = 10 THEN 'x' ELSE name END "
                                  "FROM orders JOIN customers ON customers.id = customer_id WHERE order_id < 12",
                                  "other values"),
}


@pytest.mark.parametrize("gold_sql, answer, reason", WRONG_THAT_USED_TO_PASS.values(), ids=WRONG_THAT_USED_TO_PASS.keys())
def test_wrong_answers_that_used_to_pass_now_fail(gold_sql, answer, reason):
    verdict = verdict_on(SHOP, gold_sql, fenced(answer))
    assert verdict.execution_correct is False and reason in verdict.error
    assert_right(verdict_on(SHOP, gold_sql, fenced(gold_sql)))


def test_values_compare_exactly_except_where_a_float_takes_part():
    assert canonical(2) == canonical(2.0) and canonical(0.1 + 0.2) == canonical(0.3)
    assert canonical(2_000_000) != canonical(2_000_001) and canonical(12345678901.0) != canonical(12345678902)
    assert canonical(1.0000001) != canonical(1.0000002)
    assert canonical("2") != canonical(2) and canonical(None) is None


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

# The evaluation's side of the hostile-SQL suite (tests/test_hostile_sql.py has every case through the chat and here).


@pytest.mark.parametrize("gold_sql", ["SELECT COUNT(*) FROM orders", "DELETE FROM orders WHERE amount > 100"])
def test_a_hostile_answer_ends_as_an_error_in_time_and_the_next_answer_is_judged(gold_sql):
    gold = prepare_gold(SHOP, gold_sql, timeout_s=LIMIT_S)
    start = time.monotonic()
    verdict = judge(gold, fenced("SELECT length(printf('%.*c', 2000000000, 'x'))"))
    assert time.monotonic() - start < LIMIT_S + SLACK_S
    assert verdict.execution_correct is False and "time limit" in verdict.error
    assert_right(judge(gold, fenced(gold_sql)))


def test_an_answer_nested_past_the_parsers_limit_is_judged_not_raised():
    """A runaway sample nested 150 levels deep once stopped a whole evaluation in sqlparse (its limit is 100)."""
    gold = prepare_gold(SHOP, "SELECT COUNT(*) FROM orders", timeout_s=LIMIT_S)
    verdict = judge(gold, fenced("SELECT COUNT(*) FROM orders WHERE amount = " + "(" * 150 + "1" + ")" * 150))
    assert verdict.exact_match is False and verdict.test_suite_correct is False and verdict.error


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
    "sql, ordered",
    [
        ("SELECT a FROM t ORDER BY a DESC LIMIT 3", True),
        ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", True),
        ("WITH x AS (SELECT a FROM t ORDER BY a) SELECT * FROM x", False),
        ("SELECT * FROM (SELECT a FROM t ORDER BY a)", False),
        ("SELECT a, RANK() OVER (ORDER BY a) FROM t", False),
        ("SELECT a FROM t WHERE b = 'ORDER BY'", False),
        ("SELECT a FROM t WHERE b = ')ORDER BY' -- ORDER BY a", False),
    ],
)
def test_has_order_by(sql, ordered):
    assert has_order_by(sql) is ordered


def test_mysql_and_postgres_flavoured_schemas_load():
    sandbox = default_sandbox()
    mysql = load_schema("CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT, name VARCHAR(20), PRIMARY KEY (id)) ENGINE=InnoDB; "
                        "INSERT INTO t (name) VALUES ('O\\'Reilly'), ('b');", sandbox)
    assert sandbox.run(Job(mysql, ("SELECT id, name FROM t ORDER BY id",))).results[0].rows == [(1, "O'Reilly"), (2, "b")]
    postgres = load_schema("CREATE TABLE s (id SERIAL PRIMARY KEY, d DATE); INSERT INTO s (d) VALUES ('2020-01-31'::date)",
                           sandbox)
    assert sandbox.run(Job(postgres, ("SELECT d FROM s",))).results[0].rows == [("2020-01-31",)]
    with pytest.raises(SandboxError, match="schema statement 1 of 1 fails"):
        load_schema("CREATE TABL oops (a INT)", sandbox)


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
def test_sql_sqlite_rejects_runs_as_translated(flavoured, expected):
    schema = load_schema("CREATE TABLE t (id INT, name TEXT, d DATE, price REAL); "
                         "INSERT INTO t VALUES (1, 'a', '2020-03-04', 5.5), (2, 'b', '2021-12-01', 7.25)", default_sandbox())
    outcome, ran = run_sql(default_sandbox(), Job(schema), flavoured)
    assert ran != flavoured and outcome.results[0].rows == expected
    with pytest.raises(SandboxError, match="^no such column: nope$"):  # in SQLite's words about the SQL as written
        run_sql(default_sandbox(), Job(schema), "SELECT nope FROM t")


# --- execution-guided answers -------------------------------------------------------------------


def test_the_result_most_candidates_share_wins_and_failures_are_dropped():
    schema = load_schema(SHOP, default_sandbox())
    answers = [
        fenced("SELECT name FROM customers WHERE city = 'Shelbyville'"),  # the most likely, alone in its result
        fenced("SELECT nope FROM customers"),  # fails: dropped
        fenced("SELECT name FROM customers WHERE city = 'Springfield'"),
        "no SQL here",  # dropped
        fenced("SELECT c.name FROM customers AS c WHERE c.city LIKE 'Spring%'"),  # the same result as the third
        fenced("SELECT length(printf('%.*c', 2000000000, 'x'))"),  # hostile: stopped, dropped
    ]
    ballot = vote(answers, schema, default_sandbox(), timeout_s=LIMIT_S)
    assert (ballot.winner, ballot.agreeing, ballot.running) == (2, 2, 3)


def test_a_tie_goes_to_the_most_likely_answer_and_changes_vote_by_end_state():
    schema = load_schema(SHOP, default_sandbox())
    assert vote([fenced("SELECT 1"), fenced("SELECT 2")], schema, default_sandbox()).winner == 0
    deletes = [fenced("DELETE FROM orders WHERE amount > 1000"), fenced("DELETE FROM orders WHERE amount < 100"),
               fenced("DELETE FROM orders WHERE NOT amount <= 1000")]
    assert vote(deletes, schema, default_sandbox()) == Ballot(winner=0, agreeing=2, running=3)
    assert vote(["nothing", fenced("SELECT nope FROM orders")], schema, default_sandbox()) == Ballot(None, 0, 0)

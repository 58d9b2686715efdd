"""The shipped training data is at least as broad as real gretel rows, feature by feature, per 100 rows
(data/coverage.py computes the counts; the README names the command)."""

import pytest
from conftest import shipped_rows

from data.coverage import coverage, skeleton


def test_the_shipped_data_covers_at_least_what_the_real_rows_do(real_gretel_rows):
    shipped, real = coverage(shipped_rows("train")), coverage(real_gretel_rows)
    short = {name: (shipped[name], real[name]) for name in real if shipped[name] < real[name]}
    assert not short, f"per 100 rows, shipped below real (shipped, real): {short}"


def test_counts_are_per_100_rows_averaged_over_windows():
    rows = [
        {
            "domain": f"d{i % 7}",
            "sql": "SELECT a FROM t WHERE b BETWEEN 1 AND 2" if i % 2 else "SELECT a FROM t",
            "sql_context": "CREATE TABLE t (a INT, b TEXT); INSERT INTO t VALUES (1, 'x');",
        }
        for i in range(200)
    ]
    figures = coverage(rows)
    assert (figures["BETWEEN"], figures["domains"], figures["distinct skeletons"], figures["column types"]) == (
        50,
        7,
        2,
        2,
    )


@pytest.mark.parametrize(
    "sql, same_as",
    [
        ("SELECT name FROM users WHERE age > 30", "SELECT city FROM shops WHERE floor > 2"),
        ("select COUNT(*) from t where x = 'a'", "SELECT COUNT(*) FROM u WHERE y = 'b'"),
    ],
)
def test_skeletons_ignore_names_and_literals(sql, same_as):
    assert skeleton(sql) == skeleton(same_as)

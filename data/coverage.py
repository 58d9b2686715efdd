"""How broad a text-to-SQL data set is: feature counts per 100 rows, side by side for several files.

    uv run python data/coverage.py data/synthetic_text_to_sql/train.jsonl ../shared/data/gretel_test_sample_100.jsonl

Counts are taken over consecutive windows of 100 rows and averaged, so a 2,000-row file and a 100-row file
compare directly: "distinct skeletons 84" means a window of 100 rows holds 84 different query shapes.
Standard library only; the README's table of the shipped data against the real rows comes from it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

WINDOW = 100
TOKEN = re.compile(r"'(?:[^']|'')*'|\d+(?:\.\d+)?|\w+|[^\s\w]")
KEYWORDS = frozenset(
    """
    SELECT DISTINCT FROM WHERE AND OR NOT IN IS NULL LIKE ILIKE BETWEEN EXISTS JOIN INNER LEFT RIGHT FULL OUTER CROSS ON
    AS GROUP BY HAVING ORDER ASC DESC LIMIT OFFSET CASE WHEN THEN ELSE END UNION INTERSECT EXCEPT ALL WITH OVER
    PARTITION ROWS INSERT INTO VALUES UPDATE SET DELETE CREATE TABLE VIEW INDEX ALTER ADD COLUMN DROP TRUE FALSE
""".split()
)
STRING = re.compile(r"'(?:[^']|'')*'")
CREATE_TABLE = re.compile(r"CREATE TABLE[^;]*", re.IGNORECASE)
COLUMN_TYPE = re.compile(r"[(,]\s*[\w\"`]+\s+([A-Za-z]+)")
CAMEL_CASE = re.compile(r"\b[A-Za-z]*[a-z][A-Z]\w*|\b[A-Z][a-z]+_[A-Z]\w*")  # SatelliteID, Agency_Contracts
ARITHMETIC = re.compile(r"[\w)]\s*[-+/]\s*[\w(]|[\w)]\s*\*\s*[\w(]")  # COUNT(*) and SELECT * are not arithmetic
BETWEEN_AND = re.compile(r"\bBETWEEN\s+\S+\s+AND\b", re.IGNORECASE)  # its AND joins no two conditions
CONNECTIVE = re.compile(r"\bWHERE\b.*\b(AND|OR)\b", re.IGNORECASE | re.DOTALL)
DML = ("INSERT", "UPDATE", "DELETE")
DDL = ("CREATE", "ALTER", "DROP")


def without_strings(sql: str) -> str:
    return STRING.sub("''", sql)


def skeleton(sql: str) -> str:
    """The query's shape: keywords, functions and punctuation kept; names and literals replaced."""
    found = TOKEN.findall(sql)
    parts = []
    for token, following in zip(found, [*found[1:], ""]):
        if token[0] == "'" or token[0].isdigit():
            parts.append("v")
        elif token.upper() in KEYWORDS or (token[0].isalpha() and following == "("):  # a keyword or a function
            parts.append(token.upper())
        else:
            parts.append("x" if token[0].isalnum() or token[0] == "_" else token)
    return " ".join(parts)


def table_schemas(context: str) -> list[str]:
    return [" ".join(statement.lower().split()) for statement in CREATE_TABLE.findall(context)]


def column_types(context: str) -> set[str]:
    return {kind.upper() for statement in CREATE_TABLE.findall(context) for kind in COLUMN_TYPE.findall(statement)}


def statement_kind(sql: str) -> str:
    first = sql.lstrip("( ").split(None, 1)[0].upper()
    return "dml" if first in DML else "ddl" if first in DDL else "read"


def has(pattern: str) -> Callable[[dict], bool]:
    compiled = re.compile(pattern, re.IGNORECASE)
    return lambda row: bool(compiled.search(without_strings(row["sql"])))


def has_two_conditions(row: dict) -> bool:
    return bool(CONNECTIVE.search(BETWEEN_AND.sub("BETWEEN", without_strings(row["sql"]))))


# Row features: counted as the number of rows of a window that have them.
ROW_FEATURES: dict[str, Callable[[dict], bool]] = {
    "WHERE": has(r"\bWHERE\b"),
    "two or more conditions": has_two_conditions,
    "aggregate functions": has(r"\b(COUNT|SUM|AVG|MIN|MAX)\s*\("),
    "CASE": has(r"\bCASE\b"),
    "outer joins": has(r"\b(LEFT|RIGHT|FULL)\s+(OUTER\s+)?JOIN\b"),
    "COUNT(DISTINCT)": has(r"COUNT\s*\(\s*DISTINCT\b"),
    "ROUND/COALESCE/CAST": has(r"\b(ROUND|COALESCE|IFNULL|CAST)\s*\(|::"),
    "arithmetic": lambda row: bool(ARITHMETIC.search(without_strings(row["sql"]))),
    "BETWEEN": has(r"\bBETWEEN\b"),
    "joins": has(r"\bJOIN\b"),
    "subqueries": has(r"\(\s*SELECT\b"),
    "window functions": has(r"\bOVER\s*\("),
    "GROUP BY": has(r"\bGROUP\s+BY\b"),
    "ORDER BY": has(r"\bORDER\s+BY\b"),
    "LIMIT": has(r"\bLIMIT\b"),
    "CTEs": has(r"^\s*WITH\b"),
    "set operations": has(r"\b(UNION|INTERSECT|EXCEPT)\b"),
    "CamelCase identifiers": lambda row: bool(CAMEL_CASE.search(without_strings(row["sql_context"]))),
    "contexts without INSERTs": lambda row: "INSERT INTO" not in row["sql_context"].upper(),
    "two-table contexts": lambda row: len(table_schemas(row["sql_context"])) == 2,
    "three-table contexts": lambda row: len(table_schemas(row["sql_context"])) >= 3,
    "data manipulation": lambda row: statement_kind(row["sql"]) == "dml",
    "data definition": lambda row: statement_kind(row["sql"]) == "ddl",
}


def window_counts(rows: list[dict]) -> dict[str, float]:
    counts = {name: float(sum(feature(row) for row in rows)) for name, feature in ROW_FEATURES.items()}
    return {
        "distinct skeletons": len({skeleton(row["sql"]) for row in rows}),
        "distinct table schemas": len({schema for row in rows for schema in table_schemas(row["sql_context"])}),
        "domains": len({row["domain"] for row in rows}),
        "column types": len(set().union(*(column_types(row["sql_context"]) for row in rows))),
        **counts,
        "context length (chars)": statistics.mean(len(row["sql_context"]) for row in rows),
    }


def coverage(rows: list[dict]) -> dict[str, float]:
    """Each feature's count per 100 rows: the mean over the file's whole windows (a shorter file is one window)."""
    windows = [rows[start : start + WINDOW] for start in range(0, max(len(rows) - WINDOW + 1, 1), WINDOW)]
    per_window = [window_counts(window) for window in windows]
    return {name: round(statistics.mean(counts[name] for counts in per_window), 1) for name in per_window[0]}


REQUIRED = ("domain", "sql", "sql_context")


def load_rows(path: Path) -> list[dict]:
    """The file's rows; a missing file, a line that is not JSON, a missing column or no rows is a one-line error."""
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    missing = [column for column in REQUIRED if any(column not in row for row in rows)]
    if missing:
        raise ValueError(f"{path}: rows without column(s) {', '.join(missing)} (gretel's columns are needed)")
    return rows


def table(paths: list[Path]) -> str:
    figures = [coverage(load_rows(path)) for path in paths]
    lines = ["| per 100 rows | " + " | ".join(path.name for path in paths) + " |", "|---" * (len(paths) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{column[name]:g}" for column in figures) + " |" for name in figures[0]]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help=".jsonl files in gretel's columns")
    try:
        print(table(parser.parse_args(argv).files))
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main(sys.argv[1:])

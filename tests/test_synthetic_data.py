"""The shipped synthetic text-to-SQL data: reproducible, well-formed, executable, varied, and split cleanly."""

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "data" / "generate_synthetic_sql.py"
DATA_DIR = ROOT / "data" / "synthetic_text_to_sql"
COMMAND_START = "uv run python data/generate_synthetic_sql.py "
SPLIT_SIZES = {"train": 2000, "test": 200}
GRETEL_COLUMNS = ["id", "domain", "domain_description", "sql_complexity", "sql_complexity_description",
                  "sql_task_type", "sql_task_type_description", "sql_prompt", "sql_context", "sql",
                  "sql_explanation"]


def load_split(name: str) -> list[dict]:
    with (DATA_DIR / f"{name}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    return {name: load_split(name) for name in SPLIT_SIZES}


@pytest.fixture(scope="module")
def all_rows(splits) -> list[dict]:
    return splits["train"] + splits["test"]


def readme_command():
    """The generator's arguments as the data README gives them (its one line that runs the generator)."""
    [line] = [line for line in (DATA_DIR / "README.md").read_text(encoding="utf-8").splitlines()
              if line.startswith(COMMAND_START)]
    return shlex.split(line.removeprefix(COMMAND_START))


def test_the_readme_command_regenerates_identical_files(tmp_path):
    args = readme_command()
    out = args.index("--out") + 1
    assert args[out] == "data/synthetic_text_to_sql"  # the README writes the shipped files themselves
    args[out] = str(tmp_path)
    # A different hash seed proves the output does not depend on set or dict hashing order.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, str(GENERATOR), *args], check=True, capture_output=True, env=env, timeout=120, cwd=ROOT)
    for name in SPLIT_SIZES:
        regenerated = (tmp_path / f"{name}.jsonl").read_bytes()
        assert regenerated == (DATA_DIR / f"{name}.jsonl").read_bytes(), f"{name}.jsonl differs"


def test_splits_have_the_shipped_sizes_and_unique_ids(splits, all_rows):
    assert {name: len(rows) for name, rows in splits.items()} == SPLIT_SIZES
    ids = [row["id"] for row in all_rows]
    assert len(set(ids)) == len(ids)


def test_rows_have_gretel_columns_in_order(all_rows):
    for row in all_rows:
        assert list(row) == GRETEL_COLUMNS
        assert isinstance(row["id"], int)
        for column in GRETEL_COLUMNS[1:]:
            assert isinstance(row[column], str) and row[column].strip(), (row["id"], column)


def test_gold_sql_is_one_line_without_a_trailing_semicolon(all_rows):
    for row in all_rows:
        assert "\n" not in row["sql"] and not row["sql"].rstrip().endswith(";"), row["id"]


def test_contexts_are_gretel_style_and_short(all_rows):
    for row in all_rows:
        context = row["sql_context"]
        assert context.startswith("CREATE TABLE ") and "INSERT INTO " in context and context.endswith(";")
        assert len(context) <= 900, row["id"]


def is_read_query(sql: str) -> bool:
    return sql.lstrip().upper().startswith(("SELECT", "WITH"))


def test_gold_sql_runs_on_its_context(all_rows):
    for row in all_rows:
        connection = sqlite3.connect(":memory:")
        try:
            connection.executescript(row["sql_context"])
            cursor = connection.execute(row["sql"])
            if is_read_query(row["sql"]):
                result = cursor.fetchall()
                assert any(v is not None for r in result for v in r), f"empty answer for row {row['id']}"
            else:
                assert cursor.rowcount > 0, f"data change touches no row in row {row['id']}"
        finally:
            connection.close()


def test_task_type_matches_the_statement(all_rows):
    for row in all_rows:
        changes_data = row["sql_task_type"] == "data manipulation"
        assert changes_data != is_read_query(row["sql"]), row["id"]


def test_variety(splits):
    train = splits["train"]
    assert len({row["domain"] for row in train}) >= 12
    complexities = Counter(row["sql_complexity"] for row in train)
    assert set(complexities) == {"basic SQL", "aggregation", "single join", "subqueries", "window functions"}
    assert set(Counter(row["sql_task_type"] for row in train)) == {
        "data retrieval", "analytics and reporting", "data manipulation"}
    for construct in (" JOIN ", "GROUP BY", "HAVING", "ORDER BY", "LIMIT", "DISTINCT", "LIKE", "(SELECT",
                      " OVER (", "INSERT INTO", "UPDATE ", "DELETE FROM"):
        assert sum(construct in row["sql"] for row in train) >= 10, construct
    # Phrasings vary: most questions are distinct strings.
    assert len({row["sql_prompt"] for row in train}) >= 0.8 * len(train)


def test_no_train_test_overlap(splits):
    def pairs(rows):
        return {(row["sql_prompt"], row["sql_context"]) for row in rows}

    assert not pairs(splits["train"]) & pairs(splits["test"])
    assert len(pairs(splits["train"])) == len(splits["train"])


def table_names(row: dict) -> set[str]:
    return set(re.findall(r"CREATE TABLE (\w+)", row["sql_context"]))


def test_test_split_holds_out_whole_domains_and_their_tables(splits):
    train_domains = {row["domain"] for row in splits["train"]}
    test_domains = {row["domain"] for row in splits["test"]}
    assert len(test_domains) >= 3 and not train_domains & test_domains
    train_tables = {name.lower() for row in splits["train"] for name in table_names(row)}
    test_tables = {name.lower() for row in splits["test"] for name in table_names(row)}
    assert not train_tables & test_tables

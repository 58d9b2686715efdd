"""Hostile SQL, every way out we know of, through the sandbox itself and the project's own entry points: the chat's
SqlChat (what a person pastes or a model answers) and mode: evaluate's judge. Each case ends in an error in words within its time limit plus a small margin, the
sandbox's workers stay under their memory cap, no file appears anywhere, and the next query works."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import peak_memory_bytes

from sandbox import MEMORY_BYTES, Job, SandboxError
from scoring import judge, load_schema, prepare_gold
from ui.chat import SqlChat

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 1.0
MEMORY_CASE_LIMIT_S = 30.0
SLACK_S = 1.5  # the kill margin, a fresh worker, a busy CI machine
SCHEMA = ("CREATE TABLE orders (order_id INT, amount DECIMAL(8,2)); "
          "INSERT INTO orders VALUES (10, 250.00), (11, 80.50), (12, 1200.00);")
GOLD = "SELECT order_id FROM orders WHERE amount > 100"
BIG_STRINGS = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT printf('%.*c', 100000, 'a') || x AS s FROM r"
ENDLESS = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"
HOSTILE = {
    "endless_loop": (ENDLESS, "time limit"),
    "cross_join": ("SELECT count(*) FROM " + ", ".join(f"orders o{i}" for i in range(25)), "time limit"),
    "long_call_inside_c": ("SELECT length(printf('%.*c', 2000000000, 'x'))", "time limit"),
    # Given all the time in the world (MEMORY_CASE_LIMIT_S), these end on SQLite's heap limit.
    "distinct_memory": (f"SELECT count(DISTINCT s) FROM ({BIG_STRINGS})", "memory"),
    "subquery_memory": (f"SELECT count(*) FROM orders WHERE CAST(order_id AS TEXT) IN (SELECT s FROM ({BIG_STRINGS}))",
                        "memory"),
    "huge_value": ("SELECT length(replace(printf('%.*c', 900000, 'x'), 'x', 'yy'))", "byte limit"),
    "huge_table": ("CREATE TABLE big AS WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 200) "
                   "SELECT printf('%.*c', 900000, 'x') AS b FROM r", "64 MiB limit"),
    "attach_a_file": ("ATTACH DATABASE 'stolen.db' AS x", "not allowed"),
    "vacuum_into_a_file": ("VACUUM INTO 'copy.db'", "not allowed"),
    "load_extension": ("SELECT load_extension('/tmp/evil.so')", "load_extension() is not allowed"),
    "fts3_tokenizer_pointer": ("SELECT hex(fts3_tokenizer('simple'))", "fts3_tokenizer() is not allowed"),
    "fts3_tokenizer_register": ("SELECT fts3_tokenizer('evil', x'4141414141414141')", "fts3_tokenizer() is not allowed"),
    "fts3_table": ("CREATE VIRTUAL TABLE notes USING fts3(body)", "virtual tables are not allowed"),
    "dbstat": ("SELECT * FROM dbstat", "dbstat is not allowed"),
    "pragma": ("PRAGMA writable_schema = ON", "PRAGMA writable_schema is not allowed"),
    "two_statements": ("SELECT 1; DROP TABLE orders", "several statements"),
}


def in_sandbox(pool, sql, limit_s=LIMIT_S):
    """What the sandbox itself says (SandboxError's words); the schema as the judge loads it."""
    try:
        pool.run(Job(load_schema(SCHEMA, pool), (sql,), timeout_s=limit_s))
    except SandboxError as error:
        return str(error)
    raise AssertionError(f"the sandbox ran {sql!r}")


def in_chat(pool, sql, limit_s=LIMIT_S):
    """What the chat says after an answer holding `sql` (no model needed: the SQL is given)."""
    chat = SqlChat(client=None, model="local", templates=None, sandbox=pool, query_timeout_s=limit_s)
    note, _ = chat.run_sql(f"```sql\n{sql}\n```", load_schema(SCHEMA, pool))
    return note


def in_evaluation(pool, sql, limit_s=LIMIT_S):
    verdict = judge(prepare_gold(SCHEMA, GOLD, timeout_s=limit_s, sandbox=pool), f"```sql\n{sql}\n```")
    assert verdict.execution_correct is False
    return verdict.error


ENTRY_POINTS = {"sandbox": in_sandbox, "chat": in_chat, "evaluate": in_evaluation}


def assert_next_query_works(pool, entry_point):
    if entry_point is in_evaluation:
        verdict = judge(prepare_gold(SCHEMA, GOLD, timeout_s=LIMIT_S, sandbox=pool), GOLD)
        assert verdict.test_suite_correct, verdict.error
    else:
        assert in_chat(pool, GOLD) == "Result: 2 rows, in the table below."


@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
@pytest.mark.parametrize("sql, reason", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_sql_ends_in_words_within_its_limits_and_the_next_query_works(fresh_sandbox, entry, sql, reason):
    limit_s = MEMORY_CASE_LIMIT_S if reason == "memory" else LIMIT_S
    start = time.monotonic()
    said = entry(fresh_sandbox, sql, limit_s)
    assert time.monotonic() - start < LIMIT_S + SLACK_S + (2 * LIMIT_S if entry is in_evaluation else 0)  # + the gold
    assert reason in said and "\n" not in said
    assert all(peak_memory_bytes(pid) < MEMORY_BYTES for pid in fresh_sandbox.worker_pids())
    assert_next_query_works(fresh_sandbox, entry)


def test_an_endless_end_state_read_is_stopped_in_evaluation(fresh_sandbox):
    """A data-changing gold makes the judge read the answer's end state (the chat shows only a statement's
    result): a view that never ends must not hang it."""
    gold = prepare_gold(SCHEMA, "DELETE FROM orders WHERE amount < 100", timeout_s=LIMIT_S, sandbox=fresh_sandbox)
    start = time.monotonic()
    verdict = judge(gold, f"```sql\nCREATE VIEW v AS {ENDLESS}\n```")
    assert time.monotonic() - start < LIMIT_S + SLACK_S
    assert verdict.execution_correct is False and "end-state read stopped after" in verdict.error


def test_a_worker_killed_from_outside_mid_query_is_an_error_in_the_chat_and_the_chat_goes_on(fresh_sandbox):
    chat = SqlChat(client=None, model="local", templates=None, sandbox=fresh_sandbox, query_timeout_s=30)
    schema = load_schema(SCHEMA, fresh_sandbox)
    (pid,) = fresh_sandbox.worker_pids()
    threading.Timer(0.5, os.kill, (pid, signal.SIGSEGV)).start()
    start = time.monotonic()
    note, result = chat.run_sql(f"```sql\n{ENDLESS}\n```", schema)
    assert time.monotonic() - start < 5 and result is None
    assert note == "The SQL did not run: the sandbox's worker process died (SIGSEGV); the SQL did not finish."
    assert_next_query_works(fresh_sandbox, in_chat)


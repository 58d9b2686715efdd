"""Hostile SQL through the project's own entry points: the chat's SqlChat (what a person pastes or a model answers)
and mode: evaluate's judge. Each case ends in an error in words within its time limit plus a small margin, the
sandbox's workers stay under their memory cap, no file appears anywhere, and the next query works."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sandbox import MEMORY_BYTES, Sandbox
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


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Workers started in an empty directory that must stay empty, as must the repository and /tmp's top level."""
    monkeypatch.chdir(tmp_path)
    before = set(ROOT.iterdir()), set(Path("/tmp").iterdir())
    with Sandbox(workers=2) as pool:
        yield pool
    assert list(tmp_path.iterdir()) == []
    assert set(ROOT.iterdir()) == before[0]
    assert not {path for path in set(Path("/tmp").iterdir()) - before[1] if path.suffix == ".db"}


def in_chat(sandbox, sql, limit_s=LIMIT_S):
    """What the chat says after an answer holding `sql` (no model needed: the SQL is given)."""
    chat = SqlChat(client=None, model="local", templates=None, sandbox=sandbox, query_timeout_s=limit_s)
    note, _ = chat.run_sql(f"```sql\n{sql}\n```", load_schema(SCHEMA, sandbox))
    return note


def in_evaluation(sandbox, sql, limit_s=LIMIT_S):
    verdict = judge(prepare_gold(SCHEMA, GOLD, timeout_s=limit_s, sandbox=sandbox), f"```sql\n{sql}\n```")
    assert verdict.execution_correct is False
    return verdict.error


ENTRY_POINTS = {"chat": in_chat, "evaluate": in_evaluation}


def assert_next_query_works(sandbox, entry_point):
    if entry_point is in_chat:
        assert in_chat(sandbox, GOLD) == "Result: 2 rows, in the table below."
    else:
        verdict = judge(prepare_gold(SCHEMA, GOLD, timeout_s=LIMIT_S, sandbox=sandbox), GOLD)
        assert verdict.test_suite_correct, verdict.error


@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
@pytest.mark.parametrize("sql, reason", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_sql_ends_in_words_within_its_limits_and_the_next_query_works(sandbox, entry, sql, reason):
    limit_s = MEMORY_CASE_LIMIT_S if reason == "memory" else LIMIT_S
    start = time.monotonic()
    said = entry(sandbox, sql, limit_s)
    assert time.monotonic() - start < LIMIT_S + SLACK_S + (2 * LIMIT_S if entry is in_evaluation else 0)  # + the gold
    assert reason in said and "\n" not in said
    assert all(peak_memory_bytes(pid) < MEMORY_BYTES for pid in sandbox.worker_pids())
    assert_next_query_works(sandbox, entry)


def test_an_endless_end_state_read_is_stopped_in_evaluation(sandbox):
    """A data-changing gold makes the judge read the answer's end state (the chat shows only a statement's
    result): a view that never ends must not hang it."""
    gold = prepare_gold(SCHEMA, "DELETE FROM orders WHERE amount < 100", timeout_s=LIMIT_S, sandbox=sandbox)
    start = time.monotonic()
    verdict = judge(gold, f"```sql\nCREATE VIEW v AS {ENDLESS}\n```")
    assert time.monotonic() - start < LIMIT_S + SLACK_S
    assert verdict.execution_correct is False and "end-state read stopped after" in verdict.error


def test_a_worker_killed_from_outside_mid_query_is_an_error_in_the_chat_and_the_chat_goes_on(sandbox):
    chat = SqlChat(client=None, model="local", templates=None, sandbox=sandbox, query_timeout_s=30)
    schema = load_schema(SCHEMA, sandbox)
    (pid,) = sandbox.worker_pids()
    threading.Timer(0.5, os.kill, (pid, signal.SIGSEGV)).start()
    start = time.monotonic()
    note, result = chat.run_sql(f"```sql\n{ENDLESS}\n```", schema)
    assert time.monotonic() - start < 5 and result is None
    assert note == "The SQL did not run: the sandbox's worker process died (SIGSEGV); the SQL did not finish."
    assert_next_query_works(sandbox, in_chat)


def peak_memory_bytes(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")

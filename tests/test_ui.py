"""The chat logic (ui/chat.py) without a browser: a real vLLM server answers, the real sandbox runs the SQL, and
every fault ends its turn with a message in words while the next turn still works."""

import subprocess
import sys
import time
from itertools import pairwise

import pytest
from openai import OpenAI

from conftest import ENDLESS_ROW, ROOT, free_port, run_main
from sandbox import default_sandbox
from scoring import execute, load_schema
from ui.chat import SqlChat
from utils import add_formatted_sql, conversation, load_templates

PROMPTS = ROOT / "prompts" / "gretelai" / "synthetic_text_to_sql"
INTERACT_CONFIG = ROOT / "configs" / "gretelai" / "synthetic_text_to_sql" / "interact.yaml"
TEMPLATES = load_templates(PROMPTS)
FACTORIES_ID = 48  # "How many factories are there for each country?": a two-row answer

# A model's answer -> what the chat must say about its SQL.
BAD_ANSWERS = {
    "no SQL": ("I am not sure which table you mean.", "The answer holds no SQL"),
    "SQL that errors": ("```sql\nSELECT nope FROM factories\n```", "The SQL did not run: no such column: nope."),
    "a query that runs forever": (
        "```sql\nWITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n\n```",
        "The SQL did not run: query stopped after 2 s time limit."),
    "a cross join of a billion rows": (
        ("```sql\nWITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)\n"
         "SELECT COUNT(*) FROM n AS a, n AS b, n AS c\n```"),
        "The SQL did not run: query stopped after 2 s time limit."),
    "a huge result": (
        "```sql\nWITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000) SELECT x FROM n\n```",
        "The query returned more than 100 rows; the first 100 are in the table below."),
    "ATTACH": ("```sql\nATTACH DATABASE '/tmp/stolen.db' AS stolen\n```", "ATTACH, DETACH and VACUUM are not allowed"),
    "load_extension": ("```sql\nSELECT load_extension('/tmp/evil.so')\n```", "load_extension() is not allowed in the sandbox"),
    "a PRAGMA change": ("```sql\nPRAGMA writable_schema = ON\n```", "PRAGMA writable_schema is not allowed in the sandbox"),
}
# A schema in the schema box -> what the chat must say (without asking the model).
BAD_SCHEMAS = {
    "does not parse": ("CREATE TABLE factories (factory_id INT", "schema statement 1 of 1 fails: incomplete input"),
    "ATTACH": ("ATTACH DATABASE '/tmp/stolen.db' AS stolen;", "ATTACH, DETACH and VACUUM are not allowed"),
    "endless recursion": ("CREATE TABLE t AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n;",
                          "schema stopped after 2 s time limit"),
}


def make_chat(base_url, model="local", **options):
    return SqlChat(OpenAI(base_url=base_url, api_key="EMPTY", max_retries=0), model, TEMPLATES, default_sandbox(), **options)


def last_reply(replies):
    *_, last = replies
    return last


def assert_answers_with_its_table(chat, row):
    """A whole turn on a training row: the model's SQL word for word, and the rows that SQL gives on the schema."""
    text, result = last_reply(chat.reply(row["sql_prompt"], row["sql_context"]))
    assert text.startswith(add_formatted_sql(row)["new_sql"]), text
    assert result.rows == execute(row["sql_context"], row["sql"], default_sandbox()).rows


@pytest.fixture
def factories(sql_rows):
    return next(row for row in sql_rows if row["id"] == FACTORIES_ID)


@pytest.fixture
def chat(sql_server):
    return make_chat(sql_server)


def test_the_question_is_sent_as_training_rendered_it(sql_rows):
    chat = make_chat("http://127.0.0.1:9/v1")  # nothing is sent here
    for row in sql_rows:
        assert chat.prompt(row["sql_prompt"], row["sql_context"]) == conversation({**row, **add_formatted_sql(row)},
                                                                                  TEMPLATES)["prompt"]


@pytest.mark.vllm
def test_the_answer_streams_then_its_sql_runs_on_the_users_schema(chat, factories):
    replies = list(chat.reply(factories["sql_prompt"], factories["sql_context"]))
    partial = [text for text, _ in replies[:-1]]
    assert len(partial) >= 5 and all(result is None for _, result in replies[:-1])  # token by token, table at the end
    assert all(later.startswith(earlier) for earlier, later in pairwise(partial))
    text, result = replies[-1]
    assert text == f"{add_formatted_sql(factories)['new_sql']}\n\nResult: 2 rows, in the table below."
    assert result.columns == ["country", "factory_count"]
    assert sorted(result.rows) == [("China", 2), ("Mexico", 1)]


@pytest.mark.vllm
def test_execution_guided_answers_vote_among_sampled_candidates(sql_server, factories):
    chat = make_chat(sql_server, candidates=4)
    text, result = last_reply(chat.reply(factories["sql_prompt"], factories["sql_context"]))
    assert "Execution-guided: " in text and "(4 asked) give its result." in text
    assert sorted(result.rows) == [("China", 2), ("Mexico", 1)]


@pytest.mark.vllm
@pytest.mark.parametrize("answer, message", BAD_ANSWERS.values(), ids=BAD_ANSWERS)
def test_a_bad_or_hostile_answer_says_why_and_the_next_turn_works(chat, factories, answer, message):
    schema = load_schema(factories["sql_context"], default_sandbox())
    started = time.monotonic()
    note, result = chat.run_sql(answer, schema)
    assert message in note
    assert time.monotonic() - started < 5  # the sandbox's 2 s limit, not the query's
    if result is not None:  # the huge result: its first rows only
        assert result.truncated and len(result.rows) == 100
    assert_answers_with_its_table(chat, factories)


@pytest.mark.vllm
@pytest.mark.parametrize("schema, message", BAD_SCHEMAS.values(), ids=BAD_SCHEMAS)
def test_a_bad_or_hostile_schema_says_why_without_asking_the_model(chat, factories, schema, message):
    replies = list(chat.reply(factories["sql_prompt"], schema))
    assert len(replies) == 1
    text, result = replies[0]
    assert text.startswith("The schema does not load: ") and message in text and result is None
    assert_answers_with_its_table(chat, factories)


@pytest.mark.vllm
def test_a_server_that_is_down_is_named_and_the_chat_answers_once_it_is_up(sql_server, factories):
    down = f"http://127.0.0.1:{free_port()}/v1"  # a real closed port: connection refused
    chat = make_chat(down)
    text, result = last_reply(chat.reply(factories["sql_prompt"], factories["sql_context"]))
    assert text.startswith(f"No model server answers at {down} (") and "serve_cpu.py" in text and result is None
    chat.client.base_url = sql_server  # the server comes up (here, at another address): no restart of the chat
    assert_answers_with_its_table(chat, factories)


@pytest.mark.vllm
def test_an_unknown_model_name_is_named_with_the_ones_served(sql_server, factories):
    chat = make_chat(sql_server, model="gemma-3-270m")
    text, result = last_reply(chat.reply(factories["sql_prompt"], factories["sql_context"]))
    assert "has no model named 'gemma-3-270m'" in text and "local" in text and result is None
    chat.model = "local"
    assert_answers_with_its_table(chat, factories)


@pytest.mark.vllm
def test_stopping_an_answer_ends_its_turn_and_the_next_turn_works(chat, factories):
    replies = chat.reply(ENDLESS_ROW["sql_prompt"], ENDLESS_ROW["sql_context"])
    for _ in range(5):
        next(replies)
    replies.close()  # what the stop button does: the request is closed, the database too
    assert next(replies, None) is None  # nothing more: no note, no table
    assert_answers_with_its_table(chat, factories)


@pytest.mark.vllm
def test_an_answer_cut_at_the_token_limit_says_so(sql_server):
    chat = make_chat(sql_server, max_tokens=24)
    text, _ = last_reply(chat.reply(ENDLESS_ROW["sql_prompt"], ENDLESS_ROW["sql_context"]))
    assert "The answer reached the 24-token limit and was cut off." in text


def test_the_ui_imports_no_training_code():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, ui.app, ui.chat; print(' '.join(sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert not {"trl", "transformers", "peft", "accelerate", "torch", "models"} & set(loaded)


def test_templates_that_need_more_than_a_question_and_a_schema_fail_at_start(tmp_path):
    for name in ("system", "assistant"):
        (tmp_path / f"{name}.jinja").write_text((PROMPTS / f"{name}.jinja").read_text())
    (tmp_path / "user.jinja").write_text("{{ sql_prompt }} in {{ domain }}")
    done = run_main(["--config", INTERACT_CONFIG, "--prompts_path", tmp_path], timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"sqltune: error: {tmp_path}/user.jinja uses domain, which dataset the chat")

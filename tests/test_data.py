"""Data: loading and splitting, the workshop's SQL formatting, and templates rendered into chat rows."""

import json

import pytest

from conftest import ROOT, SHIPPED_DATA, shipped_rows
from config import ConfigError, ExtraConfig
from sandbox import default_sandbox
from scoring import execute
from ui.examples import chat_examples
from utils import add_formatted_sql, conversation, format_sql, load_splits, load_templates

PROMPTS = ROOT / "prompts" / "gretelai" / "synthetic_text_to_sql"
# The workshop's example, as its user turn and its answer (README: the chat's first example).
BUS_ROUTES_USER_TURN = """Prompt:
Find the total fare collected from passengers on 'Green Line' buses

Schema:
```sql
CREATE TABLE bus_routes (route_name VARCHAR(50),
                                    fare FLOAT);

INSERT INTO bus_routes (route_name, fare)
VALUES ('Green Line', 1.50),
       ('Red Line', 2.00),
       ('Blue Line', 1.75);
```"""
BUS_ROUTES_ANSWER = """```sql
SELECT SUM(fare)
FROM bus_routes
WHERE route_name = 'Green Line';
```"""


def chat(row, data_format="prompt_completion"):
    return conversation({**row, **add_formatted_sql(row)}, load_templates(PROMPTS), data_format)


def test_bus_routes_example_is_the_workshops_and_its_gold_answers_it():
    example = json.loads((PROMPTS / "example.json").read_text())
    rendered = chat(example)
    assert rendered["prompt"][1] == {"role": "user", "content": BUS_ROUTES_USER_TURN}
    assert rendered["completion"] == [{"role": "assistant", "content": BUS_ROUTES_ANSWER}]
    assert execute(example["sql_context"], example["sql"], default_sandbox()).rows == [(1.5,)]


def test_the_chat_offers_the_workshop_example_first_then_test_rows():
    examples = chat_examples(ExtraConfig(dataset_name=str(SHIPPED_DATA)), test_rows=2)
    example = json.loads((PROMPTS / "example.json").read_text())
    test = shipped_rows("test")[:2]
    assert examples == [(row["sql_prompt"], row["sql_context"]) for row in [example, *test]]


def test_sql_is_reindented_upper_cased_and_fenced():
    assert format_sql("select a, count(*) from t where b = 'x' group by a") == (
        "```sql\nSELECT a,\n       count(*)\nFROM t\nWHERE b = 'x'\nGROUP BY a\n```"
    )


def check_chat_row(row, data_format="prompt_completion"):
    rendered = chat(row, data_format)
    if data_format == "language_modeling":
        assert [m["role"] for m in rendered["messages"]] == ["system", "user", "assistant"]
        return
    system, user = rendered["prompt"]
    (assistant,) = rendered["completion"]
    assert (system["role"], user["role"], assistant["role"]) == ("system", "user", "assistant")
    assert "expert SQL generator" in system["content"]
    assert user["content"].startswith(f"Prompt:\n{row['sql_prompt']}\n\nSchema:\n```sql\n")
    assert assistant["content"].startswith("```sql\n") and assistant["content"].endswith("\n```")
    # Formatting changes layout and keyword case, never the words of the query.
    squeeze = lambda text: "".join(text.split()).upper()  # noqa: E731
    assert squeeze(assistant["content"][7:-4]) == squeeze(row["sql"])


def test_every_shipped_row_formats_and_renders():
    for row in shipped_rows("train") + shipped_rows("test"):
        check_chat_row(row)


def test_real_gretel_rows_format_and_render(real_gretel_rows):
    for row in real_gretel_rows:
        check_chat_row(row)
        check_chat_row(row, "language_modeling")


def test_validation_is_carved_from_train_sized_like_test_and_repeatable():
    extra = ExtraConfig(dataset_name=str(SHIPPED_DATA))
    first, again = load_splits(extra), load_splits(extra)
    assert len(first["validation"]) == len(first["test"]) == 200
    assert len(first["train"]) == 2000 - 200
    assert first["validation"]["id"] == again["validation"]["id"]  # seed 42
    assert not set(first["validation"]["id"]) & set(first["train"]["id"])


def test_a_single_local_file_loads_as_train(tmp_path):
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(row) for row in shipped_rows("test")[:20]))
    splits = load_splits(ExtraConfig(dataset_name=str(tmp_path / "rows.jsonl"), dataset_test_split="train"))
    assert len(splits["validation"]) == 10 and len(splits["train"]) == 10


def test_a_local_folder_gets_its_splits_from_the_file_names(tmp_path):
    rows = shipped_rows("test")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:30]))
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[30:35]))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[35:45]))
    splits = load_splits(ExtraConfig(dataset_name=str(tmp_path)))
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [30, 5, 10]  # dev.jsonl is validation


@pytest.mark.parametrize("content", ["empty", "mixed formats"])
def test_a_local_folder_without_usable_files_is_one_line_naming_it(tmp_path, content):
    if content == "mixed formats":
        (tmp_path / "train.jsonl").write_text(json.dumps(shipped_rows("test")[0]) + "\n")
        (tmp_path / "test.csv").write_text("sql_prompt,sql_context\nq,c\n")
    with pytest.raises(ConfigError, match=f"dataset_name: cannot read {tmp_path}"):
        load_splits(ExtraConfig(dataset_name=str(tmp_path)))


def test_train_samples_limits_the_training_rows():
    splits = load_splits(ExtraConfig(dataset_name=str(SHIPPED_DATA), train_samples=7, eval_samples=3))
    assert (len(splits["train"]), len(splits["validation"])) == (7, 3)


@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_rows_have_gretel_columns(split):
    assert {"sql_prompt", "sql_context", "sql", "sql_complexity"} <= set(shipped_rows(split)[0])

"""Data: loading and splitting, the workshop's SQL formatting, and templates rendered into chat rows."""

import json

import pytest

from conftest import ROOT, SHIPPED_DATA, shipped_rows
from utils import ExtraConfig, add_formatted_sql, conversation, format_sql, load_splits, load_templates

PROMPTS = ROOT / "prompts" / "gretelai" / "synthetic_text_to_sql"
BUS_ROUTES_USER_TURN = """Prompt:
Which bus routes in Springfield carry more than 1000 riders a day?

Schema:
```sql
CREATE TABLE bus_routes (route_id INT, route_name VARCHAR(50),
                                                  city VARCHAR(50),
                                                       daily_riders INT);

INSERT INTO bus_routes (route_id, route_name, city, daily_riders)
VALUES (1, 'Downtown Loop', 'Springfield', 1200),
       (2, 'Airport Express', 'Springfield', 800),
       (3, 'Harbor Line', 'Shelbyville', 950);
```"""


def chat(row, data_format="prompt_completion"):
    return conversation({**row, **add_formatted_sql(row)}, load_templates(PROMPTS), data_format)


def test_bus_routes_example_renders_the_workshop_user_turn():
    example = json.loads((PROMPTS / "example.json").read_text())
    user = chat({**example, "sql": "SELECT 1"})["prompt"][1]
    assert user == {"role": "user", "content": BUS_ROUTES_USER_TURN}


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


def test_train_samples_limits_the_training_rows():
    splits = load_splits(ExtraConfig(dataset_name=str(SHIPPED_DATA), train_samples=7, eval_samples=3))
    assert (len(splits["train"]), len(splits["validation"])) == (7, 3)


@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_rows_have_gretel_columns(split):
    assert {"sql_prompt", "sql_context", "sql", "sql_complexity"} <= set(shipped_rows(split)[0])

"""The chat's example questions: the workshop's bus_routes example (example.json beside the prompts), then the
first rows of the test split."""

import json
from pathlib import Path

from config import ConfigError
from utils import load_splits


def chat_examples(extra, test_rows=5):
    """(question, schema) pairs. The chat works without the dataset, so one that cannot be loaded only costs its
    examples."""
    example = Path(extra.prompts_path) / "example.json"
    rows = [json.loads(example.read_text())] if example.is_file() else []
    try:
        test = load_splits(extra)["test"]
        rows += test.select(range(min(test_rows, len(test))))
    except ConfigError as error:
        print(f"sqltune: no examples from the test split ({error})")
    return [(row["sql_prompt"], row["sql_context"]) for row in rows]

"""mode: merge, end to end: a LoRA checkpoint from the project's training, merged by `main.py --mode merge`
(the sql_model fixture in conftest.py), served by a real vLLM CPU server, answers greedily exactly as the
adapter does in transformers.

The server computes in float32 (`--dtype float32`): vLLM would otherwise run this float32 model in bfloat16,
whose rounding may flip a near-tie between two tokens that float32 transformers resolves the other way.
"""

import json

import pytest
import torch
from openai import OpenAI
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer

from conftest import ROOT
from utils import add_formatted_sql, conversation, load_templates

pytestmark = pytest.mark.vllm
TEMPLATES = load_templates(ROOT / "prompts" / "gretelai" / "synthetic_text_to_sql")
MAX_TOKENS = 64


def greedy_text(model, tokenizer, messages):
    """The model's greedy answer in transformers, decoded as vLLM decodes it (special tokens dropped)."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=MAX_TOKENS, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_the_merged_folder_is_a_whole_model(sql_model):
    assert (sql_model / "model.safetensors").is_file() and not (sql_model / "adapter_config.json").exists()
    assert json.loads((sql_model / "config.json").read_text())["use_cache"] is True
    assert (sql_model / "chat_template.jinja").is_file()


def test_the_served_merged_model_answers_like_the_adapter_in_transformers(sql_lora_checkpoint, sql_server, sql_rows):
    adapter = AutoPeftModelForCausalLM.from_pretrained(sql_lora_checkpoint, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(sql_lora_checkpoint)
    client = OpenAI(base_url=sql_server, api_key="EMPTY")
    for row in sql_rows:
        messages = conversation({**row, **add_formatted_sql(row)}, TEMPLATES)["prompt"]
        expected = greedy_text(adapter, tokenizer, messages)
        assert expected == add_formatted_sql(row)["new_sql"]  # non-trivial: the row's whole SQL, as trained
        with adapter.disable_adapter():  # and the adapter is what writes it: the base model alone does not
            assert greedy_text(adapter, tokenizer, messages) != expected
        served = client.chat.completions.create(model="local", messages=messages, temperature=0, max_tokens=MAX_TOKENS)
        assert served.choices[0].message.content == expected

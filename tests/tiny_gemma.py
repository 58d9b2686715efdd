"""A tiny random Gemma 3 (model + tokenizer + chat template) that builds offline in well under a second.

Used by tests and benchmarks as a stand-in for google/gemma-3-270m-it: same model class, same special
tokens and chat template, a vocabulary of a few hundred words so a training step takes milliseconds.
"""

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
CHAT_TEMPLATE = (ROOT / "prompts" / "gemma3_chat_template.jinja").read_text()
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
VOCAB_SIZE = 2048


def _training_text():
    """Text that covers the words the tests use: SQL, prompts, and the shipped data."""
    text = [(ROOT / "prompts" / "gemma3_chat_template.jinja").read_text()]
    text += [p.read_text() for p in (ROOT / "prompts").rglob("*.jinja")]
    text += [p.read_text()[:200_000] for p in (ROOT / "data").rglob("*.jsonl")]
    text.append("SELECT FROM WHERE GROUP BY ORDER LIMIT JOIN ON COUNT SUM AVG MIN MAX AS AND OR NOT IN "
                "select from where group by order limit join count sum avg min max as and or not in "
                "CREATE TABLE INSERT INTO VALUES INT VARCHAR TEXT REAL DECIMAL DATE ( ) , ; * = < > ' ` 0 1 2 3 4 5 6 7 8 9")
    return text


def build_tokenizer():
    """A byte-level BPE tokenizer with Gemma's special tokens, ids 0..5 as in Gemma (pad 0, eos 1, bos 2)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_text(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"], chat_template=CHAT_TEMPLATE,
        add_bos_token=False,
    )


def build_model(tokenizer, seed=0):
    import torch

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=2048,
        sliding_window=512, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, use_cache=True, attn_implementation="sdpa",
    )
    model = Gemma3ForCausalLM(config)
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id, end_of_turn],
    )
    return model


def save_tiny_gemma(path, seed=0):
    """Write a tiny Gemma 3 checkpoint folder (weights, tokenizer, chat template) and return its path."""
    path = Path(path)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


if __name__ == "__main__":
    import sys

    print(save_tiny_gemma(sys.argv[1] if len(sys.argv) > 1 else "tiny-gemma"))

"""Settings and their checks: ExtraConfig (sqltune's own YAML keys), the numbers every section must respect,
.env loading, and ConfigError, the one-line error every bad input ends in.

main.py parses the YAML and the command line into ExtraConfig and trl's ModelConfig and SFTConfig (GRPOConfig for
mode grpo), then calls
`check_numbers` so that a value no run can use stops at start instead of deep inside torch.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MODES = ("train", "grpo", "merge", "evaluate", "interact")
MODEL_CLASSES = ("AutoModelForCausalLM", "Gemma3ForCausalLM")
DATA_FORMATS = ("prompt_completion", "language_modeling")
TEMPLATE_NAMES = ("system", "user", "assistant")
DEFAULT_OPENAI_API_BASE = "http://localhost:8080/v1"
HUB_HELP = (
    "set HF_TOKEN (or `hf auth login`) and accept its terms on the hub, or run offline with the *_cpu.yaml configs "
    "in configs/gretelai/synthetic_text_to_sql/ (sft_cpu.yaml, evaluate_cpu.yaml)"
)
# The smallest value that makes sense, for numbers that transformers, trl and peft take as given and fail on much
# later: a batch size of -1 loads the model and ends in a torch traceback. Each key lives in one of the three sections.
AT_LEAST = {
    "per_device_train_batch_size": 1, "per_device_eval_batch_size": 1, "gradient_accumulation_steps": 1,
    "learning_rate": 0, "num_train_epochs": 0, "warmup_steps": 0, "weight_decay": 0, "max_grad_norm": 0,
    "max_length": 1, "dataloader_num_workers": 0, "lora_r": 1, "lora_alpha": 0, "lora_dropout": 0,
    "train_samples": 1, "eval_samples": 1, "max_train_minutes": 0,
    "eval_limit": 1, "eval_max_tokens": 1, "eval_concurrency": 1, "eval_candidates": 1, "eval_temperature": 0,
    "chat_max_tokens": 1, "chat_candidates": 1, "port": 1,
    "max_completion_length": 1, "reward_sample_rows": 0, "reward_sql_runs": 0,
}


class ConfigError(Exception):
    """A bad input we can explain in one line; main.py prints it and exits with status 2."""


def one_of(key, value, allowed):
    """Fail with a message naming the key, the value and what is allowed."""
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def first_line(error):
    """An exception as one line, for messages that wrap a library's error."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


@dataclass
class ExtraConfig:
    """sqltune's own settings; trl's ModelConfig and SFTConfig hold the rest of the YAML."""

    mode: str = field(default="train", metadata={"help": f"What to run: {', '.join(MODES)}."})
    model_class: str = field(default="AutoModelForCausalLM", metadata={"help": "transformers class that loads the model."})
    dataset_name: str = field(
        default="gretelai/synthetic_text_to_sql",
        metadata={"help": "Hub dataset id, or a local folder of <split>.jsonl/.parquet files, or one such file."},
    )
    dataset_subset: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(default="test", metadata={"help": "Split to evaluate on."})
    dataset_eval_split: str = field(
        default="validation", metadata={"help": "Validation split; carved from train (sized like test, seed 42) if absent."}
    )
    prompts_path: str = field(
        default="prompts/gretelai/synthetic_text_to_sql", metadata={"help": "Folder with system/user/assistant.jinja."}
    )
    fine_tuning_data_format: str = field(
        default="prompt_completion",
        metadata={"help": "prompt_completion (loss on the answer only) or language_modeling (loss on every token)."},
    )
    train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation rows."})
    max_train_minutes: float | None = field(default=None, metadata={
        "help": "train, grpo: a wall-clock budget: the run times its first steps, then trains as many steps as fit "
                "(at most max_steps), with the learning-rate schedule fitted to that length (budget.py). 0: none."})
    label_only_logits: bool = field(
        default=False, metadata={"help": "train, grpo: compute the output layer only at positions that carry a label (fast.py)."}
    )
    reward_sample_rows: float = field(
        default=0.5, metadata={"help": "grpo: execution reward of an answer right on the sample rows only (test-suite-correct scores 1)."}
    )
    reward_sql_runs: float = field(
        default=0.1, metadata={"help": "grpo: execution reward of an answer whose SQL runs but returns other rows."}
    )
    adapter_path: str | None = field(default=None, metadata={"help": "merge: the LoRA checkpoint folder to fold in."})
    merged_output_dir: str | None = field(default=None, metadata={"help": "merge: where to save (default <adapter>-merged)."})
    openai_api_base: str | None = field(
        default=None, metadata={"help": f"evaluate, interact: OpenAI-compatible endpoint (default: OPENAI_API_BASE from the environment or .env, else {DEFAULT_OPENAI_API_BASE})."}
    )
    served_model_name: str = field(default="local", metadata={"help": "evaluate, interact: the model's name at that endpoint."})
    compare_model_name: str | None = field(
        default=None, metadata={"help": "evaluate: a second model (e.g. the base model) judged on the same rows, side by side."}
    )
    compare_api_base: str | None = field(default=None, metadata={"help": "evaluate: the second model's endpoint (default: openai_api_base)."})
    eval_limit: int | None = field(default=None, metadata={"help": "evaluate: only the first N test rows."})
    eval_max_tokens: int = field(default=256, metadata={"help": "evaluate: most tokens per answer."})
    eval_concurrency: int = field(default=16, metadata={"help": "evaluate: requests in flight at once (the server batches them)."})
    eval_candidates: int = field(default=1, metadata={
        "help": "evaluate: answers per question; above 1, the greedy answer and N-1 sampled ones vote by the result of "
                "their SQL (execution-guided; ties go to the greedy answer). 1: the greedy answer alone."})
    eval_temperature: float = field(default=0.8, metadata={"help": "evaluate: sampling temperature of the extra candidates."})
    eval_output_dir: str | None = field(default=None, metadata={"help": "evaluate: output folder (default eval_output/<served_model_name>)."})
    port: int = field(default=7860, metadata={"help": "interact: the chat app's port on 127.0.0.1 (or GRADIO_SERVER_NAME)."})
    share: bool = field(default=False, metadata={"help": "interact: also open a public gradio.live link to the chat."})
    chat_max_tokens: int = field(default=256, metadata={"help": "interact: most tokens per answer."})
    chat_candidates: int = field(default=1, metadata={
        "help": "interact: as eval_candidates, for the chat: the note under an answer says which candidate won and how "
                "many agreed (sampled at eval_temperature)."})

    def __post_init__(self):
        one_of("mode", self.mode, MODES)
        one_of("model_class", self.model_class, MODEL_CLASSES)
        one_of("fine_tuning_data_format", self.fine_tuning_data_format, DATA_FORMATS)
        check_numbers(self)
        self.openai_api_base = self.openai_api_base or os.environ.get("OPENAI_API_BASE") or DEFAULT_OPENAI_API_BASE
        for name in TEMPLATE_NAMES:
            if not (Path(self.prompts_path) / f"{name}.jinja").is_file():
                raise ConfigError(f"prompts_path: {self.prompts_path}/{name}.jinja not found (need {', '.join(TEMPLATE_NAMES)}.jinja)")


def check_numbers(*sections):
    """Fail, naming the key and the value, on a number below its AT_LEAST minimum in any of the sections."""
    for section in sections:
        for key, minimum in AT_LEAST.items():
            value = getattr(section, key, None)
            if isinstance(value, int | float) and value < minimum:
                raise ConfigError(f"{key}: must be at least {minimum}, got {value}")


def load_dotenv_if_present():
    """Load .env from the working directory (WANDB_PROJECT, OPENAI_API_BASE, ...) without overriding the shell."""
    from dotenv import load_dotenv

    load_dotenv(Path(os.getcwd()) / ".env", override=False)

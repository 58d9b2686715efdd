"""Configuration, data and prompts: everything between a YAML file and the rows a trainer sees.

Read top to bottom: the errors we raise, ExtraConfig and its checks, dataset loading and splitting,
the gretel SQL formatting, and the Jinja templates that turn a row into a conversation.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import sqlparse
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

ROOT = Path(__file__).resolve().parent
MODES = ("train", "merge", "evaluate", "interact")
MODEL_CLASSES = ("AutoModelForCausalLM", "Gemma3ForCausalLM")
DATA_FORMATS = ("prompt_completion", "language_modeling")
TEMPLATE_NAMES = ("system", "user", "assistant")
LOCAL_DATA_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
DEFAULT_OPENAI_API_BASE = "http://localhost:8080/v1"
HUB_HELP = (
    "set HF_TOKEN (or `hf auth login`) and accept its terms on the hub, or run offline with the *_cpu.yaml configs "
    "in configs/gretelai/synthetic_text_to_sql/ (sft_cpu.yaml, evaluate_cpu.yaml)"
)


class ConfigError(Exception):
    """A bad input we can explain in one line; main.py prints it and exits with status 2."""


def one_of(key, value, allowed):
    """Fail with a message naming the key, the value and what is allowed."""
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


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
    label_only_logits: bool = field(
        default=False, metadata={"help": "train: compute the output layer only at positions that carry a label (fast.py)."}
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
    eval_output_dir: str | None = field(default=None, metadata={"help": "evaluate: output folder (default eval_output/<served_model_name>)."})
    port: int = field(default=7860, metadata={"help": "interact: the chat app's port on 127.0.0.1 (or GRADIO_SERVER_NAME)."})
    share: bool = field(default=False, metadata={"help": "interact: also open a public gradio.live link to the chat."})
    chat_max_tokens: int = field(default=256, metadata={"help": "interact: most tokens per answer."})

    def __post_init__(self):
        one_of("mode", self.mode, MODES)
        one_of("model_class", self.model_class, MODEL_CLASSES)
        one_of("fine_tuning_data_format", self.fine_tuning_data_format, DATA_FORMATS)
        for key in ("eval_limit", "eval_max_tokens", "eval_concurrency", "chat_max_tokens"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be at least 1, got {getattr(self, key)}")
        self.openai_api_base = self.openai_api_base or os.environ.get("OPENAI_API_BASE") or DEFAULT_OPENAI_API_BASE
        for name in TEMPLATE_NAMES:
            if not (Path(self.prompts_path) / f"{name}.jinja").is_file():
                raise ConfigError(f"prompts_path: {self.prompts_path}/{name}.jinja not found (need {', '.join(TEMPLATE_NAMES)}.jinja)")


# ---------------------------------------------------------------- datasets


def load_raw_dataset(extra):
    """A DatasetDict from a local folder or file, or from the hub by name."""
    from datasets import DatasetDict, load_dataset

    path = Path(extra.dataset_name)
    if path.is_file():
        return DatasetDict({"train": load_dataset(data_builder(path), data_files=str(path), split="train")})
    if path.is_dir():
        files = {f.stem: str(f) for f in sorted(path.iterdir()) if f.suffix in LOCAL_DATA_SUFFIXES}
        if not files:
            raise ConfigError(f"dataset_name: {path} holds no .jsonl, .json or .parquet file")
        builders = {data_builder(Path(f)) for f in files.values()}
        if len(builders) > 1:
            raise ConfigError(f"dataset_name: {path} mixes file types ({', '.join(sorted(builders))})")
        return load_dataset(builders.pop(), data_files=files)
    return load_hub_dataset(extra.dataset_name, extra.dataset_subset)


def data_builder(path):
    if path.suffix not in LOCAL_DATA_SUFFIXES:
        raise ConfigError(f"dataset_name: {path} is not a .jsonl, .json or .parquet file")
    return LOCAL_DATA_SUFFIXES[path.suffix]


def load_hub_dataset(name, subset):
    from datasets import load_dataset

    try:
        return load_dataset(name, subset)
    except Exception as error:  # offline, gated, misspelt: datasets raises many types for these
        raise ConfigError(f"dataset_name: cannot load {name!r} from the Hugging Face hub ({first_line(error)}); {HUB_HELP}") from None


def first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def split_dataset(raw, extra):
    """train / validation / test as the workshop derives them: validation carved from train, sized like test."""
    from datasets import DatasetDict

    one_of("dataset_train_split", extra.dataset_train_split, list(raw))
    if extra.dataset_test_split not in raw:
        raise ConfigError(f"dataset_test_split: {extra.dataset_test_split!r} is not one of {', '.join(raw)}")
    train, test = raw[extra.dataset_train_split], raw[extra.dataset_test_split]
    if extra.dataset_eval_split in raw:
        validation = raw[extra.dataset_eval_split]
    else:
        carved = train.train_test_split(test_size=min(len(test), len(train) // 2), seed=42)
        train, validation = carved["train"], carved["test"]
    if extra.train_samples:
        train = train.select(range(min(extra.train_samples, len(train))))
    if extra.eval_samples:
        validation = validation.select(range(min(extra.eval_samples, len(validation))))
    return DatasetDict(train=train, validation=validation, test=test)


def load_splits(extra):
    return split_dataset(load_raw_dataset(extra), extra)


def chat_examples(extra, test_rows=5):
    """(question, schema) pairs for the chat: the workshop's example.json beside the prompts, then test rows.
    The chat works without the dataset, so one that cannot be loaded only costs its examples."""
    example = Path(extra.prompts_path) / "example.json"
    rows = [json.loads(example.read_text())] if example.is_file() else []
    try:
        test = load_splits(extra)["test"]
        rows += test.select(range(min(test_rows, len(test))))
    except ConfigError as error:
        print(f"sqltune: no examples from the test split ({error})")
    return [(row["sql_prompt"], row["sql_context"]) for row in rows]


# ---------------------------------------------------------------- gretel formatting


def format_sql(sql):
    """The workshop's formatting: sqlparse reindent and upper-case keywords, in a ```sql fence."""
    pretty = sqlparse.format(sql, reindent=True, keyword_case="upper").strip()
    return f"```sql\n{pretty}\n```"


def add_formatted_sql(row):
    return {"new_sql": format_sql(row["sql"]), "new_sql_context": format_sql(row["sql_context"])}


# ---------------------------------------------------------------- prompt templates

_jinja = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)


def load_templates(prompts_path):
    """{name: Template} for system, user and assistant; a syntax error names the file."""
    templates = {}
    for name in TEMPLATE_NAMES:
        path = Path(prompts_path) / f"{name}.jinja"
        try:
            templates[name] = _jinja.from_string(path.read_text())
        except TemplateSyntaxError as error:
            raise ConfigError(f"{path}:{error.lineno}: {error.message}") from None
        except OSError as error:
            raise ConfigError(f"prompts_path: cannot read {path} ({error.strerror})") from None
    return templates


def template_variables(prompts_path):
    """{template name: variables it uses}, found statically so a mismatch fails before any work is done."""
    found = {}
    for name in TEMPLATE_NAMES:
        path = Path(prompts_path) / f"{name}.jinja"
        found[name] = meta.find_undeclared_variables(_jinja.parse(path.read_text()))
    return found


def check_templates_fit(prompts_path, columns, dataset_name, names=TEMPLATE_NAMES):
    """Fail at start, naming the template and the column, when a template asks for data the rows lack."""
    for name, variables in template_variables(prompts_path).items():
        missing = sorted(variables - set(columns)) if name in names else []
        if missing:
            raise ConfigError(
                f"{prompts_path}/{name}.jinja uses {', '.join(missing)}, which dataset {dataset_name} lacks "
                f"(its columns: {', '.join(sorted(columns))})"
            )


def render(template, row):
    try:
        return template.render(**row).strip()
    except UndefinedError as error:
        raise ConfigError(f"template {template.name or ''}: {error.message}") from None


def conversation(row, templates, data_format="prompt_completion"):
    """One row as chat messages: system + user as the prompt, assistant as the completion."""
    prompt = [
        {"role": "system", "content": render(templates["system"], row)},
        {"role": "user", "content": render(templates["user"], row)},
    ]
    completion = [{"role": "assistant", "content": render(templates["assistant"], row)}]
    if data_format == "language_modeling":
        return {"messages": prompt + completion}
    return {"prompt": prompt, "completion": completion}


def prepare_split(split, extra, templates):
    """Formatted SQL + rendered templates, as conversational rows; only the chat columns are kept."""
    if {"sql", "sql_context"} <= set(split.column_names):
        split = split.map(add_formatted_sql, desc="Formatting SQL")
    check_templates_fit(extra.prompts_path, split.column_names, extra.dataset_name)
    return split.map(
        conversation, fn_kwargs={"templates": templates, "data_format": extra.fine_tuning_data_format},
        remove_columns=split.column_names, desc="Rendering prompts",
    )


def prepare_datasets(extra):
    """The train and validation splits, ready for SFTTrainer."""
    splits = load_splits(extra)
    templates = load_templates(extra.prompts_path)
    return prepare_split(splits["train"], extra, templates), prepare_split(splits["validation"], extra, templates)


def openai_client(api_base, **options):
    """A client for an OpenAI-compatible server (vLLM): the key from OPENAI_API_KEY (shell or .env), else EMPTY."""
    from openai import OpenAI

    return OpenAI(base_url=api_base, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"), **options)


def load_dotenv_if_present():
    """Load .env from the working directory (WANDB_PROJECT, OPENAI_API_BASE, ...) without overriding the shell."""
    from dotenv import load_dotenv

    load_dotenv(Path(os.getcwd()) / ".env", override=False)


# ---------------------------------------------------------------- resuming


def last_complete_checkpoint(output_dir):
    """The newest checkpoint-N that was fully written: trainer_state.json is the last file the Trainer saves,
    so a run killed mid-save leaves a folder without it, which we must not resume from."""
    steps = []
    for folder in Path(output_dir).glob("checkpoint-*"):
        if folder.name.split("-")[-1].isdigit() and (folder / "trainer_state.json").is_file():
            steps.append((int(folder.name.split("-")[-1]), folder))
    return str(max(steps)[1]) if steps else None


def resume_point(training_args):
    """`resume_from_checkpoint: true` resumes from the last complete checkpoint when there is one, else starts afresh."""
    resume = training_args.resume_from_checkpoint
    if str(resume).lower() == "true":
        return last_complete_checkpoint(training_args.output_dir)
    return resume


# ---------------------------------------------------------------- hardware and tracking checks


def check_devices(training_args):
    """Refuse settings that need CUDA on a machine without it, saying what to use instead."""
    import torch

    if torch.cuda.is_available():
        return
    if training_args.bf16:
        raise ConfigError("bf16: true needs a CUDA GPU, and none is visible; set bf16: false (as configs/gretelai/synthetic_text_to_sql/sft_cpu.yaml does) or pass --bf16 false")
    if training_args.use_liger_kernel:
        raise ConfigError("use_liger_kernel: true needs a CUDA GPU (Liger's Triton kernels), and none is visible; set use_liger_kernel: false")
    if not training_args.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Without use_cpu, each process would run its own full training into the same output_dir.
        raise ConfigError("use_cpu: false with several processes and no CUDA GPU would train one independent model per process; set use_cpu: true (configs/accelerate_cpu.yaml)")


def use_idle_cpu_cores():
    """`accelerate launch` sets OMP_NUM_THREADS=1 for each process unless its config says `use_cpu: true` or the
    user set OMP_NUM_THREADS, so on a machine without a GPU the workshop's accelerate_single.yaml would train on one
    core of many. Take this process's share of the cores instead, as accelerate does for `use_cpu` configs; a
    thread count the user chose (in the launcher's environment) stays."""
    import psutil
    import torch

    launched_without_use_cpu = os.environ.get("ACCELERATE_USE_CPU") == "False"
    if torch.cuda.is_available() or not launched_without_use_cpu or torch.get_num_threads() != 1:
        return
    launcher = psutil.Process().parent()
    if launcher is None or "OMP_NUM_THREADS" in launcher.environ():
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # macOS has no affinity
    share = cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if share > 1:
        torch.set_num_threads(share)
        print(f"sqltune: no GPU, so training on {share} CPU threads (accelerate launch set 1 for a config without use_cpu)")


def check_wandb(training_args):
    """wandb without a key and without offline mode fails deep inside the trainer; say so up front."""
    if "wandb" not in (training_args.report_to or []):
        return
    has_key = os.environ.get("WANDB_API_KEY") or (Path.home() / ".netrc").is_file()
    if not has_key and os.environ.get("WANDB_MODE") not in ("offline", "disabled", "dryrun"):
        raise ConfigError("report_to: wandb needs WANDB_API_KEY (or `wandb login`); or set WANDB_MODE=offline, or report_to: none")

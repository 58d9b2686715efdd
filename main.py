"""sqltune: fine-tune a small model to write SQL from a question and a schema, then serve and evaluate it.

    uv run accelerate launch --config_file configs/accelerate_single.yaml main.py --config configs/gretelai/synthetic_text_to_sql/sft.yaml

One YAML holds three sections (ExtraConfig: ours; ModelConfig and SFTConfig, or GRPOConfig for mode grpo: trl's); `--key value` on the
command line overrides it. This file parses, validates and dispatches to one small function per mode.
"""

import sys

from config import ConfigError, ExtraConfig, check_numbers, load_dotenv_if_present
from preflight import check_devices, check_wandb, use_idle_cpu_cores


def train(extra, model_args, training_args):
    from training import run_training

    run_training(extra, model_args, training_args)


def grpo(extra, model_args, training_args):
    from grpo import run_grpo

    run_grpo(extra, model_args, training_args)


def merge(extra, model_args, training_args):
    from models import merge_adapter

    if not extra.adapter_path:
        raise ConfigError("adapter_path: required for mode merge (a LoRA checkpoint folder)")
    output_dir = extra.merged_output_dir or f"{extra.adapter_path.rstrip('/')}-merged"
    print(f"Merged model saved to {merge_adapter(extra.adapter_path, output_dir, model_args.dtype or 'auto')}")


def evaluate(extra, model_args, training_args):
    from evaluation import run_evaluation

    print(f"Evaluation written to {run_evaluation(extra)}")


def interact(extra, model_args, training_args):
    from openai import Timeout

    from endpoint import openai_client
    from sandbox import default_sandbox
    from ui.app import launch
    from ui.chat import SqlChat, chat_row
    from ui.examples import chat_examples
    from utils import check_templates_fit, load_templates

    check_templates_fit(extra.prompts_path, chat_row("", ""), "the chat (a question and a schema)")
    # No retries: a person is waiting, and a retry button is one click away. A short connect timeout says
    # "unreachable" quickly; the long read timeout leaves a busy CPU server time for each token.
    api = openai_client(extra.openai_api_base, max_retries=0, timeout=Timeout(120, connect=5))
    templates = load_templates(extra.prompts_path)
    chat = SqlChat(api, extra.served_model_name, templates, default_sandbox(), max_tokens=extra.chat_max_tokens,
                   candidates=extra.chat_candidates, temperature=extra.eval_temperature)
    launch(chat, chat_examples(extra), port=extra.port, share=extra.share)


MODES = {"train": train, "grpo": grpo, "merge": merge, "evaluate": evaluate, "interact": interact}


TRAINING_MODES = ("train", "grpo")  # the modes that train, under accelerate launch


def parse_config(argv):
    """(ExtraConfig, ModelConfig, SFTConfig or, for mode grpo, GRPOConfig) from --config FILE and command-line overrides."""
    import torch
    import yaml
    from trl import GRPOConfig, ModelConfig, SFTConfig, TrlParser

    class Parser(TrlParser):
        def error(self, message):  # argparse prints its whole usage; one line says more
            raise ConfigError(message)

    parser = Parser((ExtraConfig, ModelConfig, GRPOConfig if requested_mode(argv) == "grpo" else SFTConfig))
    if not torch.cuda.is_available():
        parser.set_defaults(use_cpu=True)  # one model per launch, even with several CPU processes
    try:
        extra, model_args, training_args = parser.parse_args_and_config(argv)
    except FileNotFoundError as error:
        raise ConfigError(f"--config: {error.filename} not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"--config: not valid YAML, {yaml_problem(error)}") from None
    except ValueError as error:  # trl's message for unknown YAML keys, transformers' for bad values
        raise ConfigError(str(error).splitlines()[0]) from None
    check_numbers(model_args, training_args)  # ExtraConfig checks its own numbers
    return extra, model_args, training_args


def requested_mode(argv):
    """The mode whose training section (SFTConfig or GRPOConfig) to parse, read before the full parse: the command
    line's --mode when it trains, else the config file's (so `--mode merge` on a GRPO config reads its GRPO keys). An
    unreadable file says nothing here; the full parse reports it."""
    import argparse

    import yaml

    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--mode")
    peek.add_argument("--config")
    known, _ = peek.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.mode in TRAINING_MODES or not known.config:
        return known.mode
    try:
        with open(known.config) as file:
            config = yaml.safe_load(file)
    except (OSError, yaml.YAMLError):
        return None
    return config.get("mode") if isinstance(config, dict) else None


def yaml_problem(error):
    """'FILE line L, column C: what is wrong' from PyYAML's several-line message."""
    mark = getattr(error, "problem_mark", None)
    where = f"{mark.name} line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return where + (getattr(error, "problem", None) or str(error).splitlines()[0])


def main(argv=None):
    load_dotenv_if_present()
    try:
        extra, model_args, training_args = parse_config(argv)
        if extra.mode in TRAINING_MODES:
            check_devices(training_args)
            check_wandb(training_args)
            use_idle_cpu_cores()
        MODES[extra.mode](extra, model_args, training_args)
    except ConfigError as error:
        print(f"sqltune: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

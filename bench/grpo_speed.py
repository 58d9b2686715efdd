"""Where a GRPO step's time goes, and what each speed-up gains.

    uv run python bench/grpo_speed.py                                    # the SFT default's output, a few minutes
    uv run python bench/grpo_speed.py --model tiny --steps 2 --max-tokens 8   # seconds (a tiny random Gemma 3)

Each setting adds one change to the one before (all on the same model, rows and seed, in one process, one after
the other):
1. `trl defaults`: what trl 1.16 does unasked: full fine-tuning, fp32, 4 answers of at most 64 tokens, one prompt a
   step, generation stopping only at <eos> (a model whose generation_config lacks <end_of_turn>, as the PyPI
   Gemma's), the output layer over every position;
2. `+ stop at <end_of_turn>`: the model's generation_config stops there (models.stop_at_end_of_turn), so answers
   end with the SQL instead of running to the limit;
3. `+ LoRA`: grpo_cpu.yaml's adapter (r 16, all linear layers);
4. `+ label-only log-probs`: the output layer only at completion tokens (fast.py), not at the prompt's;
5. `grpo_cpu.yaml`: the recipe as shipped (two prompts a step, 128-token limit, a KL penalty to the start model).

Printed per setting: seconds per step, split into generation, rewards (the judge), log-probabilities (forward
passes), backward and the rest; seconds per prompt; mean completion length; the speed-up per prompt against the first
setting. The first step of each setting is a warm-up and is left out. JSON: bench/results/.
"""

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

GRPO_CPU = ROOT / "configs" / "gretelai" / "synthetic_text_to_sql" / "grpo_cpu.yaml"
RESULTS = ROOT / "bench" / "results"
SFT_DEFAULT = ROOT / "trainer_output" / "gemma-3-270m-sft-cpu"
PARTS = {  # trainer method timed: the part of a step it is
    "_generate_single_turn": "generation",
    "_calculate_rewards": "rewards",
    "_get_per_token_logps_and_entropies": "log-probs",
}
TRL_DEFAULTS = ["--use_peft", "false", "--label_only_logits", "false", "--beta", "0.0", "--num_generations", "4",
                "--per_device_train_batch_size", "4", "--max_completion_length", "64"]
SETTINGS = {  # name: (overrides of grpo_cpu.yaml, generation stops at <end_of_turn>)
    "trl defaults": (TRL_DEFAULTS, False),
    "+ stop at <end_of_turn>": (TRL_DEFAULTS, True),
    "+ LoRA": ([*TRL_DEFAULTS, "--use_peft", "true"], True),
    "+ label-only log-probs": ([*TRL_DEFAULTS, "--use_peft", "true", "--label_only_logits", "true"], True),
    "grpo_cpu.yaml": ([], True),
}


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = model_folder(args.model, Path(tmp))
        report = {"command": command_line(), "model": str(model), "settings": {}}
        for name, (overrides, stops) in SETTINGS.items():
            print(f"--- {name}", flush=True)
            report["settings"][name] = run_setting(model, overrides, stops, args, Path(tmp) / "out")
    print_report(report)
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"grpo_speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"JSON: {path}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SFT_DEFAULT), help="a model folder, or 'tiny' (default: the SFT default's output)")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per setting (after one warm-up step)")
    parser.add_argument("--max-tokens", type=int, help="override every setting's max_completion_length (quick checks)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"folder for the JSON (default {RESULTS.relative_to(ROOT)})")
    return parser.parse_args()


def command_line():
    return "uv run python bench/grpo_speed.py " + shlex.join(sys.argv[1:])


def model_folder(name, tmp):
    if name == "tiny":
        from tiny_gemma import save_tiny_gemma

        return save_tiny_gemma(tmp / "tiny-gemma")
    if not (Path(name) / "config.json").is_file():
        sys.exit(f"--model: {name} is not a model folder (train the SFT default first, see README)")
    return Path(name)


def run_setting(model, overrides, stops, args, output_dir):
    """Train 1 + args.steps steps; the time of each part per measured step, seconds per prompt, completion length."""
    from grpo import build_grpo_trainer, prepare_grpo_rows
    from main import parse_config

    limit = ["--max_completion_length", str(args.max_tokens)] if args.max_tokens else []
    extra, model_args, training_args = parse_config([
        "--config", str(GRPO_CPU), "--model_name_or_path", str(model), "--output_dir", str(output_dir), *overrides, *limit,
        "--max_steps", str(args.steps + 1), "--save_strategy", "no", "--logging_steps", "1", "--train_samples", "256",
    ])
    extra.max_train_minutes = None  # the steps asked for, however long they take
    trainer = build_grpo_trainer(extra, model_args, training_args, prepare_grpo_rows(extra))
    if not stops:
        stop_only_at_eos(trainer)
    steps = timed_steps(trainer)
    trainer.train()
    measured = steps[1:]
    lengths = [entry["completions/mean_length"] for entry in trainer.state.log_history if "completions/mean_length" in entry]
    prompts = training_args.per_device_train_batch_size // training_args.num_generations
    seconds = {part: statistics.mean(step[part] for step in measured) for part in measured[0]}
    return {"overrides": overrides, "stops_at_end_of_turn": stops, "prompts_per_step": prompts,
            "seconds_per_step": seconds, "seconds_per_prompt": seconds["step"] / prompts,
            "mean_completion_length": statistics.mean(lengths[1:])}


def stop_only_at_eos(trainer):
    """Generation as with a model whose generation_config lacks <end_of_turn>: trl stops at the tokenizer's eos only."""
    eos = [trainer.processing_class.eos_token_id]
    trainer.eos_token_ids = eos
    trainer.generation_kwargs["eos_token_id"] = eos
    trainer.generation_config.eos_token_id = eos


def timed_steps(trainer):
    """Wrap the trainer's parts in timers; returns the list that gets one {part: seconds} per training step."""
    steps, current = [], defaultdict(float)

    def timed(method, part):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                current[part] += time.perf_counter() - start
        return call

    for name, part in PARTS.items():
        setattr(trainer, name, timed(getattr(trainer, name), part))
    trainer.accelerator.backward = timed(trainer.accelerator.backward, "backward")
    training_step = timed(trainer.training_step, "step")

    def step_and_record(*args, **kwargs):
        result = training_step(*args, **kwargs)
        current["other"] = current["step"] - sum(current[part] for part in (*PARTS.values(), "backward"))
        steps.append(dict(current))
        current.clear()
        return result

    trainer.training_step = step_and_record
    return steps


def print_report(report):
    parts = [*PARTS.values(), "backward", "other"]
    first = next(iter(report["settings"].values()))["seconds_per_prompt"]
    print(f"\nGRPO step time on {report['model']} (mean of the measured steps, seconds)\n")
    print("| setting | prompts/step | completion tokens | step | " + " | ".join(parts) + " | s/prompt | speed-up |")
    print("|---|" + "---:|" * (len(parts) + 5))
    for name, setting in report["settings"].items():
        seconds = setting["seconds_per_step"]
        print(f"| {name} | {setting['prompts_per_step']} | {setting['mean_completion_length']:.1f} | {seconds['step']:.2f} | "
              + " | ".join(f"{seconds[part]:.2f}" for part in parts)
              + f" | {setting['seconds_per_prompt']:.1f} | {first / setting['seconds_per_prompt']:.1f}x |")
    print(f"\nMade by: {report['command']}")


if __name__ == "__main__":
    main()

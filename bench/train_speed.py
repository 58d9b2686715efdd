"""Training speed, side by side: the workshop's settings against the project's fast ones.

    uv run python bench/train_speed.py --model tiny                   # seconds (a tiny random Gemma 3)
    uv run python bench/train_speed.py --model real --tuning lora     # minutes (the real Gemma 3 270M, offline)
    uv run python bench/train_speed.py --model real --tuning full
    python bench/train_speed.py --model random --model-files gpu_bundle/gemma-3-270m --rows gpu_bundle/gretel_rows.jsonl
        # Gemma 3 270M's architecture with random weights and its real tokenizer (bench/gpu_proof.py runs it on a GPU)

Every setting trains the same model, from the same weights, on the same rows (real gretel rows from ../shared when
there, else the shipped ones), one pass over the same number of samples, at the same learning rate. A setting is a
YAML file of ours as it stands (the workshop's sft.yaml; the fast settings: sft_cpu.yaml on a CPU, sft_fast.yaml on a
GPU; sft_liger.yaml on a GPU), plus the overrides every setting shares: model, rows, LoRA or full, and precision
(fp32 on a CPU for all, bf16 on a GPU for all). Each setting runs in a process of its own, so its peak memory and its
threads are its own; `--rounds N` repeats the settings round-robin and keeps medians, which evens out a shared CPU.

Printed per setting: supervised (completion) tokens/s, all tokens/s, pad share, peak memory (RSS on a CPU,
max_memory_allocated on a GPU), seconds per step, the training loss at the last step (the same rows for every
setting of equal batch) and a held-out loss, the ratios to the workshop's settings, and minutes per epoch from token
counts measured on real rows; on a GPU also the useful FLOPs as a share of the card's bf16 peak. JSON: bench/results/.
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIGS = ROOT / "configs" / "gretelai" / "synthetic_text_to_sql"
RESULTS = ROOT / "bench" / "results"
SHIPPED_TRAIN = ROOT / "data" / "synthetic_text_to_sql" / "train.jsonl"
REAL_GRETEL = ROOT.parent / "shared" / "data" / "gretel_test_sample_100.jsonl"
GRETEL_TRAIN_ROWS = 100_000 - 5_851  # gretel's train split less the validation rows the workshop carves from it
HELD_OUT_ROWS = 16
LEARNING_RATE = {"lora": 5e-4, "full": 5e-5}
IGNORE = -100


@dataclass
class Setting:
    config: dict  # YAML under configs/gretelai/synthetic_text_to_sql, per device ("cpu", "gpu")
    overrides: list = field(default_factory=list)  # command-line overrides on top of it
    note: str = ""


def both(config):
    return {"cpu": config, "gpu": config}


def cumulative(config, steps):
    """Settings that each add one change to the one before, so each change's gain shows on its own."""
    settings, overrides = {}, []
    for name, change in steps:
        overrides = overrides + change
        settings[name] = Setting(both(config), overrides)
    return settings


FAST = {"cpu": "sft_cpu.yaml", "gpu": "sft_fast.yaml"}
SETTINGS = {
    "workshop": Setting(both("sft.yaml")),
    **cumulative("sft.yaml", [
        ("+sdpa", ["--attn_implementation", "sdpa"]),
        ("+padding_free", ["--padding_free", "true", "--max_length", "null"]),
        ("+label_only", ["--label_only_logits", "true"]),
        ("+no_checkpointing", ["--gradient_checkpointing", "false", "--ddp_find_unused_parameters", "false"]),
        ("+per_row_attention", ["--attn_implementation", "sdpa_per_row"]),
    ]),
    "fast": Setting(FAST),
    # variants of the fast settings: what checkpointing, torch.compile and bf16 change (README, "Training speed")
    "fast_checkpointing": Setting(FAST, ["--gradient_checkpointing", "true"], "recompute activations: less memory"),
    "fast_compile": Setting(FAST, ["--torch_compile", "true"], "torch.compile: compiles again as batch shapes change"),
    "fast_bf16_autocast": Setting({"cpu": FAST["cpu"]}, ["--bf16", "true"], "bf16 autocast: not the same precision"),
    "fast_row_loop": Setting({"gpu": FAST["gpu"]}, ["--attn_implementation", "sdpa_row_loop"],
                             "rows attended one by one in Python, not in one varlen call"),
    "liger": Setting({"gpu": "sft_liger.yaml"}),
}
DEFAULT_SETTINGS = ["workshop", "fast", "liger"]


# ---------------------------------------------------------------- the command you run


def main():
    args = parse_args()
    if args.worker:
        return run_worker(args)
    device = device_kind()
    disable_progress_bars()
    names = [name for name in args.settings if device in SETTINGS[name].config]
    with tempfile.TemporaryDirectory() as tmp:
        model_path = prepare_model(args, Path(tmp))
        runs = {name: [] for name in names}
        for round_ in range(args.rounds):
            for name in names:
                runs[name].append(run_setting(name, args, model_path))
                progress = one_round(runs[name][-1])
                print(f"[round {round_ + 1}/{args.rounds}] {name} ({SETTINGS[name].config[device]}): "
                      f"{progress['seconds_per_step']:.2f} s/step, {progress['supervised_per_s']:.1f} supervised tokens/s",
                      flush=True)
        epochs = epoch_token_counts(model_path, args.rows)
    report = {
        "command": "uv run python bench/train_speed.py " + shlex.join(sys.argv[1:]),
        "device": runs[names[0]][0]["device"], "model": args.model, "tuning": args.tuning, "samples": args.samples,
        "rows": str(args.rows), "epochs": epochs,
        "settings": {name: summarise(SETTINGS[name], device, measured) for name, measured in runs.items()},
    }
    print_report(report)
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"train_speed-{args.model}-{args.tuning}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"JSON: {out}")


def disable_progress_bars():
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "real", "random"), default="tiny",
                        help="tiny: a tiny random Gemma 3; real: the offline Gemma 3 270M; random: the architecture in "
                             "--model-files/config.json with random weights and the tokenizer there")
    parser.add_argument("--model-files", type=Path, default=ROOT / "gpu_bundle" / "gemma-3-270m",
                        help="for --model random: config.json and tokenizer files (bench/gpu_prepare.py writes them)")
    parser.add_argument("--rows", type=Path, default=default_rows(),
                        help="gretel-format JSONL to train on (default: ../shared's real gretel rows, else the shipped ones)")
    parser.add_argument("--batch", type=int, help="per-device batch for every setting (default: each config's own); "
                                                  "equal batches give equal losses after the same samples")
    parser.add_argument("--tuning", choices=("lora", "full"), default="lora")
    parser.add_argument("--settings", type=lambda text: text.split(","), default=DEFAULT_SETTINGS,
                        help=f"comma-separated, from: {', '.join(SETTINGS)} (default: {','.join(DEFAULT_SETTINGS)})")
    parser.add_argument("--samples", type=int, help="training rows per setting (default: 32 on a CPU, 1920 on a GPU)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the settings round-robin and report medians")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="OMP threads per process (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON (default: bench/results)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = [name for name in args.settings if name not in SETTINGS]
    if unknown:
        parser.error(f"--settings: unknown {', '.join(unknown)} (known: {', '.join(SETTINGS)})")
    args.samples = args.samples or (1920 if device_kind() == "gpu" else 32)
    if args.model == "random" and not (args.model_files / "config.json").is_file():
        parser.error(f"--model random: no config.json in {args.model_files} (run bench/gpu_prepare.py)")
    return args


def device_kind():
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def prepare_model(args, tmp):
    if args.model == "real":
        from models import OFFLINE_GEMMA, resolve_model_path

        return resolve_model_path(OFFLINE_GEMMA)
    if args.model == "random":
        return save_random_model(args.model_files, tmp / "random-model")
    from tests.tiny_gemma import save_tiny_gemma

    return str(save_tiny_gemma(tmp / "tiny-gemma"))


def save_random_model(files, target):
    """The architecture in files/config.json with random weights (bf16), beside the tokenizer files there: measures
    speed like the real model (same shapes), not quality."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shutil.copytree(files, target)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(files), dtype=torch.bfloat16)
    model.save_pretrained(target)
    return str(target)


def run_setting(name, args, model_path):
    """One setting in a fresh process, so that peak memory and threads are its own."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
        command = [sys.executable, __file__, "--worker", name, "--model", args.model, "--tuning", args.tuning,
                   "--samples", str(args.samples), "--model-path", model_path, "--out", out.name, "--rows", str(args.rows)]
        command += ["--batch", str(args.batch)] if args.batch else []
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"setting {name} failed:\n{done.stderr[-4000:]}")
        return {**json.loads(Path(out.name).read_text()), "threads": args.threads}


# ---------------------------------------------------------------- one setting, in its own process


def run_worker(args):
    extra, model_args, training_args = setting_config(args)
    trainer = setting_trainer(extra, model_args, training_args, args)
    memory_at_load, memory_before_training = peak_memory_mb(), memory_now_mb()
    steps = record_steps(trainer)
    load_before = os.getloadavg()[0]
    reset_peak_memory()  # loading is the same for every setting; the peak that differs is the training's
    trainer.train()
    training_peak = peak_memory_mb()  # before the held-out loss below, whose full-vocabulary logits are not training's
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result = {
        "device": device_name(),
        "precision": "bf16 autocast" if training_args.bf16 else str(model_args.dtype),
        "batch": training_args.per_device_train_batch_size,
        "steps": steps,
        "train_loss_last": losses[-1],
        "held_out_loss": held_out_loss(trainer),
        "peak_memory_mb": training_peak,
        "peak_memory_at_load_mb": memory_at_load,
        "memory_before_training_mb": memory_before_training,
        "load_average": [load_before, os.getloadavg()[0]],
        "flops_per_token": flops_per_token(trainer.model.config, trainer.train_dataset),
    }
    Path(args.out).write_text(json.dumps(result))


def setting_config(args):
    """The setting's YAML through main.py's own parser, then the overrides every setting shares."""
    import yaml

    from main import parse_config

    setting = SETTINGS[args.worker]
    gpu = device_kind() == "gpu"
    precision = ["--dtype", "bfloat16", "--bf16", "true"] if gpu else ["--dtype", "float32", "--bf16", "false"]
    common = [
        "--model_name_or_path", args.model_path, "--output_dir", tempfile.mkdtemp(), "--report_to", "none",
        "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "1", "--disable_tqdm", "true",
        "--num_train_epochs", "1", "--max_steps", "-1", "--learning_rate", str(LEARNING_RATE[args.tuning]),
        "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--seed", "42", *precision,
    ]
    config = CONFIGS / setting.config["gpu" if gpu else "cpu"]
    batch = ["--per_device_train_batch_size", str(args.batch)] if args.batch else []
    extra, model_args, training_args = parse_config(["--config", str(config), *common, *setting.overrides, *batch])
    model_args.use_peft = args.tuning == "lora"
    extra.max_train_minutes = None  # every setting trains the same samples, however long they take
    if model_args.use_peft:  # the CPU default's adapter, for every setting
        lora = yaml.safe_load((CONFIGS / "sft_cpu.yaml").read_text())
        for key in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"):
            setattr(model_args, key, lora[key])
    return extra, model_args, training_args


def setting_trainer(extra, model_args, training_args, args):
    """The trainer main.py builds for this setting (training.build_trainer), on the bench's rows."""
    from training import build_trainer
    from utils import load_templates, prepare_split

    train_rows, held_out = bench_rows(args.samples, args.rows)
    templates = load_templates(extra.prompts_path)
    return build_trainer(extra, model_args, training_args, prepare_split(train_rows, extra, templates),
                         prepare_split(held_out, extra, templates))


def default_rows():
    return REAL_GRETEL if REAL_GRETEL.is_file() else SHIPPED_TRAIN


def bench_rows(samples, rows):
    """`samples` training rows (the pool repeated if it is short) and HELD_OUT_ROWS rows never trained on."""
    from datasets import concatenate_datasets, load_dataset

    pool = load_dataset("json", data_files=str(rows), split="train")
    held_out = pool.select(range(len(pool) - HELD_OUT_ROWS, len(pool)))
    train = pool.select(range(len(pool) - HELD_OUT_ROWS))
    train = concatenate_datasets([train] * -(-samples // len(train))).select(range(samples))
    return train, held_out


def record_steps(trainer):
    """Per optimizer step: seconds, positions computed, real tokens, supervised tokens. Filled in during training."""
    from transformers import TrainerCallback

    steps, batch = [], {}
    training_step = trainer.training_step

    def counted(model, inputs, *args, **kwargs):
        batch["positions"] = batch.get("positions", 0) + inputs["input_ids"].numel()
        real = inputs["attention_mask"].sum() if "attention_mask" in inputs else inputs["input_ids"].numel()
        batch["tokens"] = batch.get("tokens", 0) + int(real)
        batch["supervised"] = batch.get("supervised", 0) + int((inputs["labels"] != IGNORE).sum())
        return training_step(model, inputs, *args, **kwargs)

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            steps.append({"seconds": time.perf_counter() - self.start, **batch})
            batch.clear()

    trainer.training_step = counted
    trainer.add_callback(Clock())
    return steps


def held_out_loss(trainer):
    """Mean loss per supervised token on the held-out rows, one row at a time through the model's plain forward:
    the same computation whatever the setting trained with."""
    import torch

    model = trainer.model.eval()
    total = count = 0.0
    with torch.no_grad():
        for row in trainer.eval_dataset:
            input_ids = torch.tensor([row["input_ids"]], device=model.device)
            labels = torch.tensor([row["labels"]], device=model.device)
            supervised = int((labels[:, 1:] != IGNORE).sum())
            total += model(input_ids=input_ids, labels=labels).loss.item() * supervised
            count += supervised
    return total / count


def reset_peak_memory():
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: restart the RSS high-water mark (VmHWM)


def memory_now_mb():
    """GPU: memory torch holds now. CPU: the process's resident memory now (weights loaded, before training)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.memory_allocated() / 2**20
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024  # kB


def peak_memory_mb():
    """GPU: the most memory torch allocated. CPU: the process's RSS high-water mark since the last reset."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB


def device_name():
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU, {os.cpu_count()} cores"


def flops_per_token(config, rows):
    """Useful training FLOPs: the body's for every real token, the output layer's only for supervised tokens."""
    from trl.trainer.utils import compute_flops_per_token

    config = config.get_text_config()
    mean_length = statistics.mean(len(ids) for ids in rows["input_ids"])
    head = 3 * 2 * config.hidden_size * config.vocab_size
    return {"body": compute_flops_per_token(config, int(mean_length)) - head, "head": head}


# ---------------------------------------------------------------- figures


def summarise(setting, device, measured):
    """Rates over steps 2.. (the first step holds one-time costs); medians over rounds."""
    per_round = [one_round(run) for run in measured]
    summary = {key: statistics.median(r[key] for r in per_round) for key in per_round[0]}
    first = measured[0]
    return {**summary, "config": setting.config[device], "overrides": setting.overrides, "note": setting.note,
            "batch": first["batch"], "precision": first["precision"], "threads": first["threads"],
            "flops_per_token": first["flops_per_token"], "rounds": measured}


def one_round(run):
    steps = run["steps"]
    timed = steps[1:] or steps
    seconds = sum(step["seconds"] for step in timed)
    return {
        "supervised_per_s": sum(step["supervised"] for step in timed) / seconds,
        "tokens_per_s": sum(step["tokens"] for step in timed) / seconds,
        "pad_share": 1 - sum(step["tokens"] for step in steps) / sum(step["positions"] for step in steps),
        "seconds_per_step": statistics.median(step["seconds"] for step in timed),
        "first_step_seconds": steps[0]["seconds"],
        "peak_memory_mb": run["peak_memory_mb"],
        "training_memory_mb": run["peak_memory_mb"] - run["memory_before_training_mb"],
        "train_loss_last": run["train_loss_last"],
        "held_out_loss": run["held_out_loss"],
    }


def epoch_token_counts(model_path, rows):
    """Tokens in one epoch: the shipped training set (measured, every row) and gretel's train split (extrapolated
    from the mean of the rows trained on, when they are gretel's)."""
    from datasets import load_dataset

    from models import load_tokenizer
    from config import ExtraConfig
    from utils import load_templates, prepare_split

    tokenizer = load_tokenizer(model_path)
    extra = ExtraConfig(dataset_name=str(SHIPPED_TRAIN))
    templates = load_templates(extra.prompts_path)

    def count(path):
        rows = prepare_split(load_dataset("json", data_files=str(path), split="train"), extra, templates)
        sizes = [token_counts(tokenizer, row) for row in rows]
        return {"rows": len(sizes), "tokens": sum(t for t, _ in sizes), "supervised": sum(s for _, s in sizes)}

    epochs = {"shipped (2,000 rows, measured)": count(SHIPPED_TRAIN)}
    if Path(rows).resolve() != SHIPPED_TRAIN:
        sample = count(rows)
        scale = GRETEL_TRAIN_ROWS / sample["rows"]
        epochs[f"gretel ({GRETEL_TRAIN_ROWS:,} rows, extrapolated from {sample['rows']} real rows)"] = {
            "rows": GRETEL_TRAIN_ROWS, "tokens": round(sample["tokens"] * scale),
            "supervised": round(sample["supervised"] * scale),
        }
    return epochs


def token_counts(tokenizer, row):
    """(all tokens, completion tokens) of one conversational row, tokenised the way trl's SFTTrainer does."""
    prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], return_dict=True)["input_ids"]
    shared = next((i for i, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), len(full)))
    return len(full), len(full) - shared


def print_report(report):
    settings = report["settings"]
    base = settings.get("workshop")
    print(f"\n{report['device']} | model {report['model']} | {report['tuning']} | {report['samples']} samples of "
          f"{Path(report['rows']).name} per setting")
    head = (f"{'setting':<20}{'config':<15}{'batch':>5}{'sup tok/s':>10}{'tok/s':>8}{'pad':>6}{'peak MB':>9}"
            f"{'+MB':>7}{'s/step':>8}{'loss':>7}{'held-out':>9}{'x speed':>8}{'x mem':>7}")
    print(head)
    for name, s in settings.items():
        speed = s["supervised_per_s"] / base["supervised_per_s"] if base else float("nan")
        memory = s["peak_memory_mb"] / base["peak_memory_mb"] if base else float("nan")
        print(f"{name:<20}{s['config']:<15}{s['batch']:>5}{s['supervised_per_s']:>10.1f}{s['tokens_per_s']:>8.0f}"
              f"{s['pad_share']:>6.0%}{s['peak_memory_mb']:>9.0f}{s['training_memory_mb']:>7.0f}{s['seconds_per_step']:>8.2f}"
              f"{s['train_loss_last']:>7.3f}{s['held_out_loss']:>9.3f}{speed:>8.2f}{memory:>7.2f}"
              + (f"  ({s['note']})" if s["note"] else ""))
    print("\nMinutes per epoch at these rates (tokens of one epoch / all tokens per second):")
    for label, epoch in report["epochs"].items():
        minutes = ", ".join(f"{name} {epoch['tokens'] / s['tokens_per_s'] / 60:,.1f}" for name, s in settings.items())
        print(f"  {label}, {epoch['tokens']:,} tokens ({epoch['supervised']:,} supervised): {minutes}")
    print_flops_share(report)
    print(f"\nMade by: {report['command']}")


def print_flops_share(report):
    """On a GPU: useful FLOPs per second as a share of the card's dense bf16 peak (H100 target: >= 30%)."""
    from trl.trainer.utils import get_peak_flops

    peak = get_peak_flops(report["device"], "bfloat16")
    if device_kind() != "gpu" or peak is None:
        return
    print(f"\nUseful FLOPs (body for every token, output layer for supervised tokens) / {peak / 1e12:.0f} TFLOP/s bf16 peak:")
    for name, s in report["settings"].items():
        useful = useful_flops_per_s(s)
        print(f"  {name}: {useful / 1e12:.1f} TFLOP/s = {useful / peak:.0%} of peak")


def useful_flops_per_s(summary):
    """A setting's useful FLOPs per second: the body's for every real token, the output layer's for supervised ones."""
    flops = summary["flops_per_token"]
    return flops["body"] * summary["tokens_per_s"] + flops["head"] * summary["supervised_per_s"]


if __name__ == "__main__":
    main()

"""Shared fixtures: a tiny random Gemma 3 built once per session, the shipped and the real gretel data,
and a way to run `main.py` the way users do (a real subprocess, under `accelerate launch` for training)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_gemma import save_tiny_gemma

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DATA = ROOT / "data" / "synthetic_text_to_sql"
REAL_GRETEL = ROOT.parent / "shared" / "data" / "gretel_test_sample_100.jsonl"
CPU_CONFIG = ROOT / "configs" / "gretelai" / "synthetic_text_to_sql" / "sft_cpu.yaml"
# Tiny models train several times faster with one thread a process on these 2 cores.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}


def skip_or_fail(reason):
    """Skip where a part is missing on a user's machine; in CI (SQLTUNE_REQUIRE_ALL=1) a missing part is a failure."""
    if os.environ.get("SQLTUNE_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return save_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(scope="session")
def real_gretel_rows():
    if not REAL_GRETEL.is_file():
        skip_or_fail(f"real gretel rows not here ({REAL_GRETEL}): they live in the team's shared folder, not in a clone")
    return [json.loads(line) for line in REAL_GRETEL.read_text().splitlines()]


def shipped_rows(split="train"):
    return [json.loads(line) for line in (SHIPPED_DATA / f"{split}.jsonl").read_text().splitlines()]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_train_args(model_dir, output_dir, *extra_args):
    """Command-line overrides that turn the offline CPU config into a seconds-long run on the tiny model."""
    return [
        "--config", str(CPU_CONFIG), "--model_name_or_path", str(model_dir), "--output_dir", str(output_dir),
        "--use_peft", "false", "--learning_rate", "3e-3", "--per_device_train_batch_size", "4",
        "--max_steps", "8", "--save_steps", "4", "--eval_steps", "4", "--eval_samples", "8", "--logging_steps", "1",
        "--train_samples", "64", "--max_length", "1024", *extra_args,
    ]


def run_main(args, launcher=None, timeout=600, **popen):
    """Run main.py as users do; `launcher` is an accelerate config for `accelerate launch`."""
    prefix = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher)] if launcher else [sys.executable]
    if launcher:
        prefix += ["--main_process_port", str(free_port())]
    return subprocess.run(
        [*prefix, str(ROOT / "main.py"), *map(str, args)], cwd=ROOT, env=SUBPROCESS_ENV,
        capture_output=True, text=True, timeout=timeout, **popen,
    )

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


@pytest.fixture
def fresh_sandbox(tmp_path, monkeypatch):
    """A Sandbox of two workers started in an empty directory that must stay empty, as must the repository and
    /tmp's top level (no database file appears): whatever the SQL tried, no file was written."""
    from sandbox import Sandbox

    monkeypatch.chdir(tmp_path)
    before = set(ROOT.iterdir()), set(Path("/tmp").iterdir())
    with Sandbox(workers=2) as pool:
        yield pool
    assert list(tmp_path.iterdir()) == []
    assert set(ROOT.iterdir()) == before[0]
    assert not {path for path in set(Path("/tmp").iterdir()) - before[1] if path.suffix == ".db"}


def peak_memory_bytes(pid):
    """A process's peak resident memory (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def shipped_rows(split="train"):
    return [json.loads(line) for line in (SHIPPED_DATA / f"{split}.jsonl").read_text().splitlines()]


def free_port():
    """A loopback port nobody listens on right now (the OS picks it; a tiny race remains until a server binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_train_args(model_dir, output_dir, *extra_args):
    """Command-line overrides that turn the offline CPU config into a seconds-long run on the tiny model."""
    return [
        "--config", str(CPU_CONFIG), "--model_name_or_path", str(model_dir), "--output_dir", str(output_dir),
        "--use_peft", "false", "--learning_rate", "3e-3", "--per_device_train_batch_size", "4",
        "--max_steps", "8", "--save_steps", "4", "--eval_steps", "4", "--eval_samples", "8", "--logging_steps", "1",
        "--train_samples", "64", *extra_args,
    ]


def run_main(args, launcher=None, timeout=600, env=SUBPROCESS_ENV, **popen):
    """Run main.py as users do; `launcher` is an accelerate config for `accelerate launch`."""
    prefix = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher)] if launcher else [sys.executable]
    if launcher:
        prefix += ["--main_process_port", str(free_port())]
    return subprocess.run(
        [*prefix, str(ROOT / "main.py"), *map(str, args)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=timeout, **popen,
    )


# ---------------------------------------------------------------- a tiny model that writes SQL, served by vLLM
# test_ui, test_browser and test_merge share one LoRA training, one merge and one vLLM server per session.

# Six short single-table SELECTs (ids 8, 10, 48, 51, 59 and 81 of an earlier shipped training set), kept here so the
# chat, browser and merge tests do not change whenever the shipped data is regenerated.
SQL_ROWS = Path(__file__).parent / "sql_rows.jsonl"
# Its answer is longer than the training max_length, so truncation cuts its <end_of_turn> and the model learns to
# go on without end: the stop tests need an answer that is still streaming when they press stop.
ENDLESS_ROW = {
    "sql_prompt": "Select the number 1 again and again, without end.",
    "sql_context": "CREATE TABLE numbers (n INT); INSERT INTO numbers (n) VALUES (1);",
    "sql": " UNION ALL ".join(["SELECT 1"] * 100),
}


@pytest.fixture(scope="session")
def sql_rows():
    return [json.loads(line) for line in SQL_ROWS.read_text().splitlines()]


@pytest.fixture(scope="session")
def sql_dataset(sql_rows, tmp_path_factory):
    """A dataset folder: the SQL rows and ENDLESS_ROW to train on; the SQL rows alone as validation and test."""
    folder = tmp_path_factory.mktemp("sql-data")
    for split, rows in {"train": [*sql_rows, ENDLESS_ROW], "validation": sql_rows, "test": sql_rows}.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


@pytest.fixture(scope="session")
def sql_lora_checkpoint(tiny_model, sql_dataset, tmp_path_factory):
    """A LoRA checkpoint of the tiny Gemma that answers each SQL row's question with its SQL, word for word
    (the project's training path: 250 steps on all 7 rows at a high learning rate, about a minute)."""
    output_dir = tmp_path_factory.mktemp("sql-lora")
    args = tiny_train_args(
        tiny_model, output_dir, "--dataset_name", sql_dataset, "--train_samples", "7", "--use_peft", "true",
        "--lora_r", "16", "--lora_alpha", "32", "--learning_rate", "1e-2", "--lr_scheduler_type", "constant",
        "--warmup_steps", "0", "--per_device_train_batch_size", "7", "--max_steps", "250", "--save_steps", "250",
        "--eval_strategy", "no", "--logging_steps", "50",
        "--padding_free", "false", "--max_length", "384",  # rows truncated at 384 tokens: ENDLESS_ROW's end is cut
    )
    done = run_main(args, launcher=ROOT / "configs" / "accelerate_single.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    return output_dir / "checkpoint-250"


@pytest.fixture(scope="session")
def sql_model(sql_lora_checkpoint):
    """That checkpoint folded into its base by `main.py --mode merge`: the whole model the vLLM server serves."""
    done = run_main(["--config", CPU_CONFIG, "--mode", "merge", "--adapter_path", sql_lora_checkpoint])
    assert done.returncode == 0, done.stderr[-3000:]
    merged = Path(f"{sql_lora_checkpoint}-merged")
    assert f"Merged model saved to {merged}" in done.stdout
    return merged


@pytest.fixture(scope="session")
def sql_server(sql_model):
    """Base URL ("http://127.0.0.1:PORT/v1") of a real vLLM CPU server serving sql_model as "local". In float32:
    vLLM would compute this float32 model in bfloat16, and the merge test compares with float32 transformers."""
    from vllm_server import start_vllm_server

    with start_vllm_server(sql_model, extra_args=("--dtype", "float32")) as base_url:
        yield base_url


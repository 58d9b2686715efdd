"""Training for real: trl's SFTTrainer under `accelerate launch`, on a tiny random Gemma 3 and the shipped data."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3ForCausalLM

from conftest import ROOT, SHIPPED_DATA, SUBPROCESS_ENV, free_port, run_main, tiny_train_args

SINGLE = ROOT / "configs" / "accelerate_single.yaml"
TWO_CPU_PROCESSES = ROOT / "configs" / "accelerate_cpu.yaml"
QUESTION = [{"role": "system", "content": "You write SQL."}, {"role": "user", "content": "Prompt:\nHow many rows?"}]


def trainer_state(checkpoint):
    return json.loads((checkpoint / "trainer_state.json").read_text())


def checkpoints(output_dir):
    return sorted(int(path.name.split("-")[1]) for path in output_dir.glob("checkpoint-*"))


def greedy_answer(model, tokenizer, max_new_tokens=12, **generation):
    ids = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, **generation)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def assert_servable(folder):
    """What `vllm serve FOLDER` needs: weights, tokenizer, chat template, a stop at <end_of_turn>, the cache on."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert (folder / "chat_template.jinja").is_file() and model.config.use_cache
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    # The saved generation config ends an answer at <end_of_turn>: pushed to say it first, the model says nothing more.
    assert greedy_answer(model, tokenizer, sequence_bias={(end_of_turn,): 100.0}) == [end_of_turn]
    return model, tokenizer


def test_one_process_trains_with_falling_loss_and_leaves_a_servable_model(tiny_model, tmp_path):
    as_users_run_it = {key: value for key, value in SUBPROCESS_ENV.items() if key != "OMP_NUM_THREADS"}
    done = run_main(tiny_train_args(tiny_model, tmp_path), launcher=SINGLE, env=as_users_run_it)
    assert done.returncode == 0, done.stderr[-3000:]
    cores = len(os.sched_getaffinity(0))
    if cores > 1:  # accelerate_single.yaml has no use_cpu, so accelerate gave the process 1 thread; it takes them all
        assert f"training on {cores} CPU threads" in done.stdout
    assert checkpoints(tmp_path) == [4, 8]
    losses = [loss for _, loss in json.loads((tmp_path / "loss.json").read_text())["train"]]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.3
    assert json.loads((tmp_path / "loss.json").read_text())["validation"]  # eval every 4 steps
    assert (tmp_path / "loss.png").stat().st_size > 10_000
    assert_servable(tmp_path)
    assert_servable(tmp_path / "checkpoint-8")  # checkpoints are servable as they are, too


def test_two_cpu_processes_train_one_model(tiny_model, tmp_path):
    """DDP over gloo: two processes share each step's rows (2 x 2 = the single run's 4), into one output folder."""
    args = tiny_train_args(tiny_model, tmp_path, "--per_device_train_batch_size", "2", "--ddp_find_unused_parameters", "false")
    done = run_main(args, launcher=TWO_CPU_PROCESSES)
    assert done.returncode == 0, done.stderr[-3000:]
    state = trainer_state(tmp_path / "checkpoint-8")
    # 8 steps x 4 rows of 64: half an epoch. Two independent runs would each have seen 8 x 2 rows: a quarter.
    assert state["global_step"] == 8 and state["epoch"] == pytest.approx(0.5)
    assert checkpoints(tmp_path) == [4, 8]
    assert done.stdout.count("Saved a servable model") == 1
    assert "CPU threads" not in done.stdout  # use_cpu: accelerate gave each process its share of the cores
    # The logged loss is the mean over both ranks (Trainer gathers it), so it is one loss for the one model.
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert_servable(tmp_path)


def test_labels_mask_the_prompt_and_keep_end_of_turn(tiny_model, tmp_path):
    from trl import SFTConfig, SFTTrainer

    from config import ExtraConfig
    from models import load_tokenizer
    from utils import load_splits, load_templates, prepare_split

    extra = ExtraConfig(dataset_name=str(SHIPPED_DATA), train_samples=4)
    rows = prepare_split(load_splits(extra)["train"], extra, load_templates(extra.prompts_path))
    tokenizer = load_tokenizer(str(tiny_model))
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), args=args, train_dataset=rows,
                         processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for ids, labels, row in zip(batch["input_ids"], batch["labels"], rows):
        learnt = tokenizer.decode(ids[labels != -100])
        assert learnt == row["completion"][0]["content"] + "<end_of_turn>\n"
        prompt = tokenizer.decode(ids[(labels == -100) & (ids != tokenizer.pad_token_id)])
        assert prompt.startswith("<bos><start_of_turn>user\n") and prompt.endswith("<start_of_turn>model\n")


def test_language_modeling_labels_cover_the_prompt_and_a_short_run_trains(tiny_model, tmp_path):
    """fine_tuning_data_format: language_modeling puts the loss on every token: system, question, schema and answer."""
    from main import parse_config
    from training import build_trainer
    from utils import prepare_datasets

    args = tiny_train_args(tiny_model, tmp_path, "--fine_tuning_data_format", "language_modeling", "--train_samples", "4",
                           "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no")
    extra, model_args, training_args = parse_config(args)
    train_rows, _ = prepare_datasets(extra)
    trainer = build_trainer(extra, model_args, training_args, train_rows)
    batch = next(iter(trainer.get_train_dataloader()))  # padding-free: the rows side by side in one
    tokenizer, bounds = trainer.processing_class, batch["cu_seq_lens_q"].tolist()
    learnt = []
    for start, end in zip(bounds, bounds[1:]):
        ids, labels = batch["input_ids"][0, start:end], batch["labels"][0, start:end]
        assert tokenizer.decode(ids[:1]) == "<bos>" and labels[0] == -100  # nothing before it to predict it from
        learnt.append("<bos>" + tokenizer.decode(ids[1:][labels[1:] != -100]))
    conversations = [tokenizer.apply_chat_template(row["messages"], tokenize=False) for row in train_rows]
    assert sorted(learnt) == sorted(conversations)  # the rows come shuffled
    assert all("<start_of_turn>user\nYou are an expert SQL generator" in text for text in learnt)
    trainer.train()
    assert [entry["step"] for entry in trainer.state.log_history if "loss" in entry] == [1, 2]


def test_gemma3_model_class_loads_the_same_model(tiny_model):
    from models import load_model

    gemma3 = load_model(str(tiny_model), "Gemma3ForCausalLM")
    auto = load_model(str(tiny_model), "AutoModelForCausalLM")
    assert type(gemma3) is Gemma3ForCausalLM
    ids = torch.tensor([[2, 5, 9, 11]])
    with torch.no_grad():
        assert torch.equal(gemma3(ids).logits, auto(ids).logits)


def test_resuming_skips_an_incomplete_checkpoint(tmp_path):
    """trainer_state.json is the Trainer's last file: a folder without it was cut off mid-save."""
    from types import SimpleNamespace

    from training import resume_point

    for name, complete in {"checkpoint-4": True, "checkpoint-8": True, "checkpoint-12": False, "checkpoint-30-merged": False}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / ("trainer_state.json" if complete else "config.json")).write_text("{}")
    resume = lambda value, output_dir=tmp_path: resume_point(SimpleNamespace(resume_from_checkpoint=value, output_dir=str(output_dir)))  # noqa: E731
    assert resume("true") == str(tmp_path / "checkpoint-8")
    assert resume(True) == str(tmp_path / "checkpoint-8")
    assert resume("true", tmp_path / "not-made-yet") is None  # a first run with resume on starts afresh
    assert resume(str(tmp_path / "checkpoint-4")) == str(tmp_path / "checkpoint-4")  # a folder named is taken as is
    assert resume(None) is None


def test_lora_trains_and_its_checkpoint_reloads_and_generates(tiny_model, tmp_path):
    from peft import AutoPeftModelForCausalLM

    done = run_main(tiny_train_args(tiny_model, tmp_path, "--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16"),
                    launcher=SINGLE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CPU threads" not in done.stdout  # OMP_NUM_THREADS=1 set by the caller (conftest) is kept
    adapter = tmp_path / "checkpoint-8"
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "model.safetensors").exists()
    losses = [entry["loss"] for entry in trainer_state(adapter)["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0]
    lora_model = AutoPeftModelForCausalLM.from_pretrained(adapter)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    merged, _ = assert_servable(tmp_path)  # the final folder is the merged, whole model
    assert greedy_answer(lora_model, tokenizer) == greedy_answer(merged, tokenizer)


def test_a_killed_run_resumes_to_the_same_final_step_without_losing_a_checkpoint(tiny_model, tmp_path):
    steps = ["--max_steps", "40", "--save_steps", "5", "--eval_strategy", "no", "--learning_rate", "1e-3"]
    reference = run_main(tiny_train_args(tiny_model, tmp_path / "reference", *steps), launcher=SINGLE)
    assert reference.returncode == 0, reference.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(SINGLE), "--main_process_port",
               str(free_port()), str(ROOT / "main.py"), *tiny_train_args(tiny_model, killed_dir, *steps)]
    run = subprocess.Popen(command, cwd=ROOT, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    while not (killed_dir / "checkpoint-5" / "trainer_state.json").exists():
        assert run.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert max(checkpoints(killed_dir)) < 40, "the run finished before it could be killed"

    resumed = run_main(tiny_train_args(tiny_model, killed_dir, *steps, "--resume_from_checkpoint", "true"), launcher=SINGLE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert checkpoints(killed_dir) == list(range(5, 45, 5))
    assert all((killed_dir / f"checkpoint-{step}" / "trainer_state.json").is_file() for step in range(5, 45, 5))
    final, expected = trainer_state(killed_dir / "checkpoint-40"), trainer_state(tmp_path / "reference" / "checkpoint-40")
    assert final["global_step"] == 40
    loss = lambda state: [e["loss"] for e in state["log_history"] if "loss" in e][-1]  # noqa: E731
    assert loss(final) == pytest.approx(loss(expected), rel=1e-4)

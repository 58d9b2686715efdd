"""max_train_minutes (budget.py): a run sized to a wall-clock budget, its schedule fitted to the length it chose."""

import json
import re

import pytest
import torch
from transformers import TrainingArguments
from transformers.optimization import get_scheduler
from transformers.trainer_callback import TrainerState

from budget import fit_schedule
from conftest import run_main, tiny_train_args
from test_grpo import tiny_grpo_args
from test_train import SINGLE, TWO_CPU_PROCESSES, checkpoints, trainer_state

CHOSEN = re.compile(r"max_train_minutes [\d.]+: [\d.]+ s a step here, so (\d+) steps")
RUNTIME = re.compile(r"'train_runtime': '?([\d.]+)")


def test_fitting_the_schedule_mid_run_ends_a_cosine_at_the_new_length(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), lr_scheduler_type="cosine", warmup_steps=0.05, learning_rate=1e-3,
                             max_steps=150, use_cpu=True)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=args.learning_rate)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=args.get_warmup_steps(150), num_training_steps=150)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    state = TrainerState(max_steps=150)
    fit_schedule(args, state, scheduler, optimizer, 40)
    reference = get_scheduler("cosine", torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3),
                              num_warmup_steps=args.get_warmup_steps(40), num_training_steps=40)
    assert state.max_steps == 40
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * reference.lr_lambdas[0](10))  # applied at once
    lrs = []
    for _ in range(30):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12) and lrs == sorted(lrs, reverse=True)


def budgeted_args(model_dir, output_dir, *extra):
    return tiny_train_args(model_dir, output_dir, "--max_steps", "100000", "--max_train_minutes", "0.25",
                           "--save_steps", "15", "--eval_strategy", "no", "--learning_rate", "1e-3", *extra)


def losses_and_rates(state):
    return {e["step"]: (e["loss"], e["learning_rate"]) for e in state["log_history"] if "loss" in e}


def test_a_budgeted_run_chooses_its_length_stops_in_time_and_resumes_to_it(tiny_model, tmp_path):
    done = run_main(budgeted_args(tiny_model, tmp_path / "run"), launcher=SINGLE)
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = int(CHOSEN.search(done.stdout).group(1))
    last = checkpoints(tmp_path / "run")[-1]  # the chosen step, or earlier when steps slowed down after the choice
    first = trainer_state(tmp_path / "run" / f"checkpoint-{last}")
    assert 15 < chosen < 100000 and last <= chosen == first["max_steps"]
    assert (last < chosen) == (f"the budget is spent at step {last} of {chosen}" in done.stdout)  # never silently short
    assert float(RUNTIME.search(done.stdout).group(1)) < 0.25 * 60 + 5  # the budget, and the last checkpoint's save
    # From the choice on, the learning rate follows a cosine fitted to the chosen length: zero at its last step.
    args = TrainingArguments(output_dir=str(tmp_path), lr_scheduler_type="cosine", warmup_steps=0.05, max_steps=chosen)
    fitted = get_scheduler("cosine", torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))]),
                           num_warmup_steps=args.get_warmup_steps(chosen), num_training_steps=chosen).lr_lambdas[0]
    for step, (_, rate) in losses_and_rates(first).items():
        if step > 12:
            assert rate == pytest.approx(1e-3 * fitted(step - 1), abs=1e-9)  # the rate the step trained at

    # A resumed run keeps the length the first one chose (saved with its checkpoints), whatever this machine's speed:
    # resumed after the choice (step 11), it retraces the first run step for step.
    resumed = run_main(budgeted_args(tiny_model, tmp_path / "run", "--resume_from_checkpoint",
                                     str(tmp_path / "run" / "checkpoint-15")), launcher=SINGLE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not CHOSEN.search(resumed.stdout)
    again = trainer_state(tmp_path / "run" / f"checkpoint-{checkpoints(tmp_path / 'run')[-1]}")
    assert again["max_steps"] == chosen and again["global_step"] <= chosen
    common = losses_and_rates(first).keys() & losses_and_rates(again).keys()
    assert len(common) > 15
    for step in common:
        assert losses_and_rates(again)[step] == pytest.approx(losses_and_rates(first)[step], rel=1e-4)


def test_a_negative_budget_is_refused_in_one_line(tiny_model, tmp_path):
    done = run_main(tiny_train_args(tiny_model, tmp_path, "--max_train_minutes", "-1"))
    assert done.returncode == 2 and "max_train_minutes: must be at least 0, got -1.0" in done.stderr
    assert json.dumps(done.stderr).count("\\n") == 1


def test_two_cpu_processes_agree_on_one_length_and_stop_together(tiny_model, tmp_path):
    """Each process times its own steps; they must stop at one step, or one waits forever for the other's gradients."""
    done = run_main(budgeted_args(tiny_model, tmp_path, "--per_device_train_batch_size", "2",
                                  "--ddp_find_unused_parameters", "false"), launcher=TWO_CPU_PROCESSES, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = {int(steps) for steps in CHOSEN.findall(done.stdout)}
    assert len(chosen) == 1 and done.stdout.count("Saved a servable model") == 1
    final = trainer_state(tmp_path / f"checkpoint-{checkpoints(tmp_path)[-1]}")
    assert final["global_step"] <= chosen.pop()


def test_grpo_runs_size_themselves_the_same_way(tiny_model, tmp_path):
    done = run_main(tiny_grpo_args(tiny_model, tmp_path, "--max_steps", "100000", "--max_train_minutes", "0.4",
                                   "--save_steps", "100000"), launcher=SINGLE)
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = int(CHOSEN.search(done.stdout).group(1))
    assert 10 < chosen < 100000 and "Saved a servable model" in done.stdout
    steps = [step for step, _ in json.loads((tmp_path / "grpo.json").read_text())["reward"]]
    assert steps[-1] <= chosen

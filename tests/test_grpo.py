"""mode: grpo: the rewards on answers right, partly right, wrong, hostile and empty; a few GRPO steps of the tiny
random Gemma 3 under accelerate (one process, two CPU processes), resumed from a checkpoint; the configs."""

import json
import subprocess
import sys
import time

import pytest
import torch

import rewards
from conftest import ROOT, SUBPROCESS_ENV, run_main
from rewards import ExecutionScores, Judge, execution_reward, format_reward, make_rewards
from sandbox import Sandbox
from test_config import error_of
from test_train import assert_servable, checkpoints, trainer_state

CONFIGS = ROOT / "configs" / "gretelai" / "synthetic_text_to_sql"
GRPO_CPU = CONFIGS / "grpo_cpu.yaml"
SINGLE = ROOT / "configs" / "accelerate_single.yaml"
TWO_CPU_PROCESSES = ROOT / "configs" / "accelerate_cpu.yaml"
CONTEXT = "CREATE TABLE t (a INT, b TEXT); INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y');"
GOLD = "SELECT a FROM t WHERE b = 'x'"
END_OF_TURN_ID = 106
SCORES = ExecutionScores(sample_rows=0.5, runs=0.1)
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
GREEDY = ("SELECT length(group_concat(printf('%.100000c', 'x'))) FROM "  # a string far past the sandbox's memory caps
          "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) SELECT x FROM c)")


def fenced(sql):
    return f"```sql\n{sql}\n```"


@pytest.fixture(scope="module")
def judge_batch():
    with Sandbox(workers=2) as sandbox:
        yield Judge(sandbox, workers=2)


def scores_of(judge_batch, answers, context=CONTEXT, gold=GOLD):
    completions = [[{"role": "assistant", "content": answer}] for answer in answers]  # trl's conversational form
    return execution_reward(completions, [gold] * len(answers), [context] * len(answers), judge_batch=judge_batch,
                            scores=SCORES, prompts=[None] * len(answers), trainer_state=None)


def test_execution_reward_scores_right_partly_right_wrong_and_empty(judge_batch):
    answers = {
        fenced(GOLD): 1.0,  # test-suite-correct
        fenced("SELECT a FROM t WHERE a = 1"): 0.5,  # the sample rows' answer, not the test-suite databases'
        fenced("SELECT b FROM t"): 0.1,  # runs, other rows
        fenced("SELECT nope FROM t"): 0.0,  # fails
        "I cannot answer that.": 0.0,  # no SQL
        "": 0.0,
    }
    assert scores_of(judge_batch, list(answers)) == list(answers.values())


def test_hostile_sql_scores_zero_within_the_time_limit(judge_batch):
    started = time.monotonic()
    hostile = [fenced(ENDLESS), fenced(GREEDY), fenced("SELECT load_extension('/tmp/x.so')"),
               fenced("ATTACH ':memory:' AS other")]
    assert scores_of(judge_batch, hostile) == [0.0] * len(hostile)
    assert time.monotonic() - started < 20  # the sandbox's 2 s a query, not forever


def test_a_row_whose_gold_fails_is_not_scored(judge_batch):
    assert scores_of(judge_batch, [fenced(GOLD)], gold="SELECT nope FROM t") == [None]


def test_each_gold_is_prepared_once_for_all_its_generations_and_batches(judge_batch, monkeypatch):
    prepared = []
    real = rewards.prepare_gold
    monkeypatch.setattr(rewards, "prepare_gold", lambda *args, **kwargs: prepared.append(args) or real(*args, **kwargs))
    fresh = Judge(judge_batch.sandbox, workers=2)
    for _ in range(2):
        assert scores_of(fresh, [fenced(GOLD)] * 4) == [1.0] * 4
    assert prepared == [(CONTEXT, GOLD)]


def test_format_reward_wants_one_fenced_statement_ending_at_end_of_turn():
    stopped, cut = [5, 7, END_OF_TURN_ID], [5, 7, 9]
    cases = [
        (fenced(GOLD), stopped, 1.0),
        ("\n" + fenced(GOLD) + "\n", stopped, 1.0),
        (f"```\n{GOLD}\n```", stopped, 1.0),  # untagged fence
        (fenced(GOLD), cut, 0.5),  # ran to the length limit
        ("Here it is: " + fenced(GOLD), stopped, 0.5),  # prose around it
        (fenced(GOLD) + "\n" + fenced(GOLD), stopped, 0.5),  # two blocks
        (fenced(f"{GOLD}; DELETE FROM t"), stopped, 0.5),  # two statements
        (f"```python\n{GOLD}\n```", stopped, 0.5),
        (GOLD, stopped, 0.5),  # no fence
        ("```sql\nSELECT 1", cut, 0.0),  # unclosed
        ("", [], 0.0),
    ]
    completions = [[{"role": "assistant", "content": text}] for text, _, _ in cases]
    assert format_reward(completions, [ids for _, ids, _ in cases], end_of_turn_id=END_OF_TURN_ID) == [s for _, _, s in cases]


def test_rewards_carry_the_names_trl_logs_them_under():
    from trl.trainer.utils import get_callable_name

    assert [get_callable_name(reward) for reward in make_rewards(SCORES, END_OF_TURN_ID, judge_batch=object())] == [
        "execution_reward", "format_reward"]


# ---------------------------------------------------------------- GRPO steps on the tiny model


def tiny_grpo_args(model_dir, output_dir, *extra_args):
    """Overrides that turn grpo_cpu.yaml into a seconds-long run on the tiny model (LoRA, label-only log-probs), with a
    KL term (the recipe has none) so the reference model's path is run and the KL logged too."""
    return [str(arg) for arg in ["--config", GRPO_CPU, "--model_name_or_path", model_dir, "--output_dir", output_dir,
                                 "--train_samples", "32", "--max_steps", "4", "--save_steps", "2",
                                 "--max_completion_length", "12", "--learning_rate", "1e-3", "--beta", "0.02",
                                 *extra_args]]


def logged(output_dir, key):
    return [entry[key] for entry in trainer_state(output_dir / "checkpoint-4")["log_history"] if key in entry]


def assert_progress_logged(output_dir):
    for key in ("reward", "rewards/execution_reward/mean", "rewards/format_reward/mean", "groups_with_a_correct_answer",
                "kl", "completions/mean_length", "frac_reward_zero_std"):
        assert len(logged(output_dir, key)) == 4, key
    curves = json.loads((output_dir / "grpo.json").read_text())
    assert [step for step, _ in curves["kl"]] == [1, 2, 3, 4]
    assert (output_dir / "grpo.png").stat().st_size > 10_000


def test_one_process_runs_grpo_steps_and_leaves_a_servable_model(tiny_model, tmp_path):
    done = run_main(tiny_grpo_args(tiny_model, tmp_path), launcher=SINGLE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert checkpoints(tmp_path) == [2, 4]
    assert (tmp_path / "checkpoint-4" / "adapter_config.json").is_file()  # LoRA checkpoints, merged at the end
    assert_progress_logged(tmp_path)
    assert "Saved a servable model" in done.stdout
    assert_servable(tmp_path)

    # Resumed from its first checkpoint, a run reaches the same final step.
    for path in (tmp_path / "checkpoint-4").iterdir():
        path.unlink()
    (tmp_path / "checkpoint-4").rmdir()
    resumed = run_main(tiny_grpo_args(tiny_model, tmp_path, "--resume_from_checkpoint", "true"), launcher=SINGLE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert checkpoints(tmp_path) == [2, 4] and trainer_state(tmp_path / "checkpoint-4")["global_step"] == 4
    assert [entry["step"] for entry in trainer_state(tmp_path / "checkpoint-4")["log_history"] if "reward" in entry] == [1, 2, 3, 4]


def test_two_cpu_processes_train_one_model(tiny_model, tmp_path):
    """DDP over gloo: each process makes 4 of one prompt's 8 answers a step, rewards gathered into the whole group."""
    done = run_main(tiny_grpo_args(tiny_model, tmp_path, "--per_device_train_batch_size", "4"), launcher=TWO_CPU_PROCESSES)
    assert done.returncode == 0, done.stderr[-3000:]
    assert checkpoints(tmp_path) == [2, 4] and done.stdout.count("Saved a servable model") == 1
    state = trainer_state(tmp_path / "checkpoint-4")
    # 4 steps x 1 prompt of 32: an eighth of an epoch. Two independent runs could not even start: 4 answers a step
    # cannot hold a group of 8.
    assert state["global_step"] == 4 and state["epoch"] == pytest.approx(0.125)
    assert_progress_logged(tmp_path)
    assert_servable(tmp_path)


def test_generation_stops_at_end_of_turn_and_label_only_log_probs_match_trl(tiny_model, tmp_path):
    """The trainer's generation stops at <end_of_turn>, and fast.py's label-only output layer (label_only_logits) gives
    trl's log-probabilities and entropies on a GRPO batch."""
    from grpo import build_grpo_trainer, prepare_grpo_rows
    from main import parse_config

    traced = {}
    for label_only in ("false", "true"):
        extra, model_args, training_args = parse_config(tiny_grpo_args(tiny_model, tmp_path, "--label_only_logits", label_only))
        trainer = build_grpo_trainer(extra, model_args, training_args, prepare_grpo_rows(extra), judge_batch=object())
        assert trainer.processing_class.convert_tokens_to_ids("<end_of_turn>") in trainer.eos_token_ids
        ids = torch.randint(10, 500, (3, 20), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids)
        mask[0, -4:] = 0  # a completion that ended early
        with torch.no_grad():
            traced[label_only] = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, logits_to_keep=8,
                                                                             compute_entropy=True)[:2]
    for ours, trls in zip(traced["true"], traced["false"]):
        assert torch.allclose(ours[mask[:, -8:] == 1], trls[mask[:, -8:] == 1], atol=1e-5)


def test_the_grpo_benchmark_prints_where_a_step_goes(tmp_path):
    command = [sys.executable, "bench/grpo_speed.py", "--model", "tiny", "--steps", "1", "--max-tokens", "8",
               "--results", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Made by: uv run python bench/grpo_speed.py --model tiny --steps 1" in done.stdout
    [result] = tmp_path.glob("grpo_speed-*.json")
    settings = json.loads(result.read_text())["settings"]
    assert list(settings)[0] == "trl defaults" and list(settings)[-1] == "grpo_cpu.yaml"
    for setting in settings.values():
        parts = setting["seconds_per_step"]
        assert parts["generation"] > 0 and parts["backward"] > 0
        assert sum(parts[part] for part in ("generation", "rewards", "log-probs", "backward", "other")) == pytest.approx(parts["step"])


# ---------------------------------------------------------------- configs


def test_grpo_configs_parse_into_grpo_config():
    from trl import GRPOConfig

    from main import parse_config

    for name, vllm in (("grpo_cpu.yaml", False), ("grpo.yaml", True)):
        extra, model_args, training_args = parse_config(["--config", str(CONFIGS / name)])
        assert extra.mode == "grpo" and isinstance(training_args, GRPOConfig) and training_args.use_vllm is vllm
        assert training_args.reward_weights == [1.0, 0.2] and training_args.num_generations >= 2
    _, _, training_args = parse_config(["--config", str(CONFIGS / "sft_cpu.yaml")])
    assert type(training_args).__name__ == "SFTConfig"
    # merging a GRPO run's LoRA checkpoint with its own config: the file's GRPO keys still parse
    extra, _, training_args = parse_config(["--config", str(GRPO_CPU), "--mode", "merge"])
    assert extra.mode == "merge" and isinstance(training_args, GRPOConfig)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU-only settings run where there is CUDA")
@pytest.mark.parametrize(
    "args, message",
    [
        ([], "bf16: true needs a CUDA GPU"),
        (["--bf16", "false"], "use_vllm: true needs a CUDA GPU"),
    ],
)
def test_gpu_only_grpo_settings_stop_on_a_cpu_in_one_line(capsys, args, message):
    assert error_of(capsys, *args, config=CONFIGS / "grpo.yaml").startswith(f"sqltune: error: {message}")


@pytest.mark.parametrize(
    "args, names",
    [
        (["--num_generations", "1"], ["at least 2 generations"]),
        (["--per_device_train_batch_size", "6"], ["generation_batch_size (6)", "num_generations (8)"]),
        (["--reward_sql_runs", "-1"], ["reward_sql_runs", "at least 0"]),
        (["--max_completion_length", "0"], ["max_completion_length", "at least 1"]),
        (["--mode", "train"], ["Unknown arguments", "num_generations"]),  # a GRPO file read as SFT
    ],
)
def test_bad_grpo_input_is_one_line_naming_it(capsys, args, names):
    line = error_of(capsys, *args, config=GRPO_CPU)
    for name in names:
        assert name in line


def test_label_only_log_probs_need_temperature_one(capsys, tiny_model):
    line = error_of(capsys, "--model_name_or_path", str(tiny_model), "--temperature", "0.7", config=GRPO_CPU)
    assert "label_only_logits" in line and "temperature" in line

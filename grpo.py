"""mode: grpo: reinforcement learning from execution. trl's GRPOTrainer samples `num_generations` answers to each
prompt, the judge scores them (rewards.py), and the model moves toward the answers that scored above their group's
mean.

    uv run accelerate launch --config_file configs/accelerate_single.yaml main.py --config configs/gretelai/synthetic_text_to_sql/grpo_cpu.yaml

The rows come the SFT way (utils.py: the same loading, SQL formatting and templates); a row's prompt is its system
and user turns, and its gold `sql` and `sql_context` travel with it to the reward. The model (a folder such as the
SFT default's output, or a hub id) is loaded, resumed and saved as in training.py: the final folder is servable as
is (LoRA merged in), with grpo.png (reward, groups with a correct answer, KL, completion length) beside it.
"""

from accelerate.utils import is_peft_model
from trl import GRPOTrainer, get_peft_config
from trl.kernels.chunked_logprob import _use_triton  # trl's own test for "my fused head is label-only already"

from budget import budget_callbacks
from config import ConfigError
from fast import add_label_only_lm_head
from models import END_OF_TURN
from plots import write_grpo_curves
from rewards import ExecutionScores, make_rewards
from training import load_model_and_tokenizer, resume_point, save_final_model
from utils import add_formatted_sql, check_templates_fit, conversation, load_splits, load_templates

GOLD_COLUMNS = ("sql", "sql_context")  # what the execution reward judges an answer against


def run_grpo(extra, model_args, training_args):
    rows = prepare_grpo_rows(extra)
    trainer = build_grpo_trainer(extra, model_args, training_args, rows)
    trainer.train(resume_from_checkpoint=resume_point(training_args))
    save_final_model(trainer, model_args.use_peft, write_grpo_curves, "reward curves")


def prepare_grpo_rows(extra):
    """The train split as {"prompt": system + user turns, "sql", "sql_context"}."""
    split = load_splits(extra)["train"]
    missing = set(GOLD_COLUMNS) - set(split.column_names)
    if missing:
        raise ConfigError(f"dataset_name: {extra.dataset_name} lacks column(s) {', '.join(sorted(missing))}, which the "
                          "GRPO reward needs (gold SQL and schema)")
    split = split.map(add_formatted_sql, desc="Formatting SQL")
    check_templates_fit(extra.prompts_path, split.column_names, extra.dataset_name, names=("system", "user"))
    templates = load_templates(extra.prompts_path)
    return split.map(lambda row: {"prompt": conversation(row, templates)["prompt"]}, desc="Rendering prompts",
                     remove_columns=[column for column in split.column_names if column not in GOLD_COLUMNS])


def build_grpo_trainer(extra, model_args, training_args, rows, judge_batch=None):
    """trl's GRPOTrainer (logging one more metric) with the execution and format rewards."""
    if extra.label_only_logits and training_args.temperature != 1.0:
        raise ConfigError(f"label_only_logits: true needs temperature: 1.0 in mode grpo (got {training_args.temperature}): "
                          "fast.py's output layer does not divide the logits by the sampling temperature as trl's does")
    model, tokenizer = load_model_and_tokenizer(extra, model_args, training_args)
    scores = ExecutionScores(sample_rows=extra.reward_sample_rows, runs=extra.reward_sql_runs)
    trainer = SqlGRPOTrainer(
        model=model,
        reward_funcs=make_rewards(scores, tokenizer.convert_tokens_to_ids(END_OF_TURN), judge_batch),
        args=training_args,
        train_dataset=rows,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=budget_callbacks(extra.max_train_minutes),
    )
    if extra.label_only_logits and not _use_triton(training_args.device):  # with Triton, trl's head is label-only
        for scored in (trainer.model, trainer.ref_model):
            if scored is not None:
                add_label_only_lm_head(scored.get_base_model() if is_peft_model(scored) else scored)
    return trainer


class SqlGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that also logs `groups_with_a_correct_answer`: the share of prompts with at least one
    test-suite-correct answer among their num_generations. A group all wrong (or all right) has no advantage to
    learn from; with trl's `frac_reward_zero_std` this says whether the reward is too sparse."""

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # trl returns the rewards of every process's completions, so groups split across processes are whole here
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        mode = "train" if self.model.training else "eval"
        generations = self.num_generations if mode == "train" else self.num_generations_eval
        execution = rewards[:, self.reward_func_names.index("execution_reward")].view(-1, generations)
        correct = (execution >= ExecutionScores.correct).any(dim=1)
        self._metrics[mode]["groups_with_a_correct_answer"].append(correct.float().mean().item())
        return rewards

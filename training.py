"""Training: the one place an SFT trainer is built (main.py's train mode and bench/train_speed.py both use
`build_trainer`), resuming from the last complete checkpoint, and the servable model a run leaves behind (GRPO,
grpo.py, loads, resumes and saves through the same functions).
"""

from pathlib import Path

from transformers.trainer_utils import sort_checkpoints
from trl import get_peft_config

from budget import budget_callbacks
from fast import trainer_class
from models import load_model, load_tokenizer, resolve_model_path, save_servable, stop_at_end_of_turn
from plots import write_loss_curve
from utils import prepare_datasets


def run_training(extra, model_args, training_args):
    """Train on the config's data, then save a whole model (LoRA merged in) that `vllm serve` loads as is."""
    train_rows, eval_rows = prepare_datasets(extra)
    evaluating = training_args.eval_strategy != "no"
    trainer = build_trainer(extra, model_args, training_args, train_rows, eval_rows if evaluating else None)
    trainer.train(resume_from_checkpoint=resume_point(training_args))
    save_final_model(trainer, model_args.use_peft, write_loss_curve, "loss curve")


def save_final_model(trainer, use_peft, write_picture, picture_name):
    """The whole model (LoRA merged in) that vLLM serves as is, in output_dir, with the run's picture beside it."""
    output_dir = trainer.args.output_dir
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        if use_peft:
            model = model.merge_and_unload()
        save_servable(model, trainer.processing_class, output_dir)
        picture = write_picture(trainer.state.log_history, output_dir)
        print(f"Saved a servable model to {output_dir} ({picture_name}: {picture})")
    trainer.accelerator.wait_for_everyone()


def build_trainer(extra, model_args, training_args, train_rows, eval_rows=None):
    """trl's SFTTrainer (or the label-only one, fast.py) on the model and tokenizer that model_args name."""
    model, tokenizer = load_model_and_tokenizer(extra, model_args, training_args)
    return trainer_class(extra.label_only_logits)(
        model=model,
        args=training_args,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=budget_callbacks(extra.max_train_minutes),
    )


def load_model_and_tokenizer(extra, model_args, training_args):
    """The model and tokenizer model_args name, the model's generation stopping at <end_of_turn>."""
    # One process per machine converts the offline Gemma while the others wait, then they all load the folder. The
    # training arguments' own wait (accelerate's PartialState.main_process_first underneath) and not a PartialState
    # of ours: TrainingArguments resets any accelerate state made before it sets up the devices.
    with training_args.main_process_first(desc="preparing the model"):
        path = resolve_model_path(model_args.model_name_or_path)
    tokenizer = load_tokenizer(path)
    model = load_model(path, extra.model_class, model_args.dtype, model_args.attn_implementation)
    # So every checkpoint-N stops at <end_of_turn> when served, and so trl's generation (GRPO) stops there: it stops
    # at the model's generation_config eos ids.
    stop_at_end_of_turn(model, tokenizer)
    return model, tokenizer


def resume_point(training_args):
    """`resume_from_checkpoint: true` resumes from the last complete checkpoint when there is one, else starts afresh."""
    resume = training_args.resume_from_checkpoint
    if str(resume).lower() == "true":
        return last_complete_checkpoint(training_args.output_dir)
    return resume


def last_complete_checkpoint(output_dir):
    """The newest checkpoint-N that was fully written. trainer_state.json is the last file the Trainer saves, so a
    run killed mid-save leaves a folder without it, which we must not resume from. transformers' get_last_checkpoint
    would return that folder (it only looks at the names, and fails on an output_dir not made yet), so we filter
    transformers' own step-ordered list instead."""
    complete = [folder for folder in sort_checkpoints(output_dir) if (Path(folder) / "trainer_state.json").is_file()]
    return complete[-1] if complete else None

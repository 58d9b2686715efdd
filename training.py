"""Training: the one place a trainer is built (main.py's train mode and bench/train_speed.py both use
`build_trainer`), resuming from the last complete checkpoint, and the servable model a run leaves behind.
"""

from pathlib import Path

from transformers.trainer_utils import sort_checkpoints
from trl import get_peft_config

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
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        if model_args.use_peft:
            model = model.merge_and_unload()  # the final folder is a whole model vLLM serves as is
        save_servable(model, trainer.processing_class, training_args.output_dir)
        curve = write_loss_curve(trainer.state.log_history, training_args.output_dir)
        print(f"Saved a servable model to {training_args.output_dir} (loss curve: {curve})")
    trainer.accelerator.wait_for_everyone()


def build_trainer(extra, model_args, training_args, train_rows, eval_rows=None):
    """trl's SFTTrainer (or the label-only one, fast.py) on the model and tokenizer that model_args name."""
    # One process per machine converts the offline Gemma while the others wait, then they all load the folder. The
    # training arguments' own wait (accelerate's PartialState.main_process_first underneath) and not a PartialState
    # of ours: TrainingArguments resets any accelerate state made before it sets up the devices.
    with training_args.main_process_first(desc="preparing the model"):
        path = resolve_model_path(model_args.model_name_or_path)
    tokenizer = load_tokenizer(path)
    model = load_model(path, extra.model_class, model_args.dtype, model_args.attn_implementation)
    stop_at_end_of_turn(model, tokenizer)  # so every checkpoint-N stops at <end_of_turn> when served
    return trainer_class(extra.label_only_logits)(
        model=model,
        args=training_args,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )


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

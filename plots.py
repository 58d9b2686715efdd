"""Pictures that say more than tables: the loss curve a training run leaves beside its checkpoint."""

import json
from pathlib import Path


def loss_history(log_history):
    """(steps, losses) for training and for validation, from a Trainer's log_history."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    validation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    return train, validation


def write_loss_curve(log_history, output_dir):
    """loss.json and loss.png in output_dir, for users who train without wandb."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and laptops in a terminal
    import matplotlib.pyplot as plt

    train, validation = loss_history(log_history)
    output_dir = Path(output_dir)
    (output_dir / "loss.json").write_text(json.dumps({"train": train, "validation": validation}, indent=1))
    figure, axes = plt.subplots(figsize=(7, 4))
    for points, label in ((train, "train"), (validation, "validation")):
        if points:
            axes.plot(*zip(*points), marker="." if len(points) < 50 else None, label=label)
    axes.set(xlabel="step", ylabel="loss", title="Training loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(output_dir / "loss.png", dpi=120)
    plt.close(figure)
    return output_dir / "loss.png"

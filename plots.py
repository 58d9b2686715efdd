"""Pictures that say more than tables: the loss curve a training run leaves beside its checkpoint, and the accuracy
chart an evaluation leaves beside its results."""

import json
from pathlib import Path

# (metric in an evaluation summary, its name in the legend, bar hatch): execution solid, test-suite hatched
ACCURACY_BARS = (("execution_accuracy", "execution accuracy", None), ("test_suite_accuracy", "test-suite accuracy", "//"))


def pyplot():
    """matplotlib's pyplot, drawing to files only: there is no display on servers and laptops in a terminal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_history(log_history):
    """(steps, losses) for training and for validation, from a Trainer's log_history."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    validation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    return train, validation


def write_loss_curve(log_history, output_dir):
    """loss.json and loss.png in output_dir, for users who train without wandb."""
    plt = pyplot()
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


def write_accuracy_chart(summary, labels, path):
    """Bars of execution (solid) and test-suite (hatched) accuracy per sql_complexity, one colour per model
    (`labels`), from an evaluation summary's overall and per-complexity metrics."""
    plt = pyplot()
    groups = {"all rows": summary["overall"], **summary["by"].get("sql_complexity", {})}
    width = 0.8 / (2 * len(labels))
    figure, axes = plt.subplots(figsize=(max(6, 1.4 * len(groups)), 4.5))
    for index, label in enumerate(labels):
        for offset, (key, name, hatch) in enumerate(ACCURACY_BARS):
            heights = [100 * (by_label[label][key] or 0) for by_label in groups.values()]
            positions = [g - 0.4 + width * (2 * index + offset + 0.5) for g in range(len(groups))]
            bars = axes.bar(positions, heights, width, color=f"C{index}", hatch=hatch, alpha=0.6 if hatch else 1.0,
                            label=f"{label}: {name}")
            axes.bar_label(bars, fmt="%.0f", fontsize=7)
    axes.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right")
    axes.set(ylabel="% of rows whose gold SQL runs", ylim=(0, 100), title="Accuracy by sql_complexity")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

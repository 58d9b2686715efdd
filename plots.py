"""Pictures that say more than tables: the loss curve a training run leaves beside its checkpoint (the reward curves
for GRPO), and the accuracy chart an evaluation leaves beside its results."""

import json
from pathlib import Path

# (metric in an evaluation summary, its name in the legend, bar hatch): execution solid, test-suite hatched
ACCURACY_BARS = (("execution_accuracy", "execution accuracy", None), ("test_suite_accuracy", "test-suite accuracy", "//"))
# GRPO's progress, one panel each: (title, y label, {key in the trainer's log: legend label}). The reward keys are trl's
# (rewards/<function>/mean); groups_with_a_correct_answer is ours (grpo.py); frac_reward_zero_std is the share of
# groups whose answers all scored alike, which teach nothing.
GRPO_PANELS = (
    ("Reward", "mean reward", {"reward": "weighted sum", "rewards/execution_reward/mean": "execution",
                               "rewards/format_reward/mean": "format"}),
    ("Prompt groups", "share of groups", {"groups_with_a_correct_answer": "a test-suite-correct answer",
                                          "frac_reward_zero_std": "all answers scored alike"}),
    ("KL to the starting model", "KL", {"kl": "KL"}),
    ("Completion length", "tokens", {"completions/mean_length": "mean", "completions/max_length": "longest"}),
)


def pyplot():
    """matplotlib's pyplot, drawing to files only: there is no display on servers and laptops in a terminal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_history(log_history):
    """(steps, losses) for training and for validation, from a Trainer's log_history."""
    return metric_history(log_history, "loss"), metric_history(log_history, "eval_loss")


def metric_history(log_history, key):
    """[(step, value)] of one logged metric, from a Trainer's log_history."""
    return [(entry["step"], entry[key]) for entry in log_history if key in entry]


def write_loss_curve(log_history, output_dir):
    """loss.json and loss.png in output_dir, for users who train without wandb."""
    train, validation = loss_history(log_history)
    output_dir = Path(output_dir)
    (output_dir / "loss.json").write_text(json.dumps({"train": train, "validation": validation}, indent=1))
    return plot_panels([("Training loss", "loss", {"train": train, "validation": validation})], output_dir / "loss.png")


def write_grpo_curves(log_history, output_dir):
    """grpo.json and grpo.png in output_dir: a panel per GRPO_PANELS entry, each metric as the trainer logged it."""
    panels = [(title, ylabel, {label: metric_history(log_history, key) for key, label in series.items()})
              for title, ylabel, series in GRPO_PANELS]
    output_dir = Path(output_dir)
    (output_dir / "grpo.json").write_text(json.dumps({key: metric_history(log_history, key) for _, _, series in
                                                      GRPO_PANELS for key in series}, indent=1))
    return plot_panels(panels, output_dir / "grpo.png")


def plot_panels(panels, path):
    """One figure, a panel per (title, y label, {legend label: [(step, value)]}) side by side; empty series are
    left out."""
    plt = pyplot()
    figure, axes_row = plt.subplots(1, len(panels), figsize=(max(7, 4.5 * len(panels)), 4), squeeze=False)
    for axes, (title, ylabel, series) in zip(axes_row[0], panels):
        for label, points in series.items():
            if points:
                axes.plot(*zip(*points), marker="." if len(points) < 50 else None, label=label)
        axes.set(xlabel="step", ylabel=ylabel, title=title)
        axes.grid(alpha=0.3)
        if any(series.values()):
            axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


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

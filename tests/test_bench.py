"""The training benchmark runs as the README says: side by side, a table with ratios, and its JSON."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SUBPROCESS_ENV


def test_the_speed_benchmark_runs_the_workshop_and_the_fast_settings_side_by_side(tmp_path):
    command = [sys.executable, "bench/train_speed.py", "--model", "tiny", "--settings", "workshop,fast",
               "--samples", "8", "--threads", "1", "--results", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Made by: uv run python bench/train_speed.py --model tiny --settings workshop,fast" in done.stdout
    [result] = tmp_path.glob("train_speed-tiny-lora-*.json")
    report = json.loads(result.read_text())
    workshop, fast = report["settings"]["workshop"], report["settings"]["fast"]
    assert workshop["config"] == "sft.yaml" and fast["config"] == "sft_cpu.yaml"
    assert workshop["pad_share"] > 0 and fast["pad_share"] == 0  # padded batches against padding-free ones
    assert fast["held_out_loss"] == pytest.approx(workshop["held_out_loss"], rel=1e-4)  # same samples, same loss
    assert all(s["supervised_per_s"] > 0 and s["peak_memory_mb"] > 0 for s in (workshop, fast))
    assert report["epochs"]  # minutes per epoch come from measured token counts

"""What a GPU session will run, proven here: bench/gpu_prepare.py's bundle, then bench/gpu_proof.py's dry run on the CPU
(the same steps: offline wheel install, the GPU tests, which skip, and the benchmark on the tiny model)."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SUBPROCESS_ENV

CARRY_LIMIT = 64 * 2**20


@pytest.mark.slow  # converts the offline Gemma 3 270M once per machine (about a minute) for its tokenizer
def test_gpu_proof_dry_run_prepares_the_bundle_and_runs_every_step_on_the_cpu(tmp_path, real_gretel_rows):
    bundle, out = tmp_path / "gpu_bundle", tmp_path / "out"
    prepared = subprocess.run([sys.executable, "bench/gpu_prepare.py", "--bundle", str(bundle)], cwd=ROOT,
                              env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    wheels = {path.name.split("-")[0] for path in (bundle / "wheels").glob("*.whl")}
    assert {"trl", "datasets", "liger_kernel", "sqlglot", "sqlparse"} <= wheels
    assert not wheels & {"torch", "transformers", "accelerate", "peft", "pyarrow", "pandas", "triton"}  # the GPU has them
    model_files = {path.name for path in (bundle / "gemma-3-270m").iterdir()}
    assert "tokenizer.json" in model_files and "config.json" in model_files and not any(".safetensors" in name for name in model_files)
    assert len((bundle / "gretel_rows.jsonl").read_text().splitlines()) == len(real_gretel_rows)
    assert sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file()) < CARRY_LIMIT

    env = {key: value for key, value in SUBPROCESS_ENV.items() if key != "OUT"}
    proof = subprocess.run([sys.executable, "bench/gpu_proof.py", "--device", "cpu", "--bundle", str(bundle), "--out", str(out)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proof.returncode == 0, proof.stdout[-3000:] + proof.stderr[-3000:]
    result = json.loads((out / "gpu_proof.json").read_text())
    assert result["dry_run"] and all(step["ok"] for step in result["steps"].values())
    tests = result["steps"]["gpu_tests"]
    assert tests["tests"] > 0 and tests["skipped"] == tests["tests"]  # no CUDA here: every GPU test skips, none fails
    rows = {row["setting"]: row for row in result["table"]["rows"]}
    assert list(rows) == ["workshop", "fast"]  # liger and the row loop have GPU configs only
    assert rows["fast"]["held_out_loss"] == pytest.approx(rows["workshop"]["held_out_loss"], rel=1e-4)
    assert all(row["supervised_per_s"] > 0 and row["gretel_epoch_minutes"] > 0 for row in rows.values())
    assert "| workshop | `sft.yaml` |" in (out / "gpu_proof.md").read_text()
    assert len([path for path in out.rglob("*") if path.is_file()]) <= 8  # at most 8 come back from a GPU machine

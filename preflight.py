"""Before a training run starts: refuse settings this machine cannot run (CUDA-only ones without CUDA, wandb
without a key) with a one-line ConfigError, and take back the CPU cores `accelerate launch` left idle."""

import os
from pathlib import Path

from config import ConfigError


def check_devices(training_args):
    """Refuse settings that need CUDA on a machine without it, saying what to use instead."""
    import torch

    if torch.cuda.is_available():
        return
    if training_args.bf16:
        raise ConfigError("bf16: true needs a CUDA GPU, and none is visible; set bf16: false (as configs/gretelai/synthetic_text_to_sql/sft_cpu.yaml does) or pass --bf16 false")
    if training_args.use_liger_kernel:
        raise ConfigError("use_liger_kernel: true needs a CUDA GPU (Liger's Triton kernels), and none is visible; set use_liger_kernel: false")
    if getattr(training_args, "use_vllm", False):  # GRPOConfig only
        raise ConfigError("use_vllm: true needs a CUDA GPU (vLLM generates there), and none is visible; set use_vllm: false to generate with transformers (as configs/gretelai/synthetic_text_to_sql/grpo_cpu.yaml does)")
    if not training_args.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Without use_cpu, each process would run its own full training into the same output_dir.
        raise ConfigError("use_cpu: false with several processes and no CUDA GPU would train one independent model per process; set use_cpu: true (configs/accelerate_cpu.yaml)")


def use_idle_cpu_cores():
    """`accelerate launch` sets OMP_NUM_THREADS=1 for each process unless its config says `use_cpu: true` or the
    user set OMP_NUM_THREADS, so on a machine without a GPU the workshop's accelerate_single.yaml would train on one
    core of many. Take this process's share of the cores instead, as accelerate does for `use_cpu` configs; a
    thread count the user chose (in the launcher's environment) stays."""
    import psutil
    import torch

    launched_without_use_cpu = os.environ.get("ACCELERATE_USE_CPU") == "False"
    if torch.cuda.is_available() or not launched_without_use_cpu or torch.get_num_threads() != 1:
        return
    launcher = psutil.Process().parent()
    if launcher is None or "OMP_NUM_THREADS" in launcher.environ():
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # macOS has no affinity
    share = cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if share > 1:
        torch.set_num_threads(share)
        print(f"sqltune: no GPU, so training on {share} CPU threads (accelerate launch set 1 for a config without use_cpu)")


def check_wandb(training_args):
    """wandb without a key and without offline mode fails deep inside the trainer; say so up front."""
    if "wandb" not in (training_args.report_to or []):
        return
    has_key = os.environ.get("WANDB_API_KEY") or (Path.home() / ".netrc").is_file()
    if not has_key and os.environ.get("WANDB_MODE") not in ("offline", "disabled", "dryrun"):
        raise ConfigError("report_to: wandb needs WANDB_API_KEY (or `wandb login`); or set WANDB_MODE=offline, or report_to: none")

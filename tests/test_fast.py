"""fast.py and attention.py on the tiny Gemma 3: the same numbers as the plain computation, a real trl training that
learns, tokenised rows cached across runs, and FSDP.

Run as a script, this file is also the worker that the multi-process tests start.
"""

import copy
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from transformers import Gemma3ForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
from trl.trainer.utils import add_fused_lm_head

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a worker script, the repository is not on the path
import attention  # noqa: E402
import fast  # noqa: E402
from conftest import SHIPPED_DATA, SUBPROCESS_ENV, free_port  # noqa: E402
from tiny_gemma import build_model, build_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FSDP_CONFIG = ROOT / "configs" / "accelerate_fsdp.yaml"
IGNORE = -100
ROW_LENGTHS = [(7, 5), (13, 6), (4, 9)]  # (prompt, completion) tokens: unequal, so a padded batch has padding
SLIDING_WINDOW = 6  # shorter than the rows, so the local layers' window is exercised too
attention.register()  # the models here are built directly, not through models.load_model
ACCELERATE_FSDP_ON_CPU = (
    "accelerate 1.15 applies FSDP only on top of a GPU-type backend (MULTI_GPU, NPU, XPU...: accelerate/state.py); "
    "without CUDA, `accelerate launch` with an FSDP config starts processes that come up as DistributedType.NO, each "
    "training on its own (with --cpu: one process), so FSDP cannot run under accelerate on CPU processes. torch's "
    "FSDP2 itself does run over gloo: test_torch_fsdp2_over_gloo_trains_like_one_process"
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture
def model(tokenizer):
    """The tiny Gemma 3 with one local (sliding-window) and one global layer, in float64 so that a difference in
    the computation shows and a difference in summation order does not."""
    config = build_model(tokenizer).config
    config.sliding_window = SLIDING_WINDOW
    config.layer_types = ["sliding_attention", "full_attention"]
    torch.manual_seed(0)
    return Gemma3ForCausalLM(config).double()


def example_rows(vocab_size, lengths=ROW_LENGTHS, seed=0):
    """Token rows with their completion-only labels, as trl's dataset preparation leaves them."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for prompt, completion in lengths:
        ids = torch.randint(6, vocab_size, (prompt + completion,), generator=generator).tolist()
        rows.append({"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]})
    return rows


def collate(rows, padding_free, pad_token_id=0):
    """A training batch exactly as trl's collator builds it."""
    return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=padding_free)(rows)


def with_attention(model, implementation):
    model.config._attn_implementation = implementation  # read at every forward
    return model


def label_only(model):
    """The model as LabelOnlySFTTrainer leaves it: trl's fused head (as SFTTrainer adds it), then ours on top."""
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    fast.add_label_only_lm_head(model)
    return model


def reference_varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, window_size=(-1, -1),
                          enable_gqa=False):
    """torch's varlen_attn contract ([tokens, heads, head_dim]; a query at i sees keys i - left .. i + right of its
    own row, -1 for no limit), computed with plain matrices: flash attention cannot run on a CPU."""
    assert torch.equal(cu_seq_q, cu_seq_k) and max_q == max_k == int((cu_seq_q[1:] - cu_seq_q[:-1]).max())
    if enable_gqa:
        key, value = (x.repeat_interleave(query.shape[1] // x.shape[1], dim=1) for x in (key, value))
    positions = torch.arange(len(query))
    row = torch.bucketize(positions, cu_seq_q[1:], right=True)
    back = positions[:, None] - positions[None, :]  # how far back each key is from each query
    left, right = window_size
    seen = (row[:, None] == row[None, :]) & ((left < 0) | (back <= left)) & ((right < 0) | (-back <= right))
    scores = torch.einsum("qhd,khd->hqk", query, key) * (query.shape[-1] ** -0.5 if scale is None else scale)
    return torch.einsum("hqk,khd->qhd", scores.masked_fill(~seen, float("-inf")).softmax(-1), value)


def reference_varlen_attn_without_gqa(query, key, value, *bounds, scale=None, window_size=(-1, -1)):
    """torch 2.11's signature: no enable_gqa, so key/value must come with as many heads as the query."""
    assert key.shape[1] == query.shape[1]
    return reference_varlen_attn(query, key, value, *bounds, scale=scale, window_size=window_size)


@pytest.fixture
def varlen_on_the_cpu(monkeypatch):
    """attention.py's varlen path on the CPU, with the reference kernel standing in for flash attention."""
    monkeypatch.setattr(attention, "VARLEN_ATTN", reference_varlen_attn)
    monkeypatch.setattr(attention, "varlen_available", lambda query, dropout: True)


@pytest.mark.parametrize("implementation", ["sdpa", "sdpa_per_row", "sdpa_per_row, varlen path"])
def test_padding_free_logits_equal_padded_logits(tokenizer, model, implementation, request):
    if implementation.endswith("varlen path"):
        request.getfixturevalue("varlen_on_the_cpu")
    rows = example_rows(len(tokenizer))
    with torch.no_grad():
        padded = with_attention(model, "sdpa")(**without_labels(collate(rows, padding_free=False))).logits
        flat = with_attention(model, implementation.split(",")[0])(**without_labels(collate(rows, padding_free=True))).logits
    start = 0
    for row, tokens in enumerate(rows):
        length = len(tokens["input_ids"])
        torch.testing.assert_close(flat[0, start:start + length], padded[row, :length], rtol=0, atol=1e-10)
        start += length


@pytest.mark.parametrize("kernel", [reference_varlen_attn, reference_varlen_attn_without_gqa], ids=["gqa", "no-gqa"])
@pytest.mark.parametrize("sliding_window", [None, SLIDING_WINDOW], ids=["global", "local"])
def test_varlen_path_equals_the_row_loop(kernel, sliding_window):
    """The varlen path's layout, head sharing, scale and window, against sdpa row by row (4 query heads, 1 key/value)."""
    torch.manual_seed(0)
    query = torch.randn(1, 4, 24, 8, dtype=torch.float64)
    key, value = torch.randn(2, 1, 1, 24, 8, dtype=torch.float64)
    bounds = torch.tensor([0, 7, 20, 24], dtype=torch.int32)
    loop, _ = attention.sdpa_row_loop(None, query, key, value, None, scaling=0.3, sliding_window=sliding_window,
                                      cu_seq_lens_q=bounds)
    varlen = attention.varlen_rows(query, key, value, bounds, None, 0.3, sliding_window, kernel=kernel)
    torch.testing.assert_close(varlen, loop, rtol=0, atol=1e-12)


def without_labels(inputs):
    # use_cache off, as trl's compute_loss sets it: with a cache, transformers does not look for packed rows, and the
    # rows of a padding-free batch would attend to each other
    return {key: value for key, value in inputs.items() if key != "labels"} | {"use_cache": False}


@pytest.mark.parametrize("padding_free", [False, True], ids=["padded", "padding-free"])
def test_label_only_loss_metrics_and_gradients_equal_the_full_computation(tokenizer, model, padding_free):
    inputs = collate(example_rows(len(tokenizer)), padding_free)
    assert_label_only_equals_full(with_attention(model, "sdpa_per_row"), inputs, rtol=1e-12, grad_tolerance=(1e-10, 1e-14))


def assert_label_only_equals_full(model, inputs, rtol, grad_tolerance):
    """Loss, gradients and trl's metrics of the label-only head equal those of the whole output layer."""
    fast_model = label_only(copy.deepcopy(model))
    logits = model(**without_labels(inputs)).logits  # every position through the output layer
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # as the head does: softmax in float32 at least
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), inputs["labels"][:, 1:].flatten())
    loss.backward()
    fused = fast_model(**inputs, fused_lm_head=True)  # what trl's compute_loss calls
    fused.loss.backward()

    torch.testing.assert_close(fused.loss, loss, rtol=rtol, atol=0)
    grad_rtol, grad_atol = grad_tolerance
    for (name, expected), actual in zip(model.named_parameters(), fast_model.parameters()):
        torch.testing.assert_close(actual.grad, expected.grad, rtol=grad_rtol, atol=grad_atol, msg=name)
    entropy, is_top1 = metrics_from_logits(logits.detach(), inputs["labels"])
    torch.testing.assert_close(fused.entropy.sum(), entropy.sum(), rtol=rtol, atol=0)
    assert fused.is_top1.sum() == is_top1.sum()
    assert fused.label_mask.sum() == (inputs["labels"][:, 1:] != IGNORE).sum()


def metrics_from_logits(logits, labels):
    """trl's logged metrics (entropy, top-1 hits) at the labelled positions, from the full logits."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    has_label = labels != IGNORE
    log_probs = logits.log_softmax(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return entropy[has_label], (logits.argmax(-1) == labels)[has_label]


@pytest.fixture(scope="module")
def shipped_rows():
    from config import ExtraConfig
    from utils import load_splits, load_templates, prepare_split

    extra = ExtraConfig(dataset_name=str(SHIPPED_DATA), train_samples=64)
    return prepare_split(load_splits(extra)["train"], extra, load_templates(extra.prompts_path))


def train(trainer_class, model_path, rows, output_dir, implementation, **settings):
    """A short real training through trl; returns the logged steps."""
    from trl import SFTConfig

    from models import load_model, load_tokenizer

    args = SFTConfig(**{
        "output_dir": str(output_dir), "use_cpu": True, "bf16": False, "report_to": "none", "learning_rate": 3e-3,
        "max_steps": 8, "per_device_train_batch_size": 4, "logging_steps": 1, "gradient_checkpointing": False,
        "seed": 0, "disable_tqdm": True, **settings,
    })
    trainer = trainer_class(model=load_model(str(model_path), attn_implementation=implementation), args=args,
                            train_dataset=rows, processing_class=load_tokenizer(str(model_path)))
    trainer.train()
    return [entry for entry in trainer.state.log_history if "loss" in entry]


@pytest.fixture
def one_thread():
    """Tiny models train several times faster with one thread on these 2 cores (as conftest's subprocesses do)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_fast_trainer_learns_and_logs_what_trl_logs(tiny_model, shipped_rows, tmp_path, one_thread):
    """The fast settings against trl's own trainer on padded batches: the same losses and metrics, step by step."""
    from trl import SFTTrainer

    reference = train(SFTTrainer, tiny_model, shipped_rows, tmp_path / "trl", "sdpa")
    logged = train(fast.LabelOnlySFTTrainer, tiny_model, shipped_rows, tmp_path / "fast", "sdpa_per_row",
                   padding_free=True, max_length=None)
    assert logged[-1]["loss"] < logged[0]["loss"] - 0.3
    for key in ("loss", "entropy", "mean_token_accuracy"):
        assert [step[key] for step in logged] == pytest.approx([step[key] for step in reference], rel=1e-3, abs=1e-4), key


def tokenised_fingerprint(model_path):
    """The fingerprint of the tokenised training rows trl prepares: equal fingerprints, in another process too, mean
    a second run reads datasets' cache instead of tokenising again."""
    from trl import SFTConfig, SFTTrainer

    from models import load_model, load_tokenizer
    from config import ExtraConfig
    from utils import load_splits, load_templates, prepare_split

    extra = ExtraConfig(dataset_name=str(SHIPPED_DATA))
    rows = prepare_split(load_splits(extra)["train"], extra, load_templates(extra.prompts_path))
    with tempfile.TemporaryDirectory() as output_dir:  # the trainer makes its output_dir: leave none in the repository
        args = SFTConfig(output_dir=output_dir, use_cpu=True, bf16=False, report_to="none", padding_free=True,
                         max_length=None)
        trainer = SFTTrainer(model=load_model(str(model_path)), args=args, train_dataset=rows,
                             processing_class=load_tokenizer(str(model_path)))
        return trainer.train_dataset._fingerprint


def test_tokenised_rows_come_from_the_cache_in_a_second_run(tiny_model):
    here = tokenised_fingerprint(tiny_model)
    other = subprocess.run([sys.executable, __file__, "tokenised-fingerprint", str(tiny_model)], cwd=ROOT,
                           env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr[-3000:]
    assert other.stdout.split()[-1] == here


# ---------------------------------------------------------------- FSDP on two CPU processes


def test_the_fsdp_config_shards_only_over_gpus_as_its_comment_says():
    """accelerate_fsdp.yaml warns that without CUDA its processes come up unsharded, each training on its own:
    this holds the warning to what accelerate does (FSDP training itself: the FSDP2-over-gloo test below)."""
    ranks = launch([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CONFIG),
                    "--num_processes", "2", "--main_process_port", str(free_port()), __file__, "accelerate-state"],
                   SUBPROCESS_ENV)
    assert len(ranks) == 2  # both processes started and reported
    expected = "FSDP" if torch.cuda.device_count() >= 2 else "NO"
    assert {rank["distributed_type"] for rank in ranks} == {expected}, ACCELERATE_FSDP_ON_CPU


def test_torch_fsdp2_over_gloo_trains_like_one_process(tmp_path):
    """Each of two processes holds half of every weight and trains on one row; the losses are those of one process
    training on both rows (equal completion lengths, so the mean of the two means is the mean)."""
    out = tmp_path / "fsdp.json"
    launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
            __file__, "fsdp2", str(out)], SUBPROCESS_ENV)
    sharded = json.loads(out.read_text())
    model = label_only(with_attention(build_model(build_tokenizer()), "sdpa_per_row"))
    reference = sgd_losses(model, collate(fsdp_rows(model.config.vocab_size), padding_free=True))
    assert sharded["embedding_rows_per_process"] == model.config.vocab_size // 2
    assert sharded["losses"] == pytest.approx(reference, rel=1e-5)
    assert sharded["losses"][-1] < sharded["losses"][0]


REPORT = "rank report: "


def launch(command, env):
    """Run a multi-process command; return what its processes reported (their writes may interleave on one pipe)."""
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(report) for report in re.findall(rf"{REPORT}(\{{[^{{}}]*\}})", done.stdout)]


def fsdp_rows(vocab_size):
    return example_rows(vocab_size, lengths=[(9, 6), (5, 6)], seed=1)


def sgd_losses(model, inputs, steps=4, mean_over_processes=lambda loss: loss):
    """Plain SGD steps through the label-only head (as trl's compute_loss calls it); the loss before each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    losses = []
    for _ in range(steps):
        loss = model(**inputs, fused_lm_head=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(mean_over_processes(loss.detach()).item())
    return losses


def print_accelerate_state():
    from accelerate import PartialState

    print(REPORT + json.dumps({"distributed_type": PartialState().distributed_type.value}), flush=True)


def fsdp2_worker(out):
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo")
    model = label_only(with_attention(build_model(build_tokenizer()), "sdpa_per_row"))
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)  # the rest, the tied embedding / output layer included

    def mean_over_processes(loss):
        dist.all_reduce(loss)
        return loss / dist.get_world_size()

    rows = fsdp_rows(model.config.vocab_size)
    losses = sgd_losses(model, collate([rows[dist.get_rank()]], padding_free=True), mean_over_processes=mean_over_processes)
    if dist.get_rank() == 0:
        rows_here = model.model.embed_tokens.weight.to_local().shape[0]
        Path(out).write_text(json.dumps({"losses": losses, "embedding_rows_per_process": rows_here}))
    dist.destroy_process_group()


if __name__ == "__main__":
    if sys.argv[1] == "accelerate-state":
        print_accelerate_state()
    elif sys.argv[1] == "tokenised-fingerprint":
        print(tokenised_fingerprint(sys.argv[2]))
    else:
        fsdp2_worker(sys.argv[2])

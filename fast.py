"""The fast training path: compute only what the loss uses.

Two things a completion-only, padding-free SFT step of Gemma 3 computes for nothing, and what replaces them here:

1. The output layer at unlabelled positions. The tied 262,144-word output layer is ~62% of Gemma 3 270M's FLOPs per
   token, yet ~80% of the positions in a batch are prompt. trl 1.16's SFTTrainer scores only labelled positions on
   devices with Triton (its fused, chunked LM head), but elsewhere (the CPU) it projects every position through the
   whole vocabulary. `LabelOnlySFTTrainer` (ExtraConfig `label_only_logits`) runs the output layer on the hidden
   states of the labelled positions only, with one [labelled tokens, vocab] buffer (`LabelLogProbs`).
2. Attention across rows of a padding-free batch: `attention.py` (`attn_implementation: sdpa_per_row`).

trl's `compute_loss` stays in charge: it reads per-token log-probabilities, entropy and top-1 hits from the model's
`fused_lm_head=True` output, reduces the loss (`num_items_in_batch`, DDP scaling) and logs `entropy` and
`mean_token_accuracy`; the head here returns the same `FusedCausalLMOutput`, so loss and metrics keep their meaning.
"""

import types

import torch
from accelerate.utils import is_peft_model
from trl import SFTTrainer
from trl.kernels.chunked_logprob import _use_triton  # trl's own test for "my fused head is label-only already"
from trl.trainer.utils import FusedCausalLMOutput

IGNORE = -100
CHUNK = 256  # labelled positions reduced at a time: bounds the temporaries beside the [positions, vocab] buffer


def trainer_class(label_only_logits):
    """The trainer to build: ours when the config asks for label-only logits, else trl's own."""
    return LabelOnlySFTTrainer if label_only_logits else SFTTrainer


# ---------------------------------------------------------------- 1. the output layer at labelled positions only


class LabelOnlySFTTrainer(SFTTrainer):
    """SFTTrainer whose output layer computes logits only where a label is."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        text_config = self.model.config.get_text_config()
        if self.aux_loss_enabled or getattr(text_config, "final_logit_softcapping", None):
            raise ValueError("label_only_logits: models with router losses or logit soft-capping are not supported")
        if not _use_triton(self.args.device):  # with Triton, trl's fused head already scores labelled positions only
            add_label_only_lm_head(self.model.get_base_model() if is_peft_model(self.model) else self.model)


def add_label_only_lm_head(model):
    """Wrap the (trl-patched) forward so that `fused_lm_head=True` runs the output layer at labelled positions only.

    Every other call (generation, evaluation that wants logits) goes to the forward as it was.
    """
    previous_forward = model.forward

    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head:
            return previous_forward(
                *args, labels=labels, shift_labels=shift_labels, num_items_in_batch=num_items_in_batch, **kwargs
            )
        given_shifted = shift_labels is not None
        if not given_shifted:
            shift_labels = next_token_labels(labels)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        label_mask = shift_labels != IGNORE
        weight = self.get_output_embeddings().weight
        kept = LabelLogProbs.apply(hidden[label_mask], weight, shift_labels[label_mask])
        # trl's shape: one value per position, zero where there is no label; (rows, length - 1) for unshifted labels
        log_probs, entropy, is_top1 = (x.new_zeros(label_mask.shape).masked_scatter(label_mask, x) for x in kept)
        if not given_shifted:
            log_probs, entropy, is_top1, label_mask = (x[:, :-1] for x in (log_probs, entropy, is_top1, label_mask))
        count = label_mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count, log_probs=log_probs, entropy=entropy, is_top1=is_top1, label_mask=label_mask
        )

    model.forward = types.MethodType(forward, model)


def next_token_labels(labels):
    """The label each position is scored against: position t predicts token t + 1; the last position predicts nothing."""
    return torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE)


class LabelLogProbs(torch.autograd.Function):
    """log p(label) at labelled positions, from their hidden states [tokens, hidden] and the output layer
    [vocab, hidden], holding one [tokens, vocab] buffer: the forward turns the logits, in place, into the gradient
    d(-log p)/d(logits) = softmax - one_hot, which the backward only scales. Also returns, without gradient, the
    entropy and whether the label is the top-1 word (the metrics trl logs)."""

    @staticmethod
    def forward(ctx, hidden, weight, labels):
        device = hidden.device.type
        ctx.dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        # softmax statistics in float32 at least (bf16 logits would round them)
        logits = (hidden.to(ctx.dtype) @ weight.to(ctx.dtype).t()).to(torch.promote_types(ctx.dtype, torch.float32))
        label_logits = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        is_top1 = logits.argmax(dim=-1) == labels
        log_normalisers, entropy = torch.empty_like(label_logits), torch.empty_like(label_logits)
        for rows, chunk in zip(torch.arange(len(labels)).split(CHUNK), logits.split(CHUNK)):
            log_normalisers[rows] = torch.logsumexp(chunk, dim=-1)
            chunk.sub_(log_normalisers[rows].unsqueeze(-1))  # log-probabilities
            entropy[rows] = -(chunk.exp() * chunk).sum(-1)
            chunk.exp_()  # probabilities
        logits[torch.arange(len(labels)), labels] -= 1  # softmax - one_hot
        ctx.gradient = logits
        ctx.save_for_backward(hidden, weight)
        ctx.mark_non_differentiable(entropy, is_top1)
        return label_logits - log_normalisers, entropy, is_top1

    @staticmethod
    def backward(ctx, grad_log_probs, *_):
        hidden, weight = ctx.saved_tensors
        grad_logits = ctx.gradient.mul_(-grad_log_probs.unsqueeze(-1)).to(ctx.dtype)  # once: the graph is not retained
        grad_hidden = (grad_logits @ weight.to(ctx.dtype)).to(hidden.dtype) if ctx.needs_input_grad[0] else None
        grad_weight = (grad_logits.t() @ hidden.to(ctx.dtype)).to(weight.dtype) if ctx.needs_input_grad[1] else None
        return grad_hidden, grad_weight, None

"""Attention within each row of a padding-free batch: `attn_implementation: sdpa_per_row`.

A padding-free batch is one flat row that holds several training rows. transformers' sdpa attends over the whole flat
row through a block-diagonal mask, which costs (batch length)^2 instead of the sum of (row length)^2. trl's collator
passes the row bounds (`cu_seq_lens_q`, `max_length_q`), and `sdpa_per_row` uses them:

- on CUDA in bf16/fp16, one varlen flash-attention call over all rows (`torch.nn.attention.varlen.varlen_attn`, torch
  >= 2.11), causal, with Gemma 3's sliding window on its local layers;
- elsewhere (the CPU, fp32, an older torch): sdpa once per row in a Python loop, causal, windowed on local layers;
- for anything that is not padding-free (padded batches, generation): transformers' own sdpa with its own mask.

`sdpa_row_loop` is the same without the varlen kernel, so that a benchmark can set the two side by side on a GPU.
`register()` makes both names known to transformers; `models.load_model` calls it before it loads a model.
"""

import inspect

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask


def register():
    """Let `attn_implementation: sdpa_per_row` (and `sdpa_row_loop`) load like transformers' own; padded batches
    get sdpa's masks. Registering again is harmless."""
    for name, forward in (("sdpa_per_row", sdpa_per_row), ("sdpa_row_loop", sdpa_row_loop)):
        AttentionInterface.register(name, forward)
        AttentionMaskInterface.register(name, sdpa_mask)


def torch_varlen_kernel():
    """torch's varlen flash attention where it takes the scale and sliding window Gemma 3 needs, else None (torch
    2.10's first version has neither)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn if {"scale", "window_size"} <= inspect.signature(varlen_attn).parameters.keys() else None


VARLEN_ATTN = torch_varlen_kernel()


def varlen_available(query, dropout):
    """Flash attention runs on CUDA, in half precision, without attention dropout."""
    return VARLEN_ATTN is not None and query.is_cuda and query.dtype in (torch.bfloat16, torch.float16) and not dropout


def sdpa_per_row(module, query, key, value, attention_mask, dropout=0.0, scaling=None, sliding_window=None,
                 cu_seq_lens_q=None, max_length_q=None, **kwargs):
    """transformers' attention signature; query, key, value are [batch, heads, length, head_dim]."""
    if cu_seq_lens_q is not None and varlen_available(query, dropout):
        return varlen_rows(query, key, value, cu_seq_lens_q, max_length_q, scaling, sliding_window), None
    return sdpa_row_loop(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                         sliding_window=sliding_window, cu_seq_lens_q=cu_seq_lens_q, **kwargs)


def sdpa_row_loop(module, query, key, value, attention_mask, dropout=0.0, scaling=None, sliding_window=None,
                  cu_seq_lens_q=None, **kwargs):
    """sdpa once per row of a padding-free batch; transformers' sdpa for any other batch."""
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      sliding_window=sliding_window, **kwargs)
    bounds = cu_seq_lens_q.tolist()
    rows = [
        row_attention(query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], dropout, scaling, sliding_window)
        for start, end in zip(bounds, bounds[1:])
    ]
    return torch.cat(rows, dim=2).transpose(1, 2).contiguous(), None


def row_attention(query, key, value, dropout, scaling, sliding_window):
    """Causal sdpa over one row; a local layer also masks keys `sliding_window` or more positions back."""
    length = query.shape[2]
    window = None
    if sliding_window is not None and length > sliding_window:
        distance = torch.arange(length, device=query.device)
        distance = distance[:, None] - distance[None, :]
        window = (distance >= 0) & (distance < sliding_window)
    return torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=window, dropout_p=dropout, is_causal=window is None, scale=scaling,
        enable_gqa=True,  # Gemma 3 shares its key/value heads: no copies of them
    )


def varlen_rows(query, key, value, bounds, longest, scaling, sliding_window, kernel=None):
    """All rows of a padding-free batch (batch 1) in one varlen call; returns [1, length, heads, head_dim] as
    transformers expects. `kernel` has varlen_attn's signature (default: torch's)."""
    kernel = kernel or VARLEN_ATTN
    # varlen takes [tokens, heads, head_dim]
    query, key, value = (x[0].transpose(0, 1).contiguous() for x in (query, key, value))
    if "enable_gqa" in inspect.signature(kernel).parameters:
        shared_heads = {"enable_gqa": True}
    else:  # torch 2.11 wants as many key/value heads as query heads
        key, value = (x.repeat_interleave(query.shape[1] // x.shape[1], dim=1) for x in (key, value))
        shared_heads = {}
    if longest is None:
        longest = int((bounds[1:] - bounds[:-1]).max())
    # (left, right): a query sees keys up to `left` positions back; Gemma's local layers see sliding_window - 1 back
    window = (-1, 0) if sliding_window is None else (sliding_window - 1, 0)
    out = kernel(query, key, value, bounds, bounds, longest, longest, scale=scaling, window_size=window, **shared_heads)
    return out.unsqueeze(0)

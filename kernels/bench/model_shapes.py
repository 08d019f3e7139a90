"""Parameter lists the benchmark scripts share (imported from this folder, which Python puts on
``sys.path`` when a script here runs)."""

from __future__ import annotations


def gpt2_shapes(n_layer: int = 12, d: int = 768, vocab: int = 50257, ctx: int = 1024):
    """GPT-2's parameter shapes (148 tensors for 12 layers) plus an untied lm_head weight and
    bias: 150 tensors (163M parameters at full size)."""
    shapes = [(vocab, d), (ctx, d)]
    for _ in range(n_layer):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,)]  # ln_1, attn
        shapes += [(d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]  # ln_2, mlp
    shapes += [(d,), (d,), (vocab, d), (vocab,)]  # ln_f, lm_head
    return shapes

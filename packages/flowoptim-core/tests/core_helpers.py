"""Helpers shared by flowoptim-core's tests (imported by name: conftest puts this folder on
sys.path, and the unique module name avoids clashes with other packages' tests)."""

from __future__ import annotations

import torch

import flowoptim as fo

#: one constructor per algorithm with non-default options, for the generic tests
ALL_OPTIMIZERS = {
    "sgd": lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd-nesterov": lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda ps: fo.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
    "adamw": lambda ps: fo.AdamW(ps, lr=0.01, weight_decay=0.1),
    "lamb": lambda ps: fo.LAMB(ps, lr=0.01, weight_decay=0.1),
    "rmsprop": lambda ps: fo.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda ps: fo.Adagrad(ps, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    "adadelta": lambda ps: fo.Adadelta(ps, lr=1.0, weight_decay=0.01),
}


def make_params(seed: int = 0, shapes=((7,), (3, 4), (1,)), dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def set_grads(params, seed: int):
    gen = torch.Generator().manual_seed(1000 + seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)

"""Plan cache (Note [plan cache]): reuse across steps, rebuilds on changes, address reuse."""

from __future__ import annotations

import torch
from triton_helpers import DEVICE, randn

from flowoptim.backends.reference import ReferenceBackend
from flowoptim_triton.backend import TritonBackend


def sgd(b, params, grads, lr=0.1):
    b.sgd(params, grads, None, lr=lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
          nesterov=False, maximize=False, grad_scale=None)  # fmt: skip


def test_plan_reused_across_steps_and_lr_changes():
    b = TritonBackend()
    params = [randn(n, torch.float32, seed=i) for i, n in enumerate([10, 3000])]
    grads = [torch.ones_like(p) for p in params]
    for lr in (0.1, 0.05, 0.01):
        sgd(b, params, grads, lr=lr)
    assert b.engine.plan_builds == 1


def test_rebuilt_when_the_set_changes():
    b = TritonBackend()
    params = [randn(n, torch.float32, seed=i) for i, n in enumerate([10, 3000, 5])]
    grads = [torch.ones_like(p) for p in params]
    sgd(b, params, grads)
    sgd(b, params[:2], grads[:2])
    assert b.engine.plan_builds == 2
    sgd(b, params[::-1], grads[::-1])  # same tensors, another order
    # a fresh grad may land at a freed one's address: then the (identical) table is reused
    assert 1 <= b.engine.plan_builds <= 3


def test_same_address_other_size_is_a_new_plan():
    """A new tensor at a freed tensor's address (here: views of one storage) must not reuse the
    old table: a different numel at the same address is a different key."""
    b = TritonBackend()
    storage_p = torch.zeros(4000, device=DEVICE)
    storage_g = torch.ones(4000, device=DEVICE)
    sgd(b, [storage_p[:100]], [storage_g[:100]], lr=1.0)
    assert storage_p[:100].eq(-1).all() and storage_p[100:].eq(0).all()
    sgd(b, [storage_p[:3000]], [storage_g[:3000]], lr=1.0)  # same data_ptrs, new size
    assert b.engine.plan_builds == 2
    assert storage_p[:100].eq(-2).all() and storage_p[100:3000].eq(-1).all()
    assert storage_p[3000:].eq(0).all()


def test_grad_swapped_for_another_tensor():
    """The param keeps its address, its grad is a new tensor: a new key (grads are operands)."""
    b, ref = TritonBackend(), ReferenceBackend()
    p = randn(2500, torch.float32, seed=0)
    p_ref = p.clone()
    for step in range(3):
        g = randn(2500, torch.float32, seed=10 + step)  # a fresh grad tensor each step
        sgd(b, [p], [g])
        sgd(ref, [p_ref], [g.clone()])
        del g
    torch.testing.assert_close(p, p_ref, rtol=1e-6, atol=1e-6)
    # a fresh grad may land at a freed one's address: then the (identical) table is reused
    assert 1 <= b.engine.plan_builds <= 3


def test_cache_holds_no_tensors():
    import gc
    import weakref

    b = TritonBackend()
    p, g = torch.zeros(50, device=DEVICE), torch.ones(50, device=DEVICE)
    sgd(b, [p], [g])
    ref = weakref.ref(p)
    del p
    gc.collect()
    assert ref() is None


def test_zero_sized_only():
    b = TritonBackend()
    p, g = torch.zeros(0, device=DEVICE), torch.zeros(0, device=DEVICE)
    sgd(b, [p], [g])
    m, v = torch.zeros(0, device=DEVICE), torch.zeros(0, device=DEVICE)
    b.lamb([p], [g], [m], [v], None, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.0, adam_w_mode=True, amsgrad=False, do_bias_correction=True,
           maximize=False, grad_scale=None)  # fmt: skip

"""State shared by Adam, AdamW and LAMB (same state names as torch.optim.Adam)."""

from __future__ import annotations

import torch


def init_adam_state(p, state, group) -> None:
    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    if group["amsgrad"]:
        state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def required_adam_state(group) -> set[str]:
    """The state a non-empty entry must hold (Optimizer._required_state)."""
    return (
        {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
        if group["amsgrad"]
        else {
            "exp_avg",
            "exp_avg_sq",
        }
    )


def lazy_adam_state(group) -> set[str]:
    """``max_exp_avg_sq`` is created when amsgrad is switched on after the first steps."""
    return {"max_exp_avg_sq"} if group["amsgrad"] else set()


def adam_state_lists(params, states, group):
    """(exp_avgs, exp_avg_sqs, max_exp_avg_sqs or None) for one partition."""
    if group["amsgrad"]:
        for p, s in zip(params, states):
            if "max_exp_avg_sq" not in s:  # amsgrad switched on after the first steps
                s["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return (
        [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states],
        [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else None,
    )

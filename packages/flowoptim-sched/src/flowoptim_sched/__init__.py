"""OneFlow's learning-rate schedulers, in closed form, for any ``torch.optim`` optimizer.

Every scheduler here is a ``torch.optim.lr_scheduler.LRScheduler`` (ReduceLROnPlateau: torch's
``ReduceLROnPlateau``) whose lr is a pure function of ``(base_lr, step)`` from
:mod:`flowoptim_sched.formulas`::

    import torch
    from flowoptim_sched import CosineDecayLR, WarmupLR

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = WarmupLR(CosineDecayLR(opt, decay_steps=1000, alpha=0.1), warmup_iters=100)
    for batch in data:
        ...
        opt.step()
        sched.step()
"""

from . import formulas
from .base import ClosedFormLR
from .composite import ChainedScheduler, SequentialLR, WarmUpLR, WarmupLR
from .plateau import ReduceLROnPlateau
from .schedulers import (
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CosineDecayLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)

__version__ = "0.1.0"

#: Every scheduler class by its OneFlow name (WarmUpLR is OneFlow's alias of WarmupLR).
SCHEDULERS = {
    cls.__name__: cls
    for cls in (
        StepLR,
        MultiStepLR,
        ExponentialLR,
        CosineAnnealingLR,
        CosineDecayLR,
        PolynomialLR,
        LambdaLR,
        ReduceLROnPlateau,
        ConstantLR,
        LinearLR,
        WarmupLR,
        CosineAnnealingWarmRestarts,
        SequentialLR,
        ChainedScheduler,
    )
}
SCHEDULERS["WarmUpLR"] = WarmUpLR

__all__ = [
    "SCHEDULERS",
    "ChainedScheduler",
    "ClosedFormLR",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CosineDecayLR",
    "ExponentialLR",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
    "WarmUpLR",
    "WarmupLR",
    "__version__",
    "formulas",
]

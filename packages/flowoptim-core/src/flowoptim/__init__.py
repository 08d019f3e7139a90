"""flowoptim: OneFlow's optimizer API (``oneflow.optim``) on PyTorch.

Every optimizer is a ``torch.optim.Optimizer`` with OneFlow 0.9.0's numbers. What they promise
(the optimizers, ``clip_grad``, state dicts and schedulers, with the departures from OneFlow and
torch.optim) is ``docs/semantics.md`` in the repository; per-algorithm equations are in
``docs/algorithms/``. The arithmetic runs on a pluggable backend (:mod:`flowoptim.backends`):
pure torch on the CPU, Triton kernels on CUDA with flowoptim-triton.
"""

from . import backends
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .lamb import LAMB
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__version__ = "0.1.0"

__all__ = [
    "LAMB",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "backends",
]

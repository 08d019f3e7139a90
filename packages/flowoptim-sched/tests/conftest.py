import warnings

import pytest

# torch warns at import when NumPy is absent ("Failed to initialize NumPy"), and the repository's
# pytest configuration turns warnings into errors. This package does not use NumPy, so its tests
# must also run where only torch is installed: import torch once with that one warning ignored.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch


def _make_sgd(*lrs: float) -> torch.optim.SGD:
    """A torch.optim.SGD with one one-element parameter per lr, one group each."""
    lrs = lrs or (0.1,)
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


@pytest.fixture
def make_sgd():
    return _make_sgd


def run(scheduler, steps: int) -> list[list[float]]:
    """Group lrs after construction and after each of ``steps`` steps."""
    opt = scheduler.optimizer
    out = [[float(g["lr"]) for g in opt.param_groups]]
    for _ in range(steps):
        scheduler.step()
        out.append([float(g["lr"]) for g in opt.param_groups])
    return out


@pytest.fixture
def run_lrs():
    return run


# Most tests here drive a scheduler alone, without an optimizer step in between, to read its lr
# sequence; torch's "lr_scheduler.step() before optimizer.step()" warning (which this package
# gives too) is expected there and ignored. test_warnings.py checks that warning, with its own
# filters.
STEP_ORDER = r"ignore:Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`"


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.filterwarnings(STEP_ORDER))

"""Optimizers without torch.compile's guards, for a process that trains eagerly.

PyTorch 2.x marks the optimizer's methods as not to be compiled; the mark imports
`torch._dynamo` the first time one runs: 1.4-1.8 s of CPU in every process that trains (each
trial worker, `fmnist-ray train`), for a step that is the same without it. fmnist-ray never
compiles, so its optimizers run the plain methods. `tests/test_train.py` checks that they
train bit for bit as the guarded ones do and that training never imports `torch._dynamo`.

Limits, none of which fmnist-ray meets: the guard of `zero_grad`, `state_dict`,
`load_state_dict` and `add_param_group` is skipped for every optimizer of the process (code
compiled later would trace into them); step hooks and profiler labels are not run; torch's
LR schedulers, which re-wrap `step`, do not apply (fmnist-ray schedules the rate itself).
"""

from __future__ import annotations

import inspect
import sys
import weakref
from collections.abc import Callable

import torch

# Optimizer methods wrapped by `torch._disable_dynamo`, which caches the guarded function on the
# plain one as `__dynamo_disable` (PyTorch 2.14) and imports torch._dynamo to make it.
_GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def eager(optimizer_class: type[torch.optim.Optimizer], *args, **kwargs) -> torch.optim.Optimizer:
    """`optimizer_class(*args, **kwargs)`, whose methods skip torch.compile's guards."""
    if "torch._dynamo" not in sys.modules:  # once imported, the guards cost nothing more
        for name in _GUARDED:
            plain = getattr(getattr(torch.optim.Optimizer, name), "__wrapped__", None)
            if plain is not None and not hasattr(plain, "__dynamo_disable"):
                setattr(plain, "__dynamo_disable", plain)
    optimizer = optimizer_class(*args, **kwargs)
    optimizer.step = _plain_step(optimizer)
    return optimizer


def _plain_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """The optimizer's own `step` under `no_grad`, without the wrappers PyTorch adds around it
    (step hooks and profiler labels, which fmnist-ray does not use, and the compile guard)."""
    step = inspect.unwrap(type(optimizer).step)
    differentiable = optimizer.defaults.get("differentiable", False)
    owner = weakref.ref(optimizer)  # no optimizer -> step -> optimizer cycle to keep it alive

    def plain_step(closure=None):
        with torch.set_grad_enabled(differentiable):
            return step(owner(), closure)

    return plain_step

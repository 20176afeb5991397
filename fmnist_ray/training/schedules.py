"""Learning-rate schedules and a weight average: functions of the global step, no state.

Being stateless, both give the same numbers after a resume as in an uninterrupted run.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

# One-cycle, as in torch's OneCycleLR defaults: start at lr / 25, peak at 30% of the run.
ONECYCLE_START = 1 / 25
ONECYCLE_PEAK = 0.3


def _cosine(progress: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total_steps`.

    constant / cosine: linear warm-up from 0 over `warmup_steps`, then flat / cosine to 0.
    onecycle: cosine rise from lr/25 to lr over `warmup_steps` (30% of the run when 0), then
    cosine to 0.
    """
    if schedule == "onecycle":
        peak = warmup_steps or max(1, round(ONECYCLE_PEAK * total_steps))
        if step < peak:
            return 1 - (1 - ONECYCLE_START) * _cosine(step / peak)
        return _cosine((step - peak) / max(1, total_steps - peak))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        return _cosine((step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 1.0


class WeightAverage:
    """An exponential moving average of a model's weights and batch-norm statistics.

    The decay ramps up over the first steps, (1 + t) / (10 + t), so early averages are not
    dominated by the random initial weights.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        pairs = list(zip(self.model.state_dict().values(), model.state_dict().values(),
                         strict=True))
        self._floats = [(a, b) for a, b in pairs if a.is_floating_point()]
        self._others = [(a, b) for a, b in pairs if not a.is_floating_point()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        averages = [a for a, _ in self._floats]
        torch._foreach_lerp_(averages, [b for _, b in self._floats], 1 - decay)
        for a, b in self._others:
            a.copy_(b)

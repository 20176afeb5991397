"""Training whose settings change between epochs, as population based training (PBT) does:
a state continued under other settings, and a schedule of settings replayed from scratch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fmnist_ray.config import TrialConfig
from fmnist_ray.training.data import FashionMNIST
from fmnist_ray.training.loop import EpochMetrics, TrainState, TrialResult, train_trial


def adopt_settings(state: TrainState, config: TrialConfig) -> TrainState:
    """`state` to continue under `config`'s optimizer settings: a saved optimizer state keeps
    the learning rate, weight decay and momentum it ran with, which loading it would restore.
    A state continued under its own config is unchanged (a scheduled learning rate is set
    again at every step)."""
    for group in state.optimizer["param_groups"]:
        group["lr"] = config.lr
        group["weight_decay"] = config.weight_decay
        if config.optimizer in ("sgd_momentum", "nesterov"):
            group["momentum"] = config.momentum
    return state


class _SegmentEnd(Exception):
    def __init__(self, state: TrainState):
        super().__init__("the segment's last epoch")
        self.state = state


def segments(schedule: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """A per-epoch schedule of settings as (last epoch, settings) runs of equal settings."""
    runs: list[tuple[int, dict[str, Any]]] = []
    for epoch, settings in enumerate(schedule, start=1):
        if runs and runs[-1][1] == settings:
            runs[-1] = (epoch, settings)
        else:
            runs.append((epoch, settings))
    return runs


def train_schedule(config_for: Callable[[dict[str, Any]], TrialConfig],
                   schedule: list[dict[str, Any]], data: FashionMNIST,
                   on_epoch: Callable[[EpochMetrics, TrainState], None] | None = None,
                   threads: int | None = None) -> TrialResult | None:
    """Train from scratch through `schedule` (epoch 1's settings first): each run of equal
    settings under `config_for(settings)`, continued from the state the run before left."""
    state, result = None, None
    for last, settings in segments(schedule):
        config = config_for(settings)

        def report(metrics: EpochMetrics, epoch_state: TrainState, last: int = last) -> None:
            if on_epoch is not None:
                on_epoch(metrics, epoch_state)
            if metrics.epoch == last and last < len(schedule) and not metrics.diverged:
                raise _SegmentEnd(epoch_state)

        start = adopt_settings(state, config) if state is not None else None
        try:
            result = train_trial(config, data, on_epoch=report, start=start, threads=threads)
        except _SegmentEnd as end:
            state = end.state
            continue
        break  # the schedule's end, or a run that diverged
    return result

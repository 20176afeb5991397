"""What a sweep will do before it runs: its trials, the resource plan and a calibrated estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fmnist_ray.config import SweepSpec, TrialConfig, grid_values
from fmnist_ray.sweep.store import TrialKeys, TrialStore
from fmnist_ray.training.data import FashionMNIST, fingerprint
from fmnist_ray.training.loop import NUMERICS_VERSION, measure_throughput


@dataclass
class SweepPlan:
    trials: list[TrialConfig]  # grid trials, or the base config once per sample for searches
    varied: list[str]  # the trial settings that differ between trials
    space: dict[str, str]  # how each searched axis is sampled (random / Optuna)
    concurrency: int
    cpus: float
    gpus: float
    seconds: float  # estimated wall time, from calibration; an upper bound under ASHA
    reused: list[bool]  # per trial: its result is in the trial store (grid trials only)


def _varied_keys(trials: list[TrialConfig]) -> list[str]:
    dumps = [t.model_dump() for t in trials]
    return [k for k in dumps[0] if any(d[k] != dumps[0][k] for d in dumps)] if dumps else []


def _trial_list(spec: SweepSpec) -> list[TrialConfig]:
    """Grid: every trial. Random / Optuna: the start points, then stand-ins for the sampled
    trials (the base config with each variant in turn, so the estimate covers every model).
    Random search also crosses each sample with the grid of any list axes and variants;
    the plan counts samples only."""
    if spec.search == "grid":
        return [spec.trial_config(point) for point in spec.grid_points()]
    starts = [spec.trial_config(spec.start_point(point)) for point in spec.start_with]
    cycle = [spec.trial_config({"variant": v.value}) for v in spec.variants] or [spec.trial]
    total = spec.num_samples * spec.seeds
    return (starts + [cycle[i % len(cycle)] for i in range(total)])[:total]


def _space(spec: SweepSpec) -> dict[str, str]:
    if spec.search == "grid":
        return {}
    space = {}
    for key, axis in spec.axes.items():
        grid = grid_values(axis)
        if grid is not None:
            space[key] = f"choice {grid}"
        else:
            space[key] = f"{axis.kind} {getattr(axis, axis.kind)}"
    if spec.variants:
        space["variant"] = f"choice {[v.name for v in spec.variants]}"
    return space


def _stored(spec: SweepSpec, trials: list[TrialConfig], data: FashionMNIST,
            storage: str | None) -> list[bool]:
    """Which of a grid's trials already ran to their end under `storage`: they are reused."""
    known = storage and spec.search == "grid" and not spec.sampled_keys  # else drawn later
    stored = TrialStore(storage).load() if known else {}
    if not stored:
        return [False] * len(trials)
    keys = TrialKeys(fingerprint(data), NUMERICS_VERSION)
    return [keys.key(trial) in stored for trial in trials]


def plan_sweep(spec: SweepSpec, data: FashionMNIST, cluster_cpus: float,
               cluster_gpus: float = 0.0, calibrate: bool = True,
               storage: str | None = None) -> SweepPlan:
    """Expand the trials, find those the trial store under `storage` holds, fit the rest to
    the cluster, and time a few batches of each distinct model."""
    trials = _trial_list(spec)
    reused = _stored(spec, trials, data, storage)
    per_cpu = max(1, math.floor(cluster_cpus / spec.resources.cpu))
    per_gpu = (math.floor(cluster_gpus / spec.resources.gpu) if spec.resources.gpu else per_cpu)
    concurrency = max(1, min(per_cpu, per_gpu, spec.max_concurrent_trials or per_cpu))
    seconds = 0.0
    if calibrate:
        speeds: dict[Any, float] = {}
        n_train = len(data.train_labels)
        eval_images = len(data.val_labels) + len(data.test_labels) / 2
        for trial in (t for t, done in zip(trials, reused, strict=True) if not done):
            key = (trial.model, tuple(trial.hidden_sizes), trial.width, trial.depth,
                   trial.batch_size)
            if key not in speeds:
                speeds[key] = measure_throughput(trial, data, threads=spec.resources.cpu)
            # Evaluation runs forward only, about a third of a training step per image.
            epoch = (n_train + eval_images / 3) / speeds[key]
            seconds += epoch * min(trial.epochs, spec.max_t)
        seconds /= min(concurrency, reused.count(False)) or 1
        if spec.time_budget_minutes:
            seconds = min(seconds, spec.time_budget_minutes * 60)
    return SweepPlan(trials, _varied_keys(trials), _space(spec), concurrency,
                     spec.resources.cpu, spec.resources.gpu, seconds, reused)

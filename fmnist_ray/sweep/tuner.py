"""The Ray Tune setup of a sweep: its search space, searcher, scheduler and run settings."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.schedulers import (
    ASHAScheduler,
    HyperBandScheduler,
    PopulationBasedTraining,
    TrialScheduler,
)
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from fmnist_ray.config import OBJECTIVES, Axis, SweepSpec, grid_values, listed_values
from fmnist_ray.results.storage import normalize_storage
from fmnist_ray.sweep.extension import Extension


def _dimension(values: Axis, searched: bool):
    """A Tune search dimension: grids stay grids unless a searcher (Optuna) must sample them."""
    grid = grid_values(values)
    if grid is not None:
        return tune.choice(grid) if searched else tune.grid_search(grid)
    if values.kind == "choice":
        return tune.choice(values.choice)
    if values.kind == "uniform":
        return tune.uniform(*values.uniform)
    if values.kind == "loguniform":
        return tune.loguniform(*values.loguniform)
    low, high = values.randint
    return tune.randint(low, high + 1)  # Tune's upper bound is exclusive; ours is inclusive


def build_param_space(spec: SweepSpec) -> dict[str, Any]:
    searched = spec.search == "optuna"
    space = {key: _dimension(values, searched) for key, values in spec.axes.items()}
    if spec.variants:
        space["variant"] = _dimension([v.value for v in spec.variants], searched)
    if spec.seeds > 1:
        space["seed"] = tune.grid_search(spec.seed_values)
    return space


class GivenPoints(Searcher):
    """Suggests exactly these points, in order, then finishes: the new trials of a grown grid,
    which Tune's grid search cannot express without running the kept ones again."""

    def __init__(self, points: list[dict[str, Any]]):
        super().__init__()
        self.points = points
        self.given = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.given >= len(self.points):
            return Searcher.FINISHED
        self.given += 1
        return copy.deepcopy(self.points[self.given - 1])

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump((self.points, self.given), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.points, self.given = pickle.load(handle)


def build_searcher(spec: SweepSpec, extension: Extension | None = None):
    """What suggests the trials: Optuna's TPE for `search: optuna` (told the results of an
    extended search's earlier trials, so it goes on from them without running them again),
    the new points of an extended grid, or None (Tune's grid / random search)."""
    if spec.search != "optuna":
        if extension is None:
            return None
        searcher = GivenPoints(extension.points)
    else:
        earlier = extension.earlier if extension else []
        # An extension's sampler gets a seed of its own: the spec's seed would draw the points
        # of the first run again. The start points ran in the first run.
        starts = [] if extension else [spec.start_point(p) for p in spec.start_with]
        starts = [p for i, p in enumerate(starts) if p not in starts[:i]]
        searcher = OptunaSearch(seed=spec.trial.seed + len(earlier),
                                points_to_evaluate=(earlier or starts) or None,
                                evaluated_rewards=extension.rewards if earlier else None,
                                **objective_options(spec))
    if spec.max_concurrent_trials:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent_trials)
    return searcher


def objective_options(spec: SweepSpec) -> dict[str, Any]:
    """A multi-objective search's metrics (the columns its trials report) and modes; nothing
    for a search of one metric (the Tuner's)."""
    if not spec.objectives:
        return {}
    return {"metric": [OBJECTIVES[name] for name in spec.objectives],
            "mode": list(spec.objectives.values())}


class _PopulationTraining(PopulationBasedTraining):
    """PBT that leaves a trial's last epoch alone: a change after it would train nothing, yet
    would hand the trial another's weights under settings it never trained with."""

    def __init__(self, last_epoch: int, **options):
        super().__init__(**options)
        self.last_epoch = last_epoch

    def on_trial_result(self, tune_controller, trial, result):
        if result.get("epoch", 0) >= self.last_epoch:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def build_scheduler(spec: SweepSpec):
    """Ray Tune's scheduler for `spec.scheduler`: ASHA, HyperBand or PBT; None for none."""
    options = spec.scheduler
    if options.type == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=spec.max_t,
                             grace_period=options.grace_period,
                             reduction_factor=options.reduction_factor)
    if options.type == "hyperband":
        return HyperBandScheduler(time_attr="epoch", max_t=spec.max_t,
                                  reduction_factor=options.reduction_factor)
    if options.type == "pbt":
        return _PopulationTraining(
            spec.trial.epochs, time_attr="epoch",
            perturbation_interval=options.perturbation_interval,
            # Listed values (a grid or a choice) move to a neighbour (or are drawn again); a
            # numeric range scales by 0.8 or 1.2 (or is drawn again).
            hyperparam_mutations={
                key: listed_values(spec.axes[key]) or _dimension(spec.axes[key], True)
                for key in options.mutate},
            quantile_fraction=options.quantile,
            # Every trial waits for the others at each perturbation, then the worst take the
            # best's weights: asynchronous PBT on a small population skips most exchanges (a
            # best trial's checkpoint is only kept if it was best when it reached the point).
            synch=True)
    return None


def build_tuner(spec: SweepSpec, trainable, storage: str, callbacks: list,
                extension: Extension | None = None) -> tune.Tuner:
    """The Tuner of a sweep, or of an extension's new trials only."""
    searcher = build_searcher(spec, extension)
    param_space = build_param_space(spec)
    num_samples = spec.num_samples
    if extension is not None:
        num_samples = extension.trials
        if spec.search != "optuna":
            param_space = {}  # the points come whole from GivenPoints
    scheduler = build_scheduler(spec)
    # A multi-objective search's metrics are its searcher's: Tune would replace them with one.
    metric, mode = (None, None) if spec.objectives else (spec.metric, spec.resolved_mode)
    storage_path = normalize_storage(storage)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=metric, mode=mode, num_samples=num_samples,
            search_alg=searcher, scheduler=scheduler,
            max_concurrent_trials=None if searcher else spec.max_concurrent_trials,
            reuse_actors=True,
            time_budget_s=spec.time_budget_minutes and spec.time_budget_minutes * 60,
        ),
        run_config=tune.RunConfig(
            name=spec.name, storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # PBT continues trials from other trials' checkpoints: it keeps them all.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if spec.is_population else 2),
            # Ray's JSON/CSV result files (report falls back on them) and TensorBoard files.
            callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback(),
                       TBXLoggerCallback()],
            verbose=0,  # progress is the caller's, through on_update
        ),
    )


@contextmanager
def trials_on_idle_workers() -> Iterator[None]:
    """Let Tune's trial actors run on the workers a local Ray starts with, one per CPU.

    Tune gives each trial actor a runtime environment of its own (`PL_DISABLE_FORK=1` and a few
    variables copied from the driver: cloud credentials, Ray Train settings; Ray Tune 2.60
    `ray.tune.execution.class_cache`), which those idle workers lack, so Ray starts a new
    process per trial worker instead (Python and Ray's start-up, about a second of CPU each).
    Only for the local Ray this process started: its workers have this process's environment
    as it was when Ray started, which is what the runtime environment would copy unless those
    variables changed since."""
    try:
        from ray.tune.execution.class_cache import _ActorClassCache
    except ImportError:  # another Ray: nothing to change
        _ActorClassCache = None
    if _ActorClassCache is None:
        yield
        return
    tunes_own = _ActorClassCache.get

    def get(cache, trainable_cls, *args, **kwargs):
        if args or kwargs or not hasattr(cache, "_cache"):  # another Ray: its own way
            return tunes_own(cache, trainable_cls, *args, **kwargs)
        if trainable_cls not in cache._cache:
            cache._cache[trainable_cls] = ray.remote(trainable_cls)
        return cache._cache[trainable_cls]

    _ActorClassCache.get = get
    try:
        yield
    finally:
        _ActorClassCache.get = tunes_own

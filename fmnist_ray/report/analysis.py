"""Numbers read off a sweep's results, shared by the findings, the charts and the index page.

One selection rule holds everywhere: trials and configurations are chosen on the validation
metric (`results.metric`) alone; test metrics are reported for what was chosen, never used to
choose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fmnist_ray.report.formatting import count_noun
from fmnist_ray.report.front import pareto_front
from fmnist_ray.report.load import SweepResults
from fmnist_ray.results.outcomes import Status

# Runs that are results about settings, not models.
FAILED = (Status.DIVERGED, Status.FAILED_TO_LEARN)
ENDINGS = (Status.COMPLETED, Status.EARLY_STOPPED, Status.FAILED_TO_LEARN, Status.DIVERGED,
           Status.ERRORED)
# Validation loss counts as having turned upward only when its rise since its lowest point
# exceeds this many times the trial's typical epoch-to-epoch change.
RISE_NOISE_MULTIPLE = 3.0


def learned(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that trained and learned (no failure, error or unfinished run)."""
    return trials[trials["status"].isin([Status.COMPLETED, Status.EARLY_STOPPED])]


def reused_from(trials: pd.DataFrame) -> pd.Series:
    """Where each reused trial came from (`sweep/trial`), for the trials not trained here;
    empty for sweeps that reused none (or were written before trials could be reused)."""
    if "reused_from" not in trials:
        return pd.Series(dtype=object)
    return trials["reused_from"].dropna()


def completed(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that ran their full length: the ones a grid compares like with like."""
    return trials[trials["status"] == Status.COMPLETED]


def choose(frame: pd.DataFrame, column: str, maximize: bool):
    """The index label of the best `column` value (validation only); None when there is none."""
    values = frame[column].dropna()
    if values.empty:
        return None
    return values.idxmax() if maximize else values.idxmin()


def config_table(results: SweepResults, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per configuration, seeds pooled: trial counts, the validation metric, test metrics."""
    trials = completed(results.trials) if trials is None else trials
    table = trials.groupby("config", sort=False).agg(
        trials=("trial_id", "size"), metric=(results.metric, "mean"),
        test_accuracy=("test_accuracy", "mean"), test_loss=("test_loss", "mean"))
    return table.reindex([c for c in results.configs if c in table.index])


def _pooled(results: SweepResults) -> pd.DataFrame:
    """The trials a configuration's mean pools: the completed ones (every one that learned
    when none completed, as in a budget-cut search), those with a validation score only."""
    trials = completed(results.trials).dropna(subset=[results.metric])
    return trials if len(trials) else learned(results.trials).dropna(subset=[results.metric])


def best_config(results: SweepResults) -> str | None:
    """The configuration with the best mean validation metric over its completed trials; in
    a search (ASHA, a time budget, sampled points), the best at its deepest common rung, so a
    trial that trained longer is never ranked against shorter ones (over every trial that
    learned when no rung is common, as in a tiny search); in a multi-objective search, the
    member of the Pareto front its `choose_within` rule picks."""
    from fmnist_ray.report.rungs import best_at_common_rung, is_search  # rungs reads this

    front = pareto_front(results)
    if front is not None:  # several objectives: the member of the front its rule picks
        return None if front.chosen is None else front.chosen["config"]
    if is_search(results) and (config := best_at_common_rung(results)) is not None:
        return config
    table = config_table(results, _pooled(results)).dropna(subset=["metric"])
    return choose(table, "metric", results.maximize)


def confirmation_of(results: SweepResults, config: str) -> pd.DataFrame:
    """The confirmation trials of `config` that learned: fresh seeds at full length."""
    found = results.confirmation
    if found.empty or "config" not in found:
        return found
    return learned(found[found["config"] == config]).dropna(subset=[results.metric])


def best_trial(results: SweepResults) -> pd.Series | None:
    """The best-validation trial of the best configuration, the page's one best: one of its
    confirmation trials when it was confirmed (trained to full length), else its own."""
    config = best_config(results)
    if config is None:
        return None
    trials = learned(results.trials)
    candidates = confirmation_of(results, config)
    if candidates.empty:
        candidates = trials[(trials["config"] == config)].dropna(subset=[results.metric])
    label = choose(candidates, results.metric, results.maximize)
    return None if label is None else candidates.loc[label]


@dataclass(frozen=True)
class Choice:
    """The sweep's one chosen model, as the report, `show`, `ls`, `export` and the sweep's
    summary all name it: the configuration with the best mean validation metric over its
    seeds (a search's: the best at its deepest common rung), then that configuration's best
    trial on validation (one of its confirmation trials when it was confirmed)."""

    config: str  # the configuration's label in `results.configs`
    label: str  # the same, naming its axis when there is one (e.g. `variant=adam`)
    seeds: int  # trials its mean pools: the confirmation's when it was confirmed
    mean: float  # its mean validation metric over them
    trial: pd.Series  # its best trial on validation (a row of `results.trials`)
    confirmed: bool = False  # the mean is over fresh seeds trained after the search
    pool: pd.DataFrame = field(default_factory=pd.DataFrame)  # the trials the mean pools


def chosen(results: SweepResults) -> Choice | None:
    """The chosen configuration and its best trial; None before any trial learned."""
    config, trial = best_config(results), best_trial(results)
    if config is None or trial is None:
        return None
    pool = confirmation_of(results, config)
    confirmed = not pool.empty
    if not confirmed:
        pool = _pooled(results)
        pool = pool[pool["config"] == config]
    if pool.empty:  # chosen at a rung, its trials cut short there
        pool = learned(results.trials)
        pool = pool[pool["config"] == config].dropna(subset=[results.metric])
    values = pool[results.metric]
    return Choice(config, config_name(results, config), len(values), float(values.mean()),
                  trial, confirmed, pool)


def config_name(results: SweepResults, config: str) -> str:
    """A configuration label that names its axis when there is only one, e.g. `lr=0.01`."""
    return f"{results.axes[0].name}={config}" if len(results.axes) == 1 else config


def status_counts(trials: pd.DataFrame) -> str:
    """E.g. `6 trials: 4 completed, 1 failed-to-learn, 1 diverged`: the statuses present."""
    counts = trials["status"].value_counts()
    order = [s for s in ENDINGS if counts.get(s, 0)] + [s for s in counts.index
                                                        if s not in ENDINGS]
    parts = [f"{counts[s]} {s.replace('_', '-')}" for s in order]
    return f"{count_noun(len(trials), 'trial')}: {', '.join(parts) or 'none yet'}"


def _rise_noise(val_loss: pd.Series) -> float:
    """The trial's typical epoch-to-epoch change of validation loss (median absolute step)."""
    steps = val_loss.diff().abs().dropna()
    return float(steps.median()) if len(steps) else np.nan


def overfitting_by_trial(results: SweepResults) -> pd.DataFrame:
    """Per trial that learned: the last-epoch gap, where validation loss was lowest, its rise.

    The gap is validation loss minus the eval-mode loss on training images (`train_eval_loss`)
    where the sweep measured it (`like_for_like`), else minus the running training loss, which
    dropout, augmentation and label smoothing inflate. `overfits`: validation loss rose since
    its lowest epoch by more than RISE_NOISE_MULTIPLE times its epoch-to-epoch noise.
    """
    trials, epochs = learned(results.trials), results.epochs
    rows = []
    for _, trial in trials.iterrows():
        history = epochs[epochs["trial_id"] == trial["trial_id"]].dropna(subset=["val_loss"])
        if history.empty:
            continue
        like = bool(history["train_eval_loss"].notna().all())
        train = history["train_eval_loss" if like else "train_loss"]
        if train.isna().all():
            continue
        last = history.iloc[-1]
        lowest = history.loc[history["val_loss"].idxmin()]
        rise = float(last["val_loss"] - lowest["val_loss"])
        noise = _rise_noise(history["val_loss"])
        rows.append({
            "trial_id": trial["trial_id"], "config": trial["config"], "status": trial["status"],
            "like_for_like": like, "gap": float(last["val_loss"] - train.iloc[-1]),
            "running_gap": float(last["val_loss"] - last["train_loss"]),
            "last_epoch": last["epoch"], "best_epoch": trial["best_epoch"],
            "turn_epoch": lowest["epoch"], "rise": rise, "noise": noise,
            "overfits": bool(len(history) >= 3 and rise > RISE_NOISE_MULTIPLE * noise > 0),
            "past_best": last["epoch"] - trial["best_epoch"]})
    columns = ["trial_id", "config", "status", "like_for_like", "gap", "running_gap",
               "last_epoch", "best_epoch", "turn_epoch", "rise", "noise", "overfits",
               "past_best"]
    return pd.DataFrame(rows, columns=columns)

"""Numbers read off a sweep's results, shared by the summary, the charts and the index page."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fmnist_ray.report.formatting import count_noun
from fmnist_ray.report.load import SweepResults


def overfitting_by_trial(results: SweepResults) -> pd.DataFrame:
    """Per trial: last-epoch gap (val - train loss), lowest-val-loss epoch, epochs past best.

    Read from the epoch history where there is one, else from the trials' final losses.
    Diverged trials (their losses blew up; the gap means nothing) and trials with no finite
    losses are left out.
    """
    trials, epochs = results.trials, results.epochs
    trials = trials[trials["status"] != "diverged"]
    rows = []
    for _, trial in trials.iterrows():
        history = epochs[epochs["trial_id"] == trial["trial_id"]].dropna(
            subset=["train_loss", "val_loss"])
        if len(history):
            last = history.iloc[-1]
            lowest = history.loc[history["val_loss"].idxmin()]
            gap, last_epoch = last["val_loss"] - last["train_loss"], last["epoch"]
            turn, rise = lowest["epoch"], last["val_loss"] - lowest["val_loss"]
        elif pd.notna(trial["final_val_loss"]) and pd.notna(trial["final_train_loss"]):
            gap = trial["final_val_loss"] - trial["final_train_loss"]
            last_epoch, turn, rise = trial["epochs_run"], np.nan, np.nan
        else:
            continue
        rows.append({"trial_id": trial["trial_id"], "config": trial["config"],
                     "status": trial["status"], "gap": gap,
                     "last_epoch": last_epoch, "best_epoch": trial["best_epoch"],
                     "turn_epoch": turn, "rise": rise,
                     "past_best": last_epoch - trial["best_epoch"]})
    columns = ["trial_id", "config", "status", "gap", "last_epoch", "best_epoch", "turn_epoch",
               "rise", "past_best"]
    return pd.DataFrame(rows, columns=columns)


def config_table(results: SweepResults) -> pd.DataFrame:
    """Per configuration, seeds pooled: trial counts, test metrics and the ranking metric."""
    table = results.trials.groupby("config", sort=False).agg(
        trials=("trial_id", "size"), scored=("test_accuracy", "count"),
        test_accuracy=("test_accuracy", "mean"), test_min=("test_accuracy", "min"),
        test_max=("test_accuracy", "max"), test_loss=("test_loss", "mean"),
        metric=(results.metric, "mean"))
    return table.reindex([c for c in results.configs if c in table.index])


def best_trial(results: SweepResults) -> pd.Series | None:
    """The trial with the best validation metric among those with test results."""
    scored = results.trials.dropna(subset=[results.metric, "test_accuracy"])
    if scored.empty:
        return None
    column = scored[results.metric]
    return scored.loc[column.idxmax() if results.maximize else column.idxmin()]


def config_name(results: SweepResults, config: str) -> str:
    """A configuration label that names its axis when there is only one, e.g. `lr=0.01`."""
    return f"{results.axes[0].name}={config}" if len(results.axes) == 1 else config


def status_counts(trials: pd.DataFrame) -> str:
    """E.g. `6 trials: 4 completed, 1 early-stopped, 1 diverged, 0 errored`."""
    counts = trials["status"].value_counts()
    parts = [f"{counts.get(s, 0)} {s.replace('_', '-')}"
             for s in ("completed", "early_stopped", "diverged", "errored")]
    parts += [f"{n} {s}" for s, n in counts.items()
              if s not in ("completed", "early_stopped", "diverged", "errored")]
    return f"{count_noun(len(trials), 'trial')}: {', '.join(parts)}"


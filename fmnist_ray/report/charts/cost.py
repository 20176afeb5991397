"""Cost charts: training seconds per epoch and throughput, for the axes that change cost."""

from __future__ import annotations

from fmnist_ray.report.analysis import reused_from
from fmnist_ray.report.charts.common import Section
from fmnist_ray.report.charts.metrics import per_axis_frames, per_value
from fmnist_ray.report.load import SweepResults

# Settings that change the work per image or the batching; lr, optimizer or seed do not.
COST_SETTINGS = ("model", "hidden_sizes", "width", "depth", "batch_size", "precision",
                 "memory_format", "augment_crop", "augment_flip", "augment_erasing", "ema")
CONTENTION = 1.3  # same setting, throughput this many times apart: the cores were shared


def changes_cost(results: SweepResults, axis: str) -> bool:
    """Whether an axis's values differ in a setting that changes the cost of training."""
    if axis == "variant":
        trials = results.trials
        return any(c in trials and trials.groupby("variant")[c].first().astype(str).nunique() > 1
                   for c in COST_SETTINGS)
    return axis in COST_SETTINGS or axis == "config"


def cost_section(results: SweepResults) -> Section:
    """Seconds per training epoch (from the history, else the trial's total) and images/s."""
    trials = results.trials.copy()
    seconds = results.epochs.groupby("trial_id")["epoch_seconds"].mean()
    trials["epoch_seconds"] = trials["trial_id"].map(seconds)
    trials["epoch_seconds"] = trials["epoch_seconds"].fillna(
        trials["seconds"] / trials["epochs_run"].where(trials["epochs_run"] > 0))
    notes = ["Training time per epoch (evaluation excluded) and training throughput, per "
             "trial, for the settings that change the work."]
    speed = trials.dropna(subset=["images_per_second"]).groupby("config")["images_per_second"]
    spread = (speed.max() / speed.min()).dropna()
    if len(spread) and spread.max() > CONTENTION:
        notes.append(f"The same setting ran up to {spread.max():.1f}x faster on one trial than "
                     f"on another: trials shared cores with each other or with other work, so "
                     f"these figures measure contention as well as the setting.")
    if not reused_from(trials).empty:
        notes.append("Reused trials show the times measured when they were trained, in the "
                     "sweep named in their reused_from; this sweep spent nothing on them.")
    cost = Section("Cost", notes)
    for name, frame, kind in per_axis_frames(trials, results):
        if not changes_cost(results, "config" if name == "configuration" else name):
            continue
        chart = per_value(frame, name, [("epoch_seconds", "seconds per epoch (training)"),
                                        ("images_per_second", "training images per second")],
                          title=f"Cost by {name}", **kind)
        if chart is not None:
            cost.charts.append((chart, ""))
    return cost if cost.charts else Section(cost.title)

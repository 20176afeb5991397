"""Cost charts: training seconds per epoch and throughput, per trial, against each axis."""

from __future__ import annotations

from fmnist_ray.report.charts.common import Section
from fmnist_ray.report.charts.metrics import per_axis_frames, per_value
from fmnist_ray.report.load import SweepResults


def cost_section(results: SweepResults) -> Section:
    """Seconds per training epoch (from the history, else the trial's total) and images/s."""
    trials = results.trials.copy()
    seconds = results.epochs.groupby("trial_id")["epoch_seconds"].mean()
    trials["epoch_seconds"] = trials["trial_id"].map(seconds)
    trials["epoch_seconds"] = trials["epoch_seconds"].fillna(
        trials["seconds"] / trials["epochs_run"].where(trials["epochs_run"] > 0))
    cost = Section("Cost", ["Training time per epoch (evaluation excluded) and training "
                            "throughput, per trial."])
    for name, frame, kind in per_axis_frames(trials, results):
        chart = per_value(frame, name, [("epoch_seconds", "seconds per epoch (training)"),
                                        ("images_per_second", "training images per second")],
                          title=f"Cost by {name}", **kind)
        if chart is not None:
            cost.charts.append((chart, ""))
    return cost if cost.charts else Section(cost.title)

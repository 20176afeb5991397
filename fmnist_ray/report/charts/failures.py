"""Runs that failed to learn or diverged, on a scale of their own (log loss)."""

from __future__ import annotations

import altair as alt

from fmnist_ray.report.analysis import FAILED
from fmnist_ray.report.charts.common import WIDTH, Section, epoch_x, status_color, trial_labels
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.load import SweepResults


def failures_section(results: SweepResults, found: SweepFindings) -> Section:
    """Where and when each failed run went wrong: its training loss per epoch, log scale."""
    failed = results.trials[results.trials["status"].isin(FAILED)]
    if failed.empty:
        return Section("Failed runs")
    section = Section("Failed runs", [f"{line}." for line in found.failures])
    history = results.epochs.merge(failed[["trial_id", "config", "status", "seed"]],
                                   on="trial_id").dropna(subset=["train_loss"])
    history = history[history["train_loss"] > 0]
    if len(history):
        history = history.assign(trial=trial_labels(history))
        chart = alt.Chart(history).mark_line(point=True).encode(
            x=epoch_x(history["epoch"]),
            y=alt.Y("train_loss:Q", title="training loss (log scale)",
                    scale=alt.Scale(type="log")),
            color=status_color(history["status"]), detail="trial:N",
            tooltip=["trial:N", "status:N", "epoch:Q",
                     alt.Tooltip("train_loss:Q", format=",.3f"),
                     alt.Tooltip("val_accuracy:Q", format=".3f")])
        section.charts.append((chart.properties(title="Training loss of the failed runs",
                                                width=WIDTH, height=200),
                               "A run at chance stays near ln 10 = 2.30; a diverged one "
                               "climbs until it is stopped (NaN/inf epochs are not drawn)."))
    return section

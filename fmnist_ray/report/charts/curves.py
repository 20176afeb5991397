"""Learning curves: validation metrics over epochs, one line per configuration."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fmnist_ray.report.analysis import FAILED
from fmnist_ray.report.charts.common import (
    HEIGHT,
    WIDTH,
    Section,
    config_color,
    epoch_x,
    not_drawn_caption,
    ordered_axis,
    padded_scale,
)
from fmnist_ray.report.load import SweepResults


def spread_caption(results: SweepResults) -> str:
    """How lines pool seeds, said only when there are several."""
    seeds = results.trials.groupby("config")["seed"].nunique()
    if len(seeds) and seeds.max() > 1:
        return " Line: mean over seeds; band: min to max over seeds."
    return " One line per trial."


def curves(frame: pd.DataFrame, y: str, title: str, y_title: str, order: list[str],
           legend_title: str, ordered: bool = False) -> alt.LayerChart:
    """One line per configuration over epochs: the mean over seeds, with a min..max band."""
    stats = (frame.groupby(["config", "epoch"], observed=True)[y]
             .agg(["mean", "min", "max"]).reset_index())
    order = [c for c in order if c in set(stats["config"])]  # the legend lists what is drawn
    base = alt.Chart(stats).encode(
        x=epoch_x(stats["epoch"]),
        color=config_color(order, legend_title, ordered))
    band = base.mark_area(opacity=0.18).encode(y=alt.Y("min:Q", title=y_title,
                                                         scale=padded_scale()),
                                                y2="max:Q")
    line = base.mark_line(point=True).encode(
        y="mean:Q", tooltip=["config:N", "epoch:Q", alt.Tooltip("mean:Q", format=".4f"),
                             alt.Tooltip("min:Q", format=".4f"),
                             alt.Tooltip("max:Q", format=".4f")])
    return (band + line).properties(title=title, width=WIDTH, height=HEIGHT)


def curve_legend(results: SweepResults) -> str:
    """The legend title of per-configuration lines: the axis name when only one was varied."""
    return results.axes[0].name if len(results.axes) == 1 else "configuration"


def tagged_epochs(results: SweepResults, top: list[str]) -> pd.DataFrame:
    """The epoch history of the configurations in `top`, with each trial's config and status;
    runs that failed to learn or diverged are left out (they would set the shared scale)."""
    tagged = results.epochs.merge(results.trials[["trial_id", "config", "status"]],
                                  on="trial_id")
    return tagged[tagged["config"].isin(top) & ~tagged["status"].isin(FAILED)]


def failed_caption(results: SweepResults) -> str:
    """Names the runs kept off shared-scale charts, and where to read about them."""
    failed = results.trials[results.trials["status"].isin(FAILED)]
    if failed.empty:
        return ""
    listed = ", ".join(f"{t} ({s.replace('_', ' ')})" for t, s in
                       zip(failed["trial_id"], failed["status"], strict=True))
    return f" Left out, on their own scale under Failed runs: {listed}."


def learning_section(results: SweepResults, top: list[str]) -> Section:
    """Validation accuracy and loss over epochs for the configurations in `top`."""
    if not len(results.epochs):
        return Section("Learning curves",
                       ["No epoch history (epochs.parquet is missing or empty)."])
    tagged, legend = tagged_epochs(results, top), curve_legend(results)
    limited = (f" Showing the {len(top)} best of {len(results.configs)} configurations."
               if len(top) < len(results.configs) else "")
    learning = Section("Learning curves", [f"Validation metrics after every epoch.{limited}"])
    for column, title in (("val_accuracy", "Validation accuracy"), ("val_loss", "Validation loss")):
        frame = tagged.dropna(subset=[column])
        if len(frame):
            learning.charts.append((curves(frame, column, title, title.lower(), top, legend,
                                           ordered_axis(results)),
                                    spread_caption(results) + failed_caption(results)
                                    + not_drawn_caption(results, column)))
    return learning

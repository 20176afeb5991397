"""Learning curves: validation metrics over epochs, one line per configuration."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fmnist_ray.report.charts.common import (
    HEIGHT,
    WIDTH,
    Section,
    config_color,
    epoch_x,
    not_drawn_caption,
    padded_scale,
)
from fmnist_ray.report.load import SweepResults

SPREAD_CAPTION = " Line: mean over seeds; band: min to max over seeds."


def curves(frame: pd.DataFrame, y: str, title: str, y_title: str, order: list[str],
           legend_title: str) -> alt.LayerChart:
    """One line per configuration over epochs: the mean over seeds, with a min..max band."""
    stats = (frame.groupby(["config", "epoch"], observed=True)[y]
             .agg(["mean", "min", "max"]).reset_index())
    base = alt.Chart(stats).encode(
        x=epoch_x(stats["epoch"]),
        color=config_color(order, legend_title))
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
    """The epoch history of the configurations in `top`, with each trial's config and status."""
    tagged = results.epochs.merge(results.trials[["trial_id", "config", "status"]],
                                  on="trial_id")
    return tagged[tagged["config"].isin(top)]


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
            learning.charts.append((curves(frame, column, title, title.lower(), top, legend),
                                    SPREAD_CAPTION + not_drawn_caption(results, column)))
    return learning

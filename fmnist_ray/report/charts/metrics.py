"""Final metrics per setting: each trial's test accuracy and loss against each varied axis."""

from __future__ import annotations

from collections.abc import Iterator

import altair as alt
import pandas as pd

from fmnist_ray.report.charts.common import (
    HEIGHT,
    WIDTH,
    Section,
    chart_axes,
    padded_scale,
    status_color,
)
from fmnist_ray.report.formatting import format_value
from fmnist_ray.report.load import SweepResults


def _per_value_panel(frame: pd.DataFrame, axis: str, y: str, y_title: str, order: list[str],
                     continuous: bool, log: bool) -> alt.LayerChart:
    data = frame[["value", "trial_id", "status", y]].dropna(subset=[y])
    tooltip = ["trial_id:N", "status:N", alt.Tooltip("value:N", title=axis),
               alt.Tooltip(f"{y}:Q", format=".4f")]
    if continuous:
        scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
        x = alt.X("value:Q", title=axis, scale=scale)
        return (alt.Chart(data).mark_circle(size=70, opacity=0.85)
                .encode(x=x, y=alt.Y(f"{y}:Q", title=y_title, scale=padded_scale()),
                        color=status_color(data["status"]), tooltip=tooltip)
                .properties(width=WIDTH, height=HEIGHT))
    x = alt.X("value:N", title=axis, sort=order, axis=alt.Axis(labelAngle=0, labelLimit=160))
    stats = (data.groupby("value", observed=True)[y].agg(["mean", "min", "max", "count"])
             .reset_index())
    spread = alt.Chart(stats).mark_rule(strokeWidth=2, color="#555").encode(
        x=x, y=alt.Y("min:Q", title=y_title, scale=padded_scale()), y2="max:Q")
    mean = alt.Chart(stats).mark_tick(thickness=3, size=26, color="#222").encode(
        x=x, y="mean:Q", tooltip=[alt.Tooltip("value:N", title=axis),
                                  alt.Tooltip("mean:Q", format=".4f"),
                                  alt.Tooltip("min:Q", format=".4f"),
                                  alt.Tooltip("max:Q", format=".4f"),
                                  alt.Tooltip("count:Q", title="trials")])
    trials = alt.Chart(data).mark_circle(size=45, opacity=0.8).encode(
        x=x, y=f"{y}:Q", color=status_color(data["status"]), tooltip=tooltip)
    return (spread + mean + trials).properties(width=WIDTH, height=HEIGHT)


def per_value(frame: pd.DataFrame, axis: str, panels: list[tuple[str, str]], order: list[str],
              continuous: bool = False, log: bool = False, title: str = ""
              ) -> alt.HConcatChart | None:
    """Side-by-side panels of per-trial values against one axis: mean tick, min..max rule, dots.

    `frame` has columns value, trial_id, status and each panel's column; `panels` holds
    (column, axis title) pairs. A continuous axis (sampled by a random search) is a scatter.
    Panels without data are left out; None if none has any.
    """
    charts = [_per_value_panel(frame, axis, y, y_title, order, continuous, log)
              for y, y_title in panels if frame[y].notna().any()]
    return alt.hconcat(*charts).properties(title=title) if charts else None


def per_axis_frames(trials: pd.DataFrame, results: SweepResults
                    ) -> Iterator[tuple[str, pd.DataFrame, dict]]:
    """Per chart axis: its display name, `trials` with its values as `value`, per_value kwargs."""
    for axis in chart_axes(results):
        name = "configuration" if axis.name == "config" else axis.name
        frame = trials.assign(value=trials[axis.name] if axis.continuous
                              else trials[axis.name].map(format_value))
        yield name, frame, dict(order=axis.order, continuous=axis.continuous, log=axis.log)


def test_results_section(results: SweepResults) -> Section:
    """Test accuracy and loss of every trial, one chart per varied axis."""
    tests = Section("Test results per setting",
                    ["Test metrics of each trial's best-validation weights. Tick: mean; "
                     "line: min to max; dots: trials, coloured by status."])
    for name, frame, kind in per_axis_frames(results.trials, results):
        untested = frame[frame["test_accuracy"].isna()]
        missing = (" No test result: " + ", ".join(
            f"{t} ({s})" for t, s in zip(untested["trial_id"], untested["status"],
                                         strict=True)) + ".") if len(untested) else ""
        chart = per_value(frame, name, [("test_accuracy", "test accuracy"),
                                        ("test_loss", "test loss")],
                          title=f"Test accuracy and loss by {name}", **kind)
        if chart is not None:
            tests.charts.append((chart, missing.strip()))
    return tests if tests.charts else Section(tests.title)

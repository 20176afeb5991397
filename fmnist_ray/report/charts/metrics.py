"""Final metrics per setting: each trial's test accuracy and loss against each varied axis."""

from __future__ import annotations

from collections.abc import Iterator

import altair as alt
import pandas as pd

from fmnist_ray.report.analysis import FAILED
from fmnist_ray.report.charts.common import (
    HEIGHT,
    WIDTH,
    Section,
    chart_axes,
    padded_scale,
    status_color,
    verdict_color,
)
from fmnist_ray.report.compare import value_table
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.formatting import format_value
from fmnist_ray.report.load import SweepResults


def _per_value_panel(frame: pd.DataFrame, axis: str, y: str, y_title: str, order: list[str],
                     continuous: bool, log: bool, intervals: pd.DataFrame | None = None
                     ) -> alt.LayerChart:
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
    # Labels side by side only while they fit the panel's width; tilted otherwise.
    crowded = sum(len(v) + 2 for v in order) * 7 > WIDTH
    x = alt.X("value:N", title=axis, sort=order, axis=alt.Axis(
        labelAngle=-30 if crowded else 0, labelAlign="right" if crowded else "center",
        labelLimit=160))
    if intervals is not None and len(intervals):
        trials = alt.Chart(data).mark_circle(size=36, opacity=0.55, color="#444").encode(
            x=x, y=alt.Y(f"{y}:Q", title=y_title, scale=padded_scale()), tooltip=tooltip)
        color = verdict_color(intervals["verdict"])
        bars = alt.Chart(intervals).mark_rule(strokeWidth=3).encode(
            x=x, y="ci_low:Q", y2="ci_high:Q", color=color)
        mean = alt.Chart(intervals).mark_tick(thickness=3, size=26).encode(
            x=x, y="mean:Q", color=color,
            tooltip=[alt.Tooltip("value:N", title=axis), alt.Tooltip("mean:Q", format=".4f"),
                     alt.Tooltip("ci_low:Q", title="95% CI from", format=".4f"),
                     alt.Tooltip("ci_high:Q", title="95% CI to", format=".4f"),
                     alt.Tooltip("n:Q", title="trials"), "verdict:N"])
        layers = [bars, mean, trials]
        chosen = intervals[intervals["verdict"] == "chosen"]
        if len(chosen) and "margin" in intervals:
            # The chosen value's mean ± the equivalence margin, across the panel: a value whose
            # interval of the difference lies inside it is `equivalent`.
            band = chosen.assign(low=chosen["mean"] - chosen["margin"],
                                 high=chosen["mean"] + chosen["margin"])
            layers.insert(0, alt.Chart(band).mark_rect(opacity=0.12, color="#2ca02c").encode(
                y="low:Q", y2="high:Q", tooltip=[alt.Tooltip("margin:Q", format=".4f",
                                                             title="margin (±)")]))
            layers.insert(1, alt.Chart(band).mark_rule(strokeDash=[4, 3], color="#2ca02c")
                          .encode(y="mean:Q"))
        return alt.layer(*layers).properties(width=WIDTH, height=HEIGHT)
    trials = alt.Chart(data).mark_circle(size=40, opacity=0.7).encode(
        x=x, y=alt.Y(f"{y}:Q", title=y_title, scale=padded_scale()),
        color=status_color(data["status"]), tooltip=tooltip)
    stats = (data.groupby("value", observed=True)[y].agg(["mean", "min", "max", "count"])
             .reset_index())
    spread = alt.Chart(stats).mark_rule(strokeWidth=2, color="#555").encode(
        x=x, y=alt.Y("min:Q", title=y_title, scale=padded_scale()), y2="max:Q")
    mean = alt.Chart(stats).mark_tick(thickness=3, size=26, color="#222").encode(
        x=x, y="mean:Q", tooltip=[alt.Tooltip("value:N", title=axis),
                                  alt.Tooltip("mean:Q", format=".4f"),
                                  alt.Tooltip("count:Q", title="trials")])
    return (spread + mean + trials).properties(width=WIDTH, height=HEIGHT)


def per_value(frame: pd.DataFrame, axis: str, panels: list[tuple[str, str]], order: list[str],
              continuous: bool = False, log: bool = False, title: str = "",
              intervals: dict[str, pd.DataFrame] | None = None) -> alt.HConcatChart | None:
    """Side-by-side panels of per-trial values against one axis: dots, and either the 95%
    interval and verdict of each value (`intervals`, by panel column) or its mean and range.

    `frame` has columns value, trial_id, status and each panel's column; `panels` holds
    (column, axis title) pairs. A continuous axis (sampled by a random search) is a scatter.
    Panels without data are left out; None if none has any.
    """
    intervals = intervals or {}
    charts = [_per_value_panel(frame, axis, y, y_title, order, continuous, log,
                               intervals.get(y))
              for y, y_title in panels if frame[y].notna().any()]
    return (alt.hconcat(*charts).resolve_scale(color="independent").properties(title=title)
            if charts else None)


def per_axis_frames(trials: pd.DataFrame, results: SweepResults
                    ) -> Iterator[tuple[str, pd.DataFrame, dict]]:
    """Per chart axis: its display name, `trials` with its values as `value`, per_value kwargs."""
    for axis in chart_axes(results):
        name = "configuration" if axis.name == "config" else axis.name
        frame = trials.assign(value=trials[axis.name] if axis.continuous
                              else trials[axis.name].map(format_value))
        yield name, frame, dict(order=axis.order, continuous=axis.continuous, log=axis.log)


def _intervals(found: SweepFindings, axis: str) -> pd.DataFrame | None:
    finding = next((a for a in found.axes if a.axis == axis), None)
    if finding is None or not found.noise.known:
        return None
    table = value_table(finding)
    table = table[table["n"] > 0].rename(columns={"test_accuracy": "mean"})
    return table[["value", "n", "mean", "ci_low", "ci_high", "verdict"]].assign(
        margin=found.margin)


def rung_section(results: SweepResults, found: SweepFindings) -> Section:
    """For a search: each trial's validation score at the last common rung, per axis."""
    rung, scores = found.rungs[-1].rung, found.rungs[-1].scores
    metric = "validation loss" if results.metric == "best_val_loss" else "validation accuracy"
    section = Section(f"Results per setting at epoch {rung}", [
        f"The trials ran different lengths, so their final or test numbers are not set side by "
        f"side: each dot is a trial's best {metric} up to epoch {rung}, for the "
        f"{len(scores)} trials that reached it. Tick: mean; line: min to max. The summary "
        f"gives the rank tests."])
    for name, frame, kind in per_axis_frames(scores, results):
        chart = per_value(frame, name, [("score", f"{metric} up to epoch {rung}")],
                          title=f"{metric.capitalize()} at epoch {rung} by {name}", **kind)
        if chart is not None:
            section.charts.append((chart, ""))
    return section


def test_results_section(results: SweepResults, found: SweepFindings) -> Section:
    """Test accuracy and loss of every trial that learned, one chart per varied axis (for a
    search with unequal lengths: validation at the last common rung instead)."""
    if found.search and found.rungs:
        return rung_section(results, found)
    noise = found.noise
    how = (f"Bar: 95% interval of the mean over that value's seeds (seed noise only: the "
           f"same 10k test images for every value), coloured by the value's verdict against "
           f"the one chosen on validation; green band: the chosen mean ± the margin "
           f"({found.margin * 100:.2f} points); grey dots: trials." if noise.known else
           "Tick: mean; line: min to max; dots: trials. One seed per setting: no interval, "
           "and no difference can be called real.")
    tests = Section("Test results per setting",
                    [f"Test metrics of each trial's best-validation weights. {how} Runs that "
                     f"failed to learn or diverged are left out so they don't set the scale."])
    learned_trials = results.trials[~results.trials["status"].isin(FAILED)]
    failed = results.trials[results.trials["status"].isin(FAILED)]
    for name, frame, kind in per_axis_frames(learned_trials, results):
        untested = frame[frame["test_accuracy"].isna()]
        notes = [f"{t} ({s})" for t, s in zip(untested["trial_id"], untested["status"],
                                               strict=True)]
        notes += [f"{t} ({s.replace('_', ' ')})" for t, s in zip(failed["trial_id"],
                                                                  failed["status"], strict=True)]
        missing = f"Not drawn: {', '.join(notes)}." if notes else ""
        accuracy = _intervals(found, name)
        chart = per_value(frame, name, [("test_accuracy", "test accuracy"),
                                        ("test_loss", "test loss")],
                          title=f"Test accuracy and loss by {name}",
                          intervals={"test_accuracy": accuracy} if accuracy is not None
                          else None, **kind)
        if chart is not None:
            tests.charts.append((chart, missing))
    return tests if tests.charts else Section(tests.title)

"""Cost charts: training seconds per epoch and throughput for the axes that change cost, and
each such axis's test accuracy against seconds per trial with its Pareto front."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from fmnist_ray.report.analysis import reused_from
from fmnist_ray.report.charts.common import HEIGHT, WIDTH, Section, verdict_color
from fmnist_ray.report.charts.metrics import per_axis_frames, per_value
from fmnist_ray.report.cost import CONTENTION, PARETO_RULE, AxisCost, changes_cost, contention
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.load import SweepResults


def tradeoff_chart(cost: AxisCost) -> alt.LayerChart | None:
    """Mean test accuracy (bar: its 95% interval over seeds) against mean seconds per trial
    (bar: fastest to slowest trial), coloured by verdict; diamonds: the Pareto front."""
    frame = pd.DataFrame([{"value": v.value, "verdict": v.verdict, "timed_trials": v.timed,
                           "seconds_mean": v.seconds_mean, "seconds_sd": v.seconds_sd,
                           "seconds_min": v.seconds_min, "seconds_max": v.seconds_max,
                           "params": v.params, "test_accuracy": v.test_accuracy,
                           "ci_low": v.ci_low, "ci_high": v.ci_high,
                           "front": "Pareto-optimal" if v.pareto else "dominated"}
                          for v in cost.values if v.timed and math.isfinite(v.test_accuracy)])
    if frame.empty:
        return None
    spread = frame["seconds_max"].max() / frame["seconds_min"].min()
    x_scale = alt.Scale(type="log") if spread >= 4 else alt.Scale(zero=False, padding=12)
    x = alt.X("seconds_mean:Q", title="seconds per trial (training and evaluation)",
              scale=x_scale)
    y_scale = alt.Scale(zero=False, padding=12)
    y = alt.Y("test_accuracy:Q", title="test accuracy", scale=y_scale)
    color = verdict_color(frame["verdict"])
    accuracy = alt.Chart(_null(frame.dropna(subset=["ci_low", "ci_high"]))).mark_rule(
        strokeWidth=2, opacity=0.7).encode(
        x=x, y=alt.Y("ci_low:Q", title="test accuracy", scale=y_scale), y2="ci_high:Q",
        color=color)
    frame = _null(frame)
    seconds = alt.Chart(frame).mark_rule(strokeWidth=2, opacity=0.7).encode(
        x=alt.X("seconds_min:Q", scale=x_scale), x2="seconds_max:Q", y=y, color=color)
    points = alt.Chart(frame).mark_point(filled=True, size=120, opacity=1).encode(
        x=x, y=y, color=color,
        shape=alt.Shape("front:N", title="", scale=alt.Scale(
            domain=["Pareto-optimal", "dominated"], range=["diamond", "circle"])),
        tooltip=[alt.Tooltip("value:N", title=cost.axis), "verdict:N", "front:N",
                 alt.Tooltip("seconds_mean:Q", title="seconds (mean)", format=".1f"),
                 alt.Tooltip("seconds_sd:Q", title="seconds (SD)", format=".1f"),
                 alt.Tooltip("timed_trials:Q", title="timed trials"),
                 alt.Tooltip("params:Q", format=",.0f"),
                 alt.Tooltip("test_accuracy:Q", format=".4f"),
                 alt.Tooltip("ci_low:Q", title="95% CI from", format=".4f"),
                 alt.Tooltip("ci_high:Q", title="95% CI to", format=".4f")])
    labels = alt.Chart(frame).mark_text(align="left", dx=8, dy=-8, fontSize=11,
                                        color="#333").encode(x=x, y=y, text="value:N")
    return (alt.layer(accuracy, seconds, points, labels)
            .properties(width=WIDTH + 120, height=HEIGHT + 40,
                        title=f"Test accuracy against seconds per trial by {cost.axis}"))


def _null(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with NaN as None, so a spec holds null (strict JSON) where a figure is missing."""
    return frame.astype(object).where(frame.notna(), None)


def cost_section(results: SweepResults, found: SweepFindings) -> Section:
    """Seconds per training epoch (from the history, else the trial's total) and images/s; for
    each compared axis that changes the work, accuracy against seconds per trial."""
    trials = results.trials.copy()
    seconds = results.epochs.groupby("trial_id")["epoch_seconds"].mean()
    trials["epoch_seconds"] = trials["trial_id"].map(seconds)
    trials["epoch_seconds"] = trials["epoch_seconds"].fillna(
        trials["seconds"] / trials["epochs_run"].where(trials["epochs_run"] > 0))
    notes = ["Training time per epoch (evaluation excluded) and training throughput, per "
             "trial, for the settings that change the work."]
    spread = contention(trials)
    if spread > CONTENTION:
        notes.append(f"The same setting ran up to {spread:.1f}x faster on one trial than "
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
    for axis in found.cost:
        chart = tradeoff_chart(axis)
        if chart is not None:
            cost.charts.append((chart, _tradeoff_caption(axis)))
    return cost if cost.charts else Section(cost.title)


def _tradeoff_caption(cost: AxisCost) -> str:
    shared = (" Times measured while trials shared cores: they include contention."
              if cost.shared_cores else "")
    reused = (f" {cost.reused} reused trials are left out (timed in another sweep)."
              if cost.reused else "")
    return (f"Each value's mean test accuracy (vertical bar: 95% interval over seeds) against "
            f"its mean seconds per trial over the completed trials trained in this sweep "
            f"(horizontal bar: fastest to slowest trial); colour: verdict against the chosen "
            f"value; diamonds: Pareto-optimal. {PARETO_RULE}{shared}{reused}")

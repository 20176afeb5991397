"""Charts across all varied axes at once (parallel coordinates, importance) and ASHA's stops."""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from fmnist_ray.report.analysis import learned
from fmnist_ray.report.charts.common import (
    HEIGHT,
    WIDTH,
    Section,
    epoch_x,
    status_color,
    trial_labels,
)
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.formatting import format_value
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.rungs import asha_rungs, stop_causes, stopper


def parallel_coordinates(frame: pd.DataFrame, axes: list[str], metric_title: str,
                         higher_is_better: bool) -> alt.LayerChart:
    """One line per trial across the varied axes, each scaled to 0..1, coloured by the metric.

    `frame` is long: trial_id, axis, position (0..1), label (the raw value), metric, status.
    The colour spans the 10th to 90th percentile, so one diverged trial cannot wash it out.
    """
    x = alt.X("axis:N", sort=axes, title=None, axis=alt.Axis(
        labelAngle=0, labelLimit=160, labelPadding=24, labelFontSize=12, labelFontWeight="bold",
        domain=False, ticks=False))
    metric = frame.drop_duplicates("trial_id")["metric"]
    low, high = float(metric.quantile(0.1)), float(metric.quantile(0.9))
    domain = [low, high] if high > low else [float(metric.min()), float(metric.max()) + 1e-9]
    lines = alt.Chart(frame).mark_line(opacity=0.7, strokeWidth=1.6).encode(
        x=x, y=alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[0, 1])),
        detail="trial_id:N",
        color=alt.Color("metric:Q", title=metric_title, scale=alt.Scale(
            scheme="viridis", domain=domain, clamp=True, reverse=not higher_is_better)),
        tooltip=["trial_id:N", "status:N", "axis:N", "label:N",
                 alt.Tooltip("metric:Q", format=".4f")])
    rules = alt.Chart(frame).mark_rule(color="#999").encode(x=x)
    ends = (frame.sort_values("position").groupby("axis", observed=True)
            .agg(low=("label", "first"), high=("label", "last")).reset_index())
    low = alt.Chart(ends).mark_text(dy=12, fontSize=10, color="#444").encode(
        x=x, y=alt.datum(0), text="low:N")
    high = alt.Chart(ends).mark_text(dy=-9, fontSize=10, color="#444").encode(
        x=x, y=alt.datum(1), text="high:N")
    return (rules + lines + low + high).properties(
        title=alt.Title("Parallel coordinates: every trial across the varied axes", offset=16),
        width=max(WIDTH, 150 * len(axes)), height=HEIGHT + 40)


def importance(frame: pd.DataFrame, metric_title: str) -> alt.Chart:
    """Bars of the share of metric variance each axis explains on its own (eta squared)."""
    return (alt.Chart(frame).mark_bar(color="#4c78a8")
            .encode(x=alt.X("eta2:Q", title=f"variance of {metric_title} explained (η²)",
                            scale=alt.Scale(domain=[0, 1])),
                    y=alt.Y("axis:N", sort="-x", title=None),
                    tooltip=["axis:N", alt.Tooltip("eta2:Q", format=".3f"),
                             alt.Tooltip("groups:Q", title="value groups")])
            .properties(title="Parameter importance", width=WIDTH, height=28 * len(frame)))


def eta_squared(values: pd.Series, metric: pd.Series, continuous: bool) -> tuple[float, int]:
    """Share of the metric's variance explained by an axis's groups (continuous: 5 quantiles)."""
    groups = (pd.qcut(values.rank(method="first"), q=min(5, len(values)), labels=False)
              if continuous else values.map(format_value))
    total = float(((metric - metric.mean()) ** 2).sum())
    stats = metric.groupby(groups).agg(["mean", "size"])
    between = float((stats["size"] * (stats["mean"] - metric.mean()) ** 2).sum())
    return (between / total if total > 0 else math.nan), len(stats)


def _unit(values: pd.Series) -> pd.Series:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else values * 0 + 0.5


def search_section(results: SweepResults, found: SweepFindings) -> Section:
    """Parallel coordinates and parameter importance, for sweeps that vary two or more axes.

    In a search whose trials ran unequal lengths, both use each trial's score at the last
    common rung, so a trial is never ranked above another for having trained longer.
    """
    metric, title = results.metric, results.metric.replace("best_val_", "best validation ")
    if found.search and found.rungs:
        rung, trials = found.rungs[-1].rung, found.rungs[-1].scores
        metric, title = "score", f"{title} up to epoch {rung}"
        scope = f"the {len(trials)} trials that reached epoch {rung} (a common length)"
    else:
        trials = learned(results.trials).dropna(subset=[metric])
        scope = f"{len(trials)} of {len(results.trials)} trials (those that learned)"
    section = Section("Search space", [
        f"All {len(results.axes)} varied axes at once, over {scope}."])
    columns = {"trial_id": trials["trial_id"], "status": trials["status"],
               "metric": trials[metric]}
    rows = [pd.DataFrame({**columns, "axis": title, "position": _unit(trials[metric]),
                          "label": trials[metric].map(lambda v: f"{v:.4f}")})]
    scores = []
    for axis in results.axes:
        raw = trials[axis.name]
        labels = raw.map(format_value)
        if axis.continuous:
            numeric = raw.astype(float)
            position = _unit(np.log10(numeric) if axis.log else numeric)
        else:
            order = {v: i for i, v in enumerate(axis.order)}
            position = labels.map(order) / max(1, len(axis.order) - 1)
        rows.append(pd.DataFrame({**columns, "axis": axis.name, "position": position,
                                  "label": labels}))
        if raw.notna().sum() > 1:
            share, groups = eta_squared(raw, trials[metric], axis.continuous)
            scores.append({"axis": axis.name, "eta2": share, "groups": groups})
    frame = pd.concat(rows[1:] + rows[:1]).dropna(subset=["position"])
    section.charts.append((
        parallel_coordinates(frame, [a.name for a in results.axes] + [title], title,
                             results.maximize),
        "Each line is a trial; each axis runs from its lowest value (bottom) to its highest "
        "(top), on a log scale where the spec samples it log-uniformly."))
    scores_frame = pd.DataFrame(scores, columns=["axis", "eta2", "groups"]).dropna()
    if len(scores_frame):
        section.charts.append((importance(scores_frame, title),
                               "η² (correlation ratio): the share of the variance of the "
                               f"{title} that the axis's value groups explain on their own; "
                               "sampled ranges are cut into 5 quantile groups. With few trials "
                               "per group it overstates importance."))
    return section


def asha_stops(frame: pd.DataFrame, rungs: list[int], max_t: int,
               label: str = "ASHA") -> alt.LayerChart:
    """Epochs each trial ran, coloured by status, with the ASHA rungs as dashed lines."""
    order = list(frame["trial"])
    bars = alt.Chart(frame).mark_bar().encode(
        y=alt.Y("trial:N", sort=order, title=None, axis=alt.Axis(labelLimit=300)),
        x=epoch_x(pd.Series([max_t]), "epochs_run").title("epochs trained").scale(
            domain=[0, max_t]),
        color=status_color(frame["status"]), tooltip=["trial:N", "status:N", "epochs_run:Q"])
    counts = bars.mark_text(align="left", dx=4, fontSize=10, color="#333").encode(
        text="epochs_run:Q", color=alt.value("#333"))
    lines = alt.Chart(pd.DataFrame({"rung": rungs})).mark_rule(
        strokeDash=[4, 3], color="#333").encode(x="rung:Q", tooltip=["rung:Q"])
    return (bars + counts + lines).properties(
        title=f"Where {label} stopped each trial (dashed: rungs)", width=WIDTH + 120,
        height=max(60, 18 * len(order)))


def asha_section(results: SweepResults) -> Section:
    spec = results.spec
    max_t = spec.max_t if spec else int(results.trials["epochs"].max())
    rungs = asha_rungs(results)
    frame = results.trials.copy()
    frame["trial"] = trial_labels(frame)
    frame = frame.sort_values(["epochs_run", "trial"], ascending=[False, True])
    causes = stop_causes(results)
    cut = len(causes["budget"])
    budget = (f"; {cut} {'was' if cut == 1 else 'were'} cut short between rungs by the time "
              f"budget" if cut else "")
    label = stopper(results)
    how = (" in brackets that start at different rungs" if label == "HyperBand" else "")
    return Section(f"Early stopping ({label})", [
        f"{len(causes['asha'])} of {len(frame)} trials were stopped by {label} at a "
        f"rung{budget}. {label} compares trials at the rungs (epochs "
        f"{', '.join(map(str, rungs)) or 'unknown'}){how} and keeps the best "
        f"1/{spec.scheduler.reduction_factor:g} of them going."
        if spec else "The scheduler is unknown (no spec.yaml)."],
        [(asha_stops(frame[["trial", "status", "epochs_run"]], rungs, max_t, label), "")])

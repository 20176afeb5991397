"""How a sweep report looks: its Altair charts, which ones a sweep gets, and the HTML page.

`fmnist_ray.report` reads and analyses the results; this module draws them. Chart builders
take tidy frames with NaN/inf rows already dropped (Vega cannot draw them); every chart colours
trial status the same way, so diverged or early-stopped runs stand out rather than vanish.
The page inlines the Vega runtime once and embeds each chart in its own element.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import altair as alt
import numpy as np
import pandas as pd

STATUSES = ("completed", "early_stopped", "diverged", "errored", "running", "pending",
            "interrupted")
STATUS_COLORS = ("#4c78a8", "#f58518", "#e45756", "#7f7f7f", "#72b7b2", "#bab0ac", "#b279a2")
WIDTH = 380
HEIGHT = 230
MAX_CURVES = 12  # more configurations than this make unreadable line charts: show the best


@dataclass
class Axis:
    """A setting the sweep varied, and how to show it."""

    name: str
    order: list[str]  # its value labels, numeric values ascending
    continuous: bool = False  # sampled from a range: a scatter, not one group per value
    log: bool = False


def format_value(value) -> str:
    """An axis value as a short label: 3 significant digits for floats, `none` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float | np.floating):
        return f"{float(value):.3g}"
    return str(value)


def epoch_x(epochs: pd.Series, field: str = "epoch") -> alt.X:
    """An epoch axis with whole-number ticks (Vega's tickMinStep alone still draws 1.5)."""
    last = int(epochs.max()) if epochs.notna().any() else 1
    ticks = list(range(0, last + 1)) if last <= 20 else None
    return alt.X(f"{field}:Q", title="epoch", axis=alt.Axis(values=ticks, format="d",
                                                            tickMinStep=1))


def _scale() -> alt.Scale:
    return alt.Scale(zero=False, padding=8)  # padding keeps dots at the extremes inside


def status_color(present: pd.Series) -> alt.Color:
    """Trial status in the same colour everywhere; the legend lists the statuses present."""
    colors = dict(zip(STATUSES, STATUS_COLORS, strict=True))
    shown = [s for s in STATUSES if s in set(present)]
    shown += sorted(set(present) - set(shown))
    return alt.Color("status:N", title="status", scale=alt.Scale(
        domain=shown, range=[colors.get(s, "#bbbbbb") for s in shown]))


def _config_color(order: list[str], title: str) -> alt.Color:
    scheme = "tableau10" if len(order) <= 10 else "category20"
    return alt.Color("config:N", title=title, sort=order,
                     scale=alt.Scale(domain=order, scheme=scheme),
                     legend=alt.Legend(labelLimit=320, symbolLimit=40, symbolOpacity=1,
                                       symbolType="stroke", symbolStrokeWidth=3))


def curves(frame: pd.DataFrame, y: str, title: str, y_title: str, order: list[str],
           legend_title: str) -> alt.LayerChart:
    """One line per configuration over epochs: the mean over seeds, with a min..max band."""
    stats = (frame.groupby(["config", "epoch"], observed=True)[y]
             .agg(["mean", "min", "max"]).reset_index())
    base = alt.Chart(stats).encode(
        x=epoch_x(stats["epoch"]),
        color=_config_color(order, legend_title))
    band = base.mark_area(opacity=0.18).encode(y=alt.Y("min:Q", title=y_title,
                                                         scale=_scale()),
                                                y2="max:Q")
    line = base.mark_line(point=True).encode(
        y="mean:Q", tooltip=["config:N", "epoch:Q", alt.Tooltip("mean:Q", format=".4f"),
                             alt.Tooltip("min:Q", format=".4f"),
                             alt.Tooltip("max:Q", format=".4f")])
    return (band + line).properties(title=title, width=WIDTH, height=HEIGHT)


def _per_value_panel(frame: pd.DataFrame, axis: str, y: str, y_title: str, order: list[str],
                     continuous: bool, log: bool) -> alt.LayerChart:
    data = frame[["value", "trial_id", "status", y]].dropna(subset=[y])
    tooltip = ["trial_id:N", "status:N", alt.Tooltip("value:N", title=axis),
               alt.Tooltip(f"{y}:Q", format=".4f")]
    if continuous:
        scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
        x = alt.X("value:Q", title=axis, scale=scale)
        return (alt.Chart(data).mark_circle(size=70, opacity=0.85)
                .encode(x=x, y=alt.Y(f"{y}:Q", title=y_title, scale=_scale()),
                        color=status_color(data["status"]), tooltip=tooltip)
                .properties(width=WIDTH, height=HEIGHT))
    x = alt.X("value:N", title=axis, sort=order, axis=alt.Axis(labelAngle=0, labelLimit=160))
    stats = (data.groupby("value", observed=True)[y].agg(["mean", "min", "max", "count"])
             .reset_index())
    spread = alt.Chart(stats).mark_rule(strokeWidth=2, color="#555").encode(
        x=x, y=alt.Y("min:Q", title=y_title, scale=_scale()), y2="max:Q")
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


def train_vs_val(frame: pd.DataFrame, order: list[str]) -> alt.FacetChart:
    """Training and validation loss over epochs, one small panel per configuration."""
    stats = (frame.groupby(["config", "split", "epoch"], observed=True)["loss"].mean()
             .reset_index())
    columns = min(4, max(1, len(order)))
    width = max(180, int(4 * WIDTH / 2 / columns))
    return (alt.Chart(stats).mark_line(point=True)
            .encode(x=epoch_x(stats["epoch"]),
                    y=alt.Y("loss:Q", title="loss (mean over seeds)",
                            scale=_scale()),
                    color=alt.Color("split:N", title="",
                                    scale=alt.Scale(domain=["train", "validation"],
                                                    range=["#9ecae9", "#d62728"])),
                    tooltip=["config:N", "split:N", "epoch:Q",
                             alt.Tooltip("loss:Q", format=".4f")])
            .properties(width=width, height=150)
            .facet(facet=alt.Facet("config:N", title=None, sort=order,
                                   header=alt.Header(labelLimit=260)), columns=columns)
            .properties(title="Training vs validation loss"))


def epoch_markers(frame: pd.DataFrame) -> alt.LayerChart:
    """Per trial: the best-validation epoch, the epoch of lowest validation loss, the last one.

    `frame` has columns trial (label), status, best_epoch, turn_epoch, last_epoch.
    """
    long = frame.melt(id_vars=["trial", "status"],
                      value_vars=["best_epoch", "turn_epoch", "last_epoch"],
                      var_name="marker", value_name="epoch").dropna(subset=["epoch"])
    names = {"best_epoch": "best validation epoch (weights tested)",
             "turn_epoch": "lowest validation loss (turns upward after)",
             "last_epoch": "last epoch trained"}
    long["marker"] = long["marker"].map(names)
    order = list(frame["trial"])
    y = alt.Y("trial:N", sort=order, title=None, axis=alt.Axis(labelLimit=300))
    span = alt.Chart(frame).mark_rule(color="#bbb", strokeWidth=2).encode(
        y=y, x=epoch_x(frame["last_epoch"], "best_epoch"),
        x2="last_epoch:Q")
    legend = alt.Legend(labelLimit=320, orient="bottom", direction="vertical")
    marks = alt.Chart(long).mark_point(size=80, filled=True, opacity=0.95).encode(
        y=y, x="epoch:Q", yOffset=alt.YOffset("marker:N", sort=list(names.values())),
        shape=alt.Shape("marker:N", title=None, legend=legend, scale=alt.Scale(
            domain=list(names.values()), range=["circle", "diamond", "square"])),
        color=alt.Color("marker:N", title=None, legend=legend, scale=alt.Scale(
            domain=list(names.values()), range=["#2ca02c", "#d62728", "#555555"])),
        tooltip=["trial:N", "status:N", "marker:N", "epoch:Q"])
    return (span + marks).properties(title="Best epoch vs last epoch", width=WIDTH + 120,
                                     height=max(60, 24 * len(order)))


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


def asha_stops(frame: pd.DataFrame, rungs: list[int], max_t: int) -> alt.LayerChart:
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
        title="Where ASHA stopped each trial (dashed: rungs)", width=WIDTH + 120,
        height=max(60, 18 * len(order)))


def best_trial_curves(frame: pd.DataFrame, title: str) -> alt.HConcatChart:
    """Loss and accuracy of one trial over epochs, train and validation; `frame` is long."""
    color = alt.Color("split:N", title="", scale=alt.Scale(domain=["train", "validation"],
                                                          range=["#9ecae9", "#d62728"]))
    panels = []
    for measure in ("loss", "accuracy"):
        panels.append(alt.Chart(frame.dropna(subset=[measure])).mark_line(point=True).encode(
            x=epoch_x(frame["epoch"]),
            y=alt.Y(f"{measure}:Q", scale=_scale()), color=color,
            tooltip=["split:N", "epoch:Q", alt.Tooltip(f"{measure}:Q", format=".4f")],
        ).properties(width=WIDTH - 40, height=HEIGHT - 30))
    return alt.hconcat(*panels).properties(title=title)


def confusion(matrix: list[list[int]], class_names: tuple[str, ...]) -> alt.HConcatChart:
    """The test confusion matrix as a heatmap (rows = true class) and per-class accuracy."""
    cells = pd.DataFrame([{"true": class_names[i], "predicted": class_names[j], "count": n}
                          for i, row in enumerate(matrix) for j, n in enumerate(row)])
    totals = cells.groupby("true", sort=False)["count"].transform("sum").clip(lower=1)
    cells["share"] = cells["count"] / totals
    names = list(class_names)
    heat = alt.Chart(cells).encode(
        x=alt.X("predicted:N", sort=names, axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("true:N", sort=names, title="true class"))
    grid = heat.mark_rect().encode(
        color=alt.Color("share:Q", title="share of true class",
                        scale=alt.Scale(scheme="blues", domain=[0, 1])),
        tooltip=["true:N", "predicted:N", "count:Q", alt.Tooltip("share:Q", format=".1%")])
    text = heat.mark_text(fontSize=9).encode(
        text="count:Q",
        color=alt.condition(alt.datum.share > 0.5, alt.value("white"), alt.value("#222")))
    per_class = pd.DataFrame({"class": names, "accuracy": [
        row[i] / max(1, sum(row)) for i, row in enumerate(matrix)]})
    bars = alt.Chart(per_class).mark_bar(color="#4c78a8").encode(
        y=alt.Y("class:N", sort=names, title=None),
        x=alt.X("accuracy:Q", title="test accuracy of the class", scale=alt.Scale(domain=[0, 1])),
        tooltip=["class:N", alt.Tooltip("accuracy:Q", format=".3f")])
    labels = bars.mark_text(align="left", dx=3, fontSize=10).encode(
        text=alt.Text("accuracy:Q", format=".3f"))
    return alt.hconcat(
        (grid + text).properties(title="Test confusion matrix", width=340, height=340),
        (bars + labels).properties(title="Per-class test accuracy", width=260, height=340))


# ---- which charts a sweep gets, from its results --------------------------------------------

@dataclass
class Section:
    """A heading, sentences under it, and its charts with a caption each."""

    title: str
    notes: list[str] = field(default_factory=list)
    charts: list[tuple[alt.TopLevelMixin, str]] = field(default_factory=list)
    html: str = ""  # extra markup after the charts (the trial table)


def _trial_labels(trials: pd.DataFrame) -> pd.Series:
    seeds = trials["seed"].nunique() > 1
    label = trials["trial_id"] + " · " + trials["config"]
    return label + (" · seed " + trials["seed"].map(format_value) if seeds else "")


def _not_drawn(results, column: str) -> str:
    """A caption naming trials whose `column` is NaN/inf at some epoch: lines cannot show it."""
    epochs, trials = results.epochs, results.trials
    finite = set(epochs.loc[epochs[column].notna(), "trial_id"])
    gaps = set(epochs.loc[epochs[column].isna(), "trial_id"])
    status = dict(zip(trials["trial_id"], trials["status"], strict=True))
    absent = [t for t in trials["trial_id"] if t not in finite]
    partial = [t for t in trials["trial_id"] if t in finite and t in gaps]
    return "".join(f" {what}: " + ", ".join(f"{t} ({status[t]})" for t in ids) + "."
                   for what, ids in (("Not drawn (no finite epochs)", absent),
                                     ("NaN/inf epochs left out", partial)) if ids)


def _chart_axes(results) -> list[Axis]:
    """The varied axes, or the single pseudo-axis `configuration` when nothing was varied."""
    return results.axes or [Axis("config", results.configs)]


def _in_config_order(frame: pd.DataFrame, configs: list[str], then: str) -> pd.DataFrame:
    rank = frame["config"].map({c: i for i, c in enumerate(configs)})
    return frame.assign(_rank=rank).sort_values(["_rank", then]).drop(columns="_rank")


def _curve_sections(results, top: list[str]) -> list[Section]:
    trials, epochs = results.trials, results.epochs
    tagged = epochs.merge(trials[["trial_id", "config", "status"]], on="trial_id")
    tagged = tagged[tagged["config"].isin(top)]
    legend = results.axes[0].name if len(results.axes) == 1 else "configuration"
    limited = (f" Showing the {len(top)} best of {len(results.configs)} configurations."
               if len(top) < len(results.configs) else "")
    spread = " Line: mean over seeds; band: min to max over seeds."
    learning = Section("Learning curves", [f"Validation metrics after every epoch.{limited}"])
    for column, title in (("val_accuracy", "Validation accuracy"), ("val_loss", "Validation loss")):
        frame = tagged.dropna(subset=[column])
        if len(frame):
            learning.charts.append((curves(frame, column, title, title.lower(), top, legend),
                                    spread + _not_drawn(results, column)))
    overfit = Section("Overfitting")
    losses = tagged.dropna(subset=["train_loss", "val_loss"])
    if len(losses):
        long = losses.melt(id_vars=["trial_id", "config", "epoch"],
                           value_vars=["train_loss", "val_loss"], var_name="split",
                           value_name="loss")
        long["split"] = long["split"].map({"train_loss": "train", "val_loss": "validation"})
        overfit.charts.append((train_vs_val(long, top),
                               "Training loss is averaged over each epoch's batches (dropout "
                               "on); validation loss is measured after the epoch."))
        gaps = losses.assign(gap=losses["val_loss"] - losses["train_loss"])
        overfit.charts.append((curves(gaps, "gap", "Generalisation gap over epochs",
                                      "validation loss − training loss", top, legend),
                               "Above zero and growing: the model fits the training set better "
                               "than unseen images." + spread + _not_drawn(results, "val_loss")))
    return [learning, overfit]


def _epoch_marker_chart(results, per_trial: pd.DataFrame) -> tuple[alt.TopLevelMixin, str]:
    frame = per_trial.merge(results.trials[["trial_id", "seed"]], on="trial_id")
    frame["trial"] = _trial_labels(frame)
    frame = _in_config_order(frame, results.configs, "trial")
    caption = ("Green: the epoch whose weights were tested; red: lowest validation loss; "
               "grey: last epoch trained. A long green-to-grey span means training went on "
               "past its best.")
    return epoch_markers(frame[["trial", "status", "best_epoch", "turn_epoch",
                                "last_epoch"]]), caption


def _per_axis_sections(results) -> list[Section]:
    trials = results.trials.copy()
    seconds = results.epochs.groupby("trial_id")["epoch_seconds"].mean()
    trials["epoch_seconds"] = trials["trial_id"].map(seconds)
    trials["epoch_seconds"] = trials["epoch_seconds"].fillna(
        trials["seconds"] / trials["epochs_run"].where(trials["epochs_run"] > 0))
    tests = Section("Test results per setting",
                    ["Test metrics of each trial's best-validation weights. Tick: mean; "
                     "line: min to max; dots: trials, coloured by status."])
    cost = Section("Cost", ["Training time per epoch (evaluation excluded) and training "
                            "throughput, per trial."])
    for axis in _chart_axes(results):
        name = "configuration" if axis.name == "config" else axis.name
        frame = trials.assign(value=trials[axis.name] if axis.continuous
                              else trials[axis.name].map(format_value))
        kind = dict(order=axis.order, continuous=axis.continuous, log=axis.log)
        untested = frame[frame["test_accuracy"].isna()]
        missing = (" No test result: " + ", ".join(
            f"{t} ({s})" for t, s in zip(untested["trial_id"], untested["status"],
                                         strict=True)) + ".") if len(untested) else ""
        chart = per_value(frame, name, [("test_accuracy", "test accuracy"),
                                        ("test_loss", "test loss")],
                          title=f"Test accuracy and loss by {name}", **kind)
        if chart is not None:
            tests.charts.append((chart, missing.strip()))
        chart = per_value(frame, name, [("epoch_seconds", "seconds per epoch (training)"),
                                        ("images_per_second", "training images per second")],
                          title=f"Cost by {name}", **kind)
        if chart is not None:
            cost.charts.append((chart, ""))
    return [s if s.charts else Section(s.title) for s in (tests, cost)]


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


def _search_section(results) -> Section:
    """Parallel coordinates and parameter importance, for sweeps that vary two or more axes."""
    metric, title = results.metric, results.metric.replace("best_val_", "best validation ")
    trials = results.trials.dropna(subset=[metric])
    section = Section("Search space", [
        f"All {len(results.axes)} varied axes at once; {len(trials)} of {len(results.trials)} "
        f"trials have a {title}."])
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


def _asha_section(results) -> Section:
    spec = results.spec
    max_t = spec.max_t if spec else int(results.trials["epochs"].max())
    rungs, rung = [], spec.scheduler.grace_period if spec else 1
    while spec and rung <= max_t:
        rungs.append(round(rung))
        rung *= spec.scheduler.reduction_factor
    frame = results.trials.copy()
    frame["trial"] = _trial_labels(frame)
    frame = frame.sort_values(["epochs_run", "trial"], ascending=[False, True])
    counts = frame["status"].value_counts()
    return Section("Early stopping (ASHA)", [
        f"{counts.get('early_stopped', 0)} of {len(frame)} trials were stopped early; ASHA "
        f"compares trials at the rungs (epochs {', '.join(map(str, rungs)) or 'unknown'}) and "
        f"keeps the best 1/{spec.scheduler.reduction_factor:g} of them going."
        if spec else "The scheduler is unknown (no spec.yaml)."],
        [(asha_stops(frame[["trial", "status", "epochs_run"]], rungs, max_t), "")])


def _best_section(results, best: pd.Series | None, class_names) -> Section:
    if best is None:
        return Section("Best trial", ["No trial has test results yet."])
    keys = ["model", "hidden_sizes" if best["model"] == "mlp" else "width", "dropout",
            "optimizer", "lr", "batch_size", "weight_decay", "seed"]
    settings = ", ".join(f"{k} {format_value(best[k])}" for k in keys if best[k] is not None)
    params = f"{best['params']:,.0f}" if pd.notna(best["params"]) else "unknown"
    section = Section("Best trial", [
        f"Trial {best['trial_id']} ({best['status']}), chosen by "
        f"{results.metric.replace('best_val_', 'best validation ')}: {settings}.",
        f"{params} parameters; test accuracy {best['test_accuracy']:.4f}, test loss "
        f"{best['test_loss']:.4f} with the weights of epoch {format_value(best['best_epoch'])} "
        f"of {format_value(best['epochs_run'])}."])
    history = results.epochs[results.epochs["trial_id"] == best["trial_id"]]
    if len(history):
        long = pd.concat([
            pd.DataFrame({"epoch": history["epoch"], "split": split,
                          "loss": history[f"{prefix}_loss"],
                          "accuracy": history[f"{prefix}_accuracy"]})
            for prefix, split in (("train", "train"), ("val", "validation"))])
        section.charts.append((best_trial_curves(long, f"Trial {best['trial_id']} over epochs"),
                               ""))
    matrix = json.loads(best["test_confusion"]) if best["test_confusion"] else None
    if matrix:
        section.charts.append((confusion(matrix, tuple(class_names)),
                               "Rows: true class; numbers: test images."))
    else:
        section.notes.append("No test confusion matrix was stored for this trial.")
    return section


def _trial_table(results, per_trial: pd.DataFrame, best: pd.Series | None) -> str:
    """Every trial, whatever its status, with the error of those that failed."""
    gaps = per_trial.set_index("trial_id")["gap"]
    axes = [a.name for a in results.axes]
    head = ["trial", "status", *axes, "seed", "epochs", "best epoch", "best val acc",
            "last gap", "test acc", "test loss", "params", "seconds", "error"]
    trials = _in_config_order(results.trials, results.configs, "seed")
    body = []
    for _, t in trials.iterrows():
        star = best is not None and t["trial_id"] == best["trial_id"]
        cells = [t["trial_id"] + (" ★" if star else ""),
                 f'<span class="status {re.sub(r"[^a-z_]", "", t["status"])}">'
                 f'{html.escape(t["status"].replace("_", "-"))}</span>',
                 *[format_value(t[a]) for a in axes], format_value(t["seed"]),
                 f"{format_value(t['epochs_run'])}/{format_value(t['epochs'])}",
                 _num(t["best_epoch"], ".0f"), _num(t["best_val_accuracy"], ".4f"),
                 _num(gaps.get(t["trial_id"]), ".3f"), _num(t["test_accuracy"], ".4f"),
                 _num(t["test_loss"], ".4f"), _num(t["params"], ",.0f"),
                 _num(t["seconds"], ".1f")]
        cells = [c if i == 1 else html.escape(c) for i, c in enumerate(cells)]
        error = t["error"] if isinstance(t["error"], str) else ""
        cells.append(f'<span class="error" title="{html.escape(error)}">'
                     f"{html.escape(error[:160])}</span>")
        row = "".join(f"<td>{c}</td>" for c in cells)
        body.append(f'<tr class="{"best" if star else ""}">{row}</tr>')
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (f'<div class="table"><table><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _num(value, spec: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, spec)


def sweep_sections(results, per_trial: pd.DataFrame, best: pd.Series | None,
                   class_names) -> list[Section]:
    """The report's sections, in reading order; a section with nothing to show is left out."""
    if results.trials.empty:
        return [Section("All trials", ["No trial has been exported yet."])]
    tests, cost = _per_axis_sections(results)
    top = results.configs
    if len(top) > MAX_CURVES:
        ranked = results.trials.groupby("config")[results.metric].mean()
        ranked = ranked.sort_values(ascending=not results.maximize).dropna()
        top = [c for c in results.configs if c in set(ranked.index[:MAX_CURVES])]
    learning, overfit = (_curve_sections(results, top) if len(results.epochs)
                         else (Section("Learning curves"), Section("Overfitting")))
    if not len(results.epochs):
        learning.notes.append("No epoch history (epochs.parquet is missing or empty).")
    if len(per_trial):
        overfit.charts.append(_epoch_marker_chart(results, per_trial))
    sections = [tests, learning, overfit]
    if len(results.axes) >= 2:
        sections.append(_search_section(results))
    asha = results.spec is not None and results.spec.scheduler.type == "asha"
    if asha or (results.trials["status"] == "early_stopped").any():
        sections.append(_asha_section(results))
    sections += [cost, _best_section(results, best, class_names)]
    table = Section("All trials", ["Every trial, failed and diverged ones included; ★ marks "
                                   "the best. Last gap: validation minus training loss at the "
                                   "last epoch."])
    table.html = _trial_table(results, per_trial, best)
    return [s for s in sections if s.charts or s.notes] + [table]


# ---- the HTML page, with the Vega runtime inlined once -------------------------------------

EMBED_OPTIONS = {"renderer": "svg",
                 "actions": {"export": True, "source": False, "compiled": False, "editor": False}}
STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0 auto; max-width: 1360px; padding: 24px 32px 64px; }
h1 { margin: 0 0 4px; font-size: 28px; } h2 { margin: 36px 0 8px; border-bottom: 1px solid #ddd;
     padding-bottom: 4px; } .meta { color: #666; font-size: 13px; margin: 0; }
nav { font-size: 13px; margin: 10px 0 0; } nav a { margin-right: 14px; color: #1f5fa8; }
.summary { background: #f6f8fb; border: 1px solid #dde3ec; border-radius: 6px;
           padding: 10px 24px; } .summary li { margin: 4px 0; }
.missing { background: #fff6e5; border: 1px solid #f0d199; border-radius: 6px;
           padding: 8px 24px; }
.charts { display: flex; flex-wrap: wrap; gap: 18px 28px; }
figure { margin: 8px 0; } figcaption { color: #555; font-size: 13px; max-width: 860px; }
.table { overflow-x: auto; } table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 9px; border-bottom: 1px solid #e4e4e4; text-align: right;
         white-space: nowrap; } th { background: #f2f2f2; position: sticky; top: 0; }
td:first-child, th:first-child, td:last-child, th:last-child { text-align: left; }
tr.best td { background: #eef6e9; }
table.index td, table.index th { white-space: normal; text-align: left; vertical-align: top; }
table.index td.num { text-align: right; white-space: nowrap; }
.status { padding: 1px 7px; border-radius: 9px; color: #fff; font-size: 12px; }
.error { color: #a33; white-space: normal; display: inline-block; max-width: 420px;
         text-align: left; }
"""
STATUS_STYLE = "".join(f".status.{s} {{ background: {c}; }}\n"
                       for s, c in zip(STATUSES, STATUS_COLORS, strict=True))
# Written into the page before the Vega runtime: it records script errors and Vega's console
# warnings in #render-problems, and each chart that renders adds a `.chart-rendered` marker to
# #render-status, so a headless browser's DOM dump shows whether every chart drew.
CAPTURE_JS = """
(function () {
  function record(kind, parts) {
    var item = document.createElement("li");
    item.textContent = kind + ": " + Array.prototype.map.call(parts, function (p) {
      return (p && p.stack) || String(p); }).join(" ");
    document.getElementById("render-problems").appendChild(item);
  }
  ["error", "warn"].forEach(function (kind) {
    var original = console[kind];
    console[kind] = function () { record(kind, arguments); original.apply(console, arguments); };
  });
  window.addEventListener("error", function (e) { record("error", [e.message]); });
  window.addEventListener("unhandledrejection", function (e) { record("error", [e.reason]); });
})();
"""
EMBED_JS = """
(function () {
  var specs = JSON.parse(document.getElementById("chart-specs").textContent);
  var options = JSON.parse(document.getElementById("embed-options").textContent);
  var status = document.getElementById("render-status");
  Promise.all(specs.map(function (spec, i) {
    return vegaEmbed("#chart-" + i, spec, options).then(function () {
      var mark = document.createElement("span");
      mark.className = "chart-rendered";
      mark.setAttribute("data-chart", String(i));
      status.appendChild(mark);
    }).catch(function (err) { console.error("chart " + i + ": " + err); });
  })).then(function () { status.setAttribute("data-done", "true"); });
})();
"""


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script, for the Vega-Lite version Altair writes."""
    import vl_convert

    version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # "v6.4.1" -> "v6_4"
    return vl_convert.javascript_bundle(vl_version=version)


def _script_json(value) -> str:
    """JSON safe inside <script>: strict (no NaN/Infinity) and with `</` escaped."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def _head(title: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}{STATUS_STYLE}</style>\n"
            f"</head>\n")


def render_page(results, summary: list[str], per_trial: pd.DataFrame,
                best: pd.Series | None, class_names, index: str | None = None) -> str:
    """One sweep's self-contained page: header, summary, what is missing, charts, trials."""
    sections = sweep_sections(results, per_trial, best, class_names)
    specs, parts = [], []
    for section in sections:
        anchor = re.sub(r"[^a-z0-9]+", "-", section.title.lower()).strip("-")
        parts.append(f'<h2 id="{anchor}">{html.escape(section.title)}</h2>')
        parts += [f"<p>{html.escape(n)}</p>" for n in section.notes]
        figures = []
        for chart, caption in section.charts:
            with alt.data_transformers.disable_max_rows():
                specs.append(chart.to_dict())
            text = f"<figcaption>{html.escape(caption.strip())}</figcaption>" if caption else ""
            figures.append(f'<figure><div class="chart" id="chart-{len(specs) - 1}"></div>'
                           f"{text}</figure>")
        if figures:
            parts.append(f'<div class="charts">{"".join(figures)}</div>')
        parts.append(section.html)
    spec = results.spec
    about = [f"results: {results.uri}"]
    if spec is not None:
        about += [f"search: {spec.search}", f"scheduler: {spec.scheduler.type}",
                  f"metric: {spec.metric}", f"seeds: {spec.seeds}"]
    about.append("written " + datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    nav = "".join(f'<a href="#{re.sub(r"[^a-z0-9]+", "-", s.title.lower()).strip("-")}">'
                  f"{html.escape(s.title)}</a>" for s in sections)
    if index:
        nav = f'<a href="{html.escape(index)}">← all sweeps</a>' + nav
    missing = ("".join(f"<li>{html.escape(m)}</li>" for m in results.missing)
               or "<li>Nothing: every planned trial is exported with its epochs.</li>")
    return (_head(f"Sweep {results.name}") + "<body>\n"
            f'<div id="render-status" data-expected="{len(specs)}" data-done="false" hidden>'
            f'</div>\n<ul id="render-problems" hidden></ul>\n<script>{CAPTURE_JS}</script>\n'
            f"<h1>Sweep {html.escape(results.name)}</h1>\n"
            + (f"<p>{html.escape(spec.description)}</p>\n" if spec and spec.description else "")
            + f'<p class="meta">{html.escape(" · ".join(about))}</p>\n<nav>{nav}</nav>\n'
            '<h2 id="summary">Summary</h2>\n<ul class="summary">'
            + "".join(f"<li>{html.escape(line)}</li>" for line in summary) + "</ul>\n"
            f'<h3>What is missing</h3>\n<ul class="missing">{missing}</ul>\n'
            + "\n".join(parts) + "\n<noscript>The charts need JavaScript.</noscript>\n"
            f'<script type="application/json" id="chart-specs">{_script_json(specs)}</script>\n'
            f'<script type="application/json" id="embed-options">{_script_json(EMBED_OPTIONS)}'
            f"</script>\n<script>{vega_bundle()}</script>\n<script>{EMBED_JS}</script>\n"
            "</body>\n</html>\n")


def render_index(rows: list[dict], reference: dict) -> str:
    """The index page of a multi-sweep report: one row per sweep, linking its page."""
    head = ("sweep", "description", "trials", "best configuration", "mean test acc",
            "vs reference", "gaps")
    body = []
    for r in rows:
        acc = r["test_accuracy"]
        delta = "" if pd.isna(acc) else f"{(acc - reference['test_accuracy']) * 100:+.1f} pts"
        cells = [f'<a href="{html.escape(r["page"])}">{html.escape(r["name"])}</a><br>'
                 f'<span class="meta">{html.escape(r["uri"])}</span>',
                 html.escape(r["description"]), html.escape(r["statuses"]),
                 html.escape(r["best"])]
        numbers = [_num(acc, ".4f"), delta, str(r["missing"])]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                    + "".join(f'<td class="num">{n}</td>' for n in numbers) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (_head("Fashion-MNIST sweeps") + "<body>\n<h1>Fashion-MNIST sweeps</h1>\n"
            f'<p class="meta">{len(rows)} sweeps · reference: {html.escape(reference["model"])},'
            f' test accuracy {reference["test_accuracy"]}, test loss {reference["test_loss"]} · '
            f"written {written}</p>\n"
            f'<div class="table"><table class="index"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>\n</body>\n</html>\n')

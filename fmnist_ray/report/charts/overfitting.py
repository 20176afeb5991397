"""Overfitting charts: training vs validation loss, the gap over epochs, best vs last epoch."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fmnist_ray.report.charts.common import (
    WIDTH,
    Section,
    epoch_x,
    in_config_order,
    not_drawn_caption,
    ordered_axis,
    padded_scale,
    trial_labels,
)
from fmnist_ray.report.charts.curves import (
    curve_legend,
    curves,
    failed_caption,
    spread_caption,
    tagged_epochs,
)
from fmnist_ray.report.load import SweepResults


def train_vs_val(frame: pd.DataFrame, order: list[str], y_title: str) -> alt.FacetChart:
    """Training and validation loss over epochs, one small panel per configuration."""
    stats = (frame.groupby(["config", "split", "epoch"], observed=True)["loss"].mean()
             .reset_index())
    splits = sorted(stats["split"].unique(), key=lambda s: s == "validation")
    order = [c for c in order if c in set(stats["config"])]
    # 3 or 4 panels a row, whichever leaves fewer empty cells in the last row
    columns = min(4, max(1, len(order))) if len(order) <= 4 else min(
        (4, 3), key=lambda c: (-len(order) % c, -c))
    width = max(180, int(4 * WIDTH / 2 / columns))
    return (alt.Chart(stats).mark_line(point=True)
            .encode(x=epoch_x(stats["epoch"]),
                    y=alt.Y("loss:Q", title=y_title, scale=padded_scale()),
                    color=alt.Color("split:N", title="",
                                    scale=alt.Scale(domain=splits,
                                                    range=["#1f77b4", "#d62728"])),
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
    drawn = [n for n in names.values() if n in set(long["marker"])]  # the legend lists these
    style = {names["best_epoch"]: ("circle", "#2ca02c", 110, 2),  # shape, colour, size, z
             names["turn_epoch"]: ("diamond", "#d62728", 55, 3),
             names["last_epoch"]: ("square", "#555555", 240, 1)}
    long["px"] = long["marker"].map({n: v[2] for n, v in style.items()})  # area, unscaled
    long["z"] = long["marker"].map({n: v[3] for n, v in style.items()})
    order = list(frame["trial"])
    y = alt.Y("trial:N", sort=order, title=None, axis=alt.Axis(labelLimit=300))
    span = alt.Chart(frame).mark_rule(color="#bbb", strokeWidth=2).encode(
        y=y, x=epoch_x(frame["last_epoch"], "best_epoch"),
        x2="last_epoch:Q")
    legend = alt.Legend(labelLimit=320, orient="bottom", direction="vertical")

    def channel(kind, i: int):
        return kind("marker:N", title=None, legend=legend, scale=alt.Scale(
            domain=drawn, range=[style[n][i] for n in drawn]))

    # Every marker on its trial's row, over the span; markers on the same epoch nest, the
    # largest (last epoch) at the bottom and the smallest (lowest loss) on top, by `z`.
    marks = alt.Chart(long).mark_point(filled=True, opacity=0.95).encode(
        y=y, x="epoch:Q", shape=channel(alt.Shape, 0), color=channel(alt.Color, 1),
        size=alt.Size("px:Q", scale=None), order=alt.Order("z:Q"),
        tooltip=["trial:N", "status:N", "marker:N", "epoch:Q"])
    return (span + marks).properties(title="Best epoch vs last epoch", width=WIDTH + 120,
                                     height=max(60, 24 * len(order)))


def _epoch_marker_chart(results: SweepResults,
                        per_trial: pd.DataFrame) -> tuple[alt.TopLevelMixin, str]:
    frame = per_trial.merge(results.trials[["trial_id", "seed"]], on="trial_id")
    frame["trial"] = trial_labels(frame)
    frame = in_config_order(frame, results.configs, "trial")
    caption = ("Green: the epoch whose weights were tested; red: lowest validation loss; "
               "grey: last epoch trained (markers on the same epoch nest). A long "
               "green-to-grey span means training went on past its best.")
    return epoch_markers(frame[["trial", "status", "best_epoch", "turn_epoch",
                                "last_epoch"]]), caption


def overfitting_section(results: SweepResults, top: list[str],
                        per_trial: pd.DataFrame) -> Section:
    """Loss curves and gap over epochs for the `top` configurations; epoch markers per trial.

    Training loss is the eval-mode loss on training images where the sweep measured it (like
    for like with validation), else the running loss of the epoch's batches, said so. The
    markers (best, lowest validation loss, last epoch) cover every trial in `per_trial`.
    """
    overfit = Section("Overfitting")
    tagged = tagged_epochs(results, top) if len(results.epochs) else pd.DataFrame()
    like = len(tagged) and tagged["train_eval_loss"].notna().all()
    train_column = "train_eval_loss" if like else "train_loss"
    losses = tagged.dropna(subset=[train_column, "val_loss"]) if len(tagged) else tagged
    if len(losses):
        split = "train (eval mode)" if like else "train (running)"
        long = losses.melt(id_vars=["trial_id", "config", "epoch"],
                           value_vars=[train_column, "val_loss"], var_name="split",
                           value_name="loss")
        long["split"] = long["split"].map({train_column: split, "val_loss": "validation"})
        seeds = "mean over seeds" if "Line: mean" in spread_caption(results) else "per trial"
        how = ("Training loss: 6,000 training images measured after each epoch in eval mode, "
               "like validation (dropout off)." if like else
               "Training loss: the running mean of each epoch's batches, in training mode "
               "(dropout on): not like for like with validation, which this sweep measured "
               "in eval mode only.")
        overfit.charts.append((train_vs_val(long, top, f"loss ({seeds})"),
                               how + failed_caption(results)))
        gaps = losses.assign(gap=losses["val_loss"] - losses[train_column])
        overfit.charts.append((curves(gaps, "gap", "Generalisation gap over epochs",
                                      "validation loss − training loss", top,
                                      curve_legend(results), ordered_axis(results)),
                               "Above zero and growing: the model fits the training images "
                               "better than unseen ones." + spread_caption(results)
                               + failed_caption(results)
                               + not_drawn_caption(results, "val_loss")))
    if len(per_trial):
        overfit.charts.append(_epoch_marker_chart(results, per_trial))
    return overfit

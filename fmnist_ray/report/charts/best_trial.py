"""The best trial's section: its settings, its curves over epochs, its confusion matrix."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd

from fmnist_ray.report.charts.common import HEIGHT, WIDTH, Section, epoch_x, padded_scale
from fmnist_ray.report.formatting import format_value
from fmnist_ray.report.load import SweepResults


def best_trial_curves(frame: pd.DataFrame, title: str) -> alt.HConcatChart:
    """Loss and accuracy of one trial over epochs, train and validation; `frame` is long."""
    splits = sorted(frame["split"].unique(), key=lambda s: s == "validation")
    color = alt.Color("split:N", title="", scale=alt.Scale(domain=splits,
                                                          range=["#1f77b4", "#d62728"]))
    panels = []
    for measure in ("loss", "accuracy"):
        panels.append(alt.Chart(frame.dropna(subset=[measure])).mark_line(point=True).encode(
            x=epoch_x(frame["epoch"]),
            y=alt.Y(f"{measure}:Q", scale=padded_scale()), color=color,
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


def best_trial_section(results: SweepResults, best: pd.Series | None,
                       class_names) -> Section:
    if best is None:
        return Section("Best trial", ["No trial learned, so none is chosen."])
    keys = ["model", "hidden_sizes" if best["model"] == "mlp" else "width", "dropout",
            "optimizer", "lr", "batch_size", "weight_decay", "seed"]
    settings = ", ".join(f"{k} {format_value(best[k])}" for k in keys if best[k] is not None)
    params = f"{best['params']:,.0f}" if pd.notna(best["params"]) else "unknown"
    metric = results.metric.replace("best_val_", "validation ")
    section = Section("Best trial", [
        f"Trial {best['trial_id']} ({best['status']}): the best {metric} within the chosen "
        f"configuration; {settings}.",
        f"{params} parameters; test accuracy {best['test_accuracy']:.4f}, test loss "
        f"{best['test_loss']:.4f} with the weights of epoch {format_value(best['best_epoch'])} "
        f"of {format_value(best['epochs_run'])}."])
    history = results.epochs[results.epochs["trial_id"] == best["trial_id"]]
    if len(history):
        like = history["train_eval_loss"].notna().all()
        train = ("train_eval", "train (eval mode)") if like else ("train", "train (running)")
        long = pd.concat([
            pd.DataFrame({"epoch": history["epoch"], "split": split,
                          "loss": history[f"{prefix}_loss"],
                          "accuracy": history[f"{prefix}_accuracy"]})
            for prefix, split in (train, ("val", "validation"))])
        section.charts.append((best_trial_curves(long, f"Trial {best['trial_id']} over epochs"),
                               ""))
    matrix = json.loads(best["test_confusion"]) if best["test_confusion"] else None
    if matrix:
        section.charts.append((confusion(matrix, tuple(class_names)),
                               "Rows: true class; numbers: test images."))
    else:
        section.notes.append("No test confusion matrix was stored for this trial.")
    return section

"""The written findings at the top of a sweep's page: statuses, best, per axis, overfitting."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fmnist_ray.report.analysis import (
    best_trial,
    config_name,
    config_table,
    overfitting_by_trial,
    status_counts,
)
from fmnist_ray.report.axes import Axis
from fmnist_ray.report.formatting import count_noun, format_value
from fmnist_ray.report.load import SweepResults

# The result of the study this tool grew from, which every sweep is compared against.
REFERENCE = {"model": "deep CNN with batch norm", "test_accuracy": 0.931, "test_loss": 0.278}
# Published Fashion-MNIST test accuracies, for placing a sweep's best trial.
PUBLISHED = (("2-conv CNNs", 0.92, 0.93), ("ResNet-18", 0.949, 0.949),
             ("WRN-28-10", 0.959, 0.959), ("WRN-28-10 + random erasing", 0.963, 0.963))
RISE_TOLERANCE = 0.005  # validation loss this far above its minimum counts as "turned upward"


def _best_findings(results: SweepResults) -> list[str]:
    configs = config_table(results)
    scored = configs.dropna(subset=["metric", "test_accuracy"])
    if scored.empty:
        return ["No trial has test results yet, so there is no best configuration."]
    best = scored["metric"].idxmax() if results.maximize else scored["metric"].idxmin()
    row = scored.loc[best]
    spread = (f" (min {row.test_min:.4f}, max {row.test_max:.4f} over "
              f"{count_noun(row.scored, 'trial')})" if row.scored > 1 else "")
    metric = results.metric.replace("best_val_", "best validation ")
    lines = [f"Best configuration (by mean {metric}): {config_name(results, best)}: mean test "
             f"accuracy {row.test_accuracy:.4f}{spread}, mean test loss {row.test_loss:.4f}."]
    trial = best_trial(results)
    params = f", {trial['params']:,.0f} parameters" if pd.notna(trial["params"]) else ""
    named = config_name(results, trial["config"])
    lines.append(f"Best single trial: {trial['trial_id']} ({named}, "
                 f"seed {trial['seed']:.0f}): test accuracy {trial['test_accuracy']:.4f}, test "
                 f"loss {trial['test_loss']:.4f}, best epoch {trial['best_epoch']:.0f} of "
                 f"{trial['epochs_run']:.0f}{params}.")
    points = (row.test_accuracy - REFERENCE["test_accuracy"]) * 100
    lines.append(f"Against the reference ({REFERENCE['model']}: test accuracy "
                 f"{REFERENCE['test_accuracy']}, test loss {REFERENCE['test_loss']}): "
                 f"{points:+.1f} points of test accuracy, test loss "
                 f"{row.test_loss - REFERENCE['test_loss']:+.3f}.")
    lines.append(_against_published(float(trial["test_accuracy"])))
    return lines


def _against_published(accuracy: float) -> str:
    parts = []
    for name, low, high in PUBLISHED:
        shown = f"{low}-{high}" if low != high else f"{high}"
        if low <= accuracy <= high:
            parts.append(f"within {name} ({shown})")
        else:
            nearest = low if accuracy < low else high
            parts.append(f"{(accuracy - nearest) * 100:+.1f} points against {name} ({shown})")
    return f"Best trial ({accuracy:.4f}) against published results: {'; '.join(parts)}."


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Rank correlation, NaN when either side is constant (no SciPy needed)."""
    rx, ry = x.rank().to_numpy(), y.rank().to_numpy()
    if len(rx) < 3 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _judged_by_best(results: SweepResults) -> bool:
    """With trials stopped early (ASHA), means would mix short and full runs: compare the best."""
    return bool((results.trials["status"] == "early_stopped").any())


def _axis_finding(results: SweepResults, axis: Axis, by_best: bool) -> str:
    trials = results.trials
    statistic = "best" if by_best else "mean"
    if axis.continuous:
        scored = trials.dropna(subset=[axis.name, "test_accuracy"])
        if len(scored) < 3:
            return f"{axis.name}: fewer than 3 trials with test results; nothing to say yet."
        best = best_trial(results)
        return (f"{axis.name} (sampled, {len(scored)} trials from "
                f"{format_value(scored[axis.name].min())} to "
                f"{format_value(scored[axis.name].max())}): Spearman correlation with test "
                f"accuracy {spearman(scored[axis.name], scored['test_accuracy']):+.2f}; the best "
                f"trial used {format_value(best[axis.name]) if best is not None else 'none'}.")
    labels = trials[axis.name].map(format_value)
    stats = trials.assign(label=labels).groupby("label").agg(
        mean=("test_accuracy", "max" if by_best else "mean"), scored=("test_accuracy", "count"),
        trials=("trial_id", "size"), diverged=("status", lambda s: int((s == "diverged").sum())))
    stats = stats.reindex([v for v in axis.order if v in stats.index])
    if stats["scored"].sum() == 0:
        return f"{axis.name}: no trial has a test result yet."
    if len(stats) == 1:
        return f"{axis.name}: only one value ({stats.index[0]}) in these results."
    best = stats["mean"].idxmax()
    top = stats.loc[best]
    others = []
    for label, row in stats.drop(best).iterrows():
        points = (row["mean"] - top["mean"]) * 100
        if row["scored"] == 0:
            others.append(f"{label} has no test result")
        elif points <= -0.05:
            others.append(f"{label} lost {-points:.1f} points")
        else:
            others.append(f"{label} within 0.1 points")
    diverged = [f"{label}: {row.diverged:.0f} of {row.trials:.0f} diverged"
                for label, row in stats.iterrows() if row.diverged]
    return (f"{axis.name}: {best} best ({top['mean']:.4f} {statistic} test accuracy over "
            f"{count_noun(top['scored'], 'trial')}); {', '.join(others)}"
            + (f" ({'; '.join(diverged)})" if diverged else "") + ".")


def _overfitting_findings(results: SweepResults, per_trial: pd.DataFrame) -> list[str]:
    if per_trial.empty:
        return ["Overfitting: no trial has finite training and validation losses to compare."]
    per = per_trial.groupby("config", sort=False).agg(
        gap=("gap", "mean"), rise=("rise", "mean"), turn=("turn_epoch", "mean"),
        last=("last_epoch", "mean"), past=("past_best", "mean"), n=("gap", "size"))
    rising = per[per["rise"] > RISE_TOLERANCE].sort_values("gap", ascending=False)
    if len(rising):
        worst = [f"{config_name(results, c)} (gap {r.gap:.3f} at the last epoch; validation loss "
                 f"lowest at epoch {r.turn:.3g}, up {r.rise:.3f} since; last epoch "
                 f"{r.past:.3g} past the best{'; means over seeds' if r.n > 1 else ''})"
                 for c, r in rising.head(3).iterrows()]
        lines = [f"Overfitting: validation loss turned upward in {len(rising)} of "
                 f"{count_noun(len(per), 'setting')}; the largest gaps (validation minus "
                 f"training loss): {'; '.join(worst)}."]
    else:
        low, high = per["gap"].idxmin(), per["gap"].idxmax()
        when = ("validation loss was still at its lowest (within "
                f"{RISE_TOLERANCE}) at the last epoch in every setting" if per["rise"].notna().all()
                else "without epoch histories, only the final losses can be compared")
        lines = [f"Overfitting: none seen, {when}; the last-epoch gap (validation minus training "
                 f"loss) ranges from {per.loc[low, 'gap']:.3f} ({config_name(results, low)}) to "
                 f"{per.loc[high, 'gap']:.3f} ({config_name(results, high)})."]
    return lines + _regularizer_findings(results, per_trial)


def _architecture_name(shape: dict) -> str:
    """`cnn`, or `mlp 512-512-512` where the hidden sizes tell MLPs apart."""
    if shape.get("model") == "mlp" and shape.get("hidden_sizes"):
        return f"mlp {shape['hidden_sizes']}"
    return str(shape.get("model", "all trials"))


def _regularizer_findings(results: SweepResults, per_trial: pd.DataFrame) -> list[str]:
    """Did dropout or batch norm (deep_cnn_bn) narrow the gap, where the sweep varies them?"""
    lines = []
    shape = [c for c in ("model", "hidden_sizes", "width") if c in results.trials]
    joined = per_trial.merge(results.trials[["trial_id", "dropout", *shape]], on="trial_id")
    clauses = []  # dropout is compared within one architecture, never across two
    for architecture, group in joined.dropna(subset=["dropout"]).groupby(shape, sort=False):
        by_dropout = group.groupby("dropout")["gap"].mean().sort_index()
        if len(by_dropout) < 2:
            continue
        gaps = ", ".join(f"{g:.3f} at dropout {format_value(d)}" for d, g in by_dropout.items())
        low, high = by_dropout.index[0], by_dropout.index[-1]
        change = by_dropout[low] - by_dropout[high]
        verdict = "narrowed it by" if change > 0 else "did not narrow it; it changed by"
        amount = f"{change:.3f}" if change > 0 else f"{-change:+.3f}"
        clauses.append(f"{_architecture_name(dict(zip(shape, architecture, strict=True)))}: "
                       f"last-epoch gap {gaps}; dropout {format_value(high)} {verdict} "
                       f"{amount} against {format_value(low)}.")
    if clauses:
        lines.append("Dropout: " + " ".join(clauses))
    by_model = joined.groupby("model")["gap"].mean()
    if "deep_cnn_bn" in by_model and len(by_model) > 1:
        bn = by_model["deep_cnn_bn"]
        versus = ", ".join(f"{'narrower' if bn < g else 'wider'} than {m} ({g:.3f}) by "
                           f"{abs(g - bn):.3f}" for m, g in by_model.drop("deep_cnn_bn").items())
        lines.append(f"Batch norm: deep_cnn_bn's last-epoch gap is {bn:.3f}, {versus}.")
    return lines


def summarize(results: SweepResults) -> list[str]:
    """The written findings at the top of a report, one sentence (or a few) per item."""
    lines = [f"{status_counts(results.trials)}."] + _best_findings(results)
    by_best = _judged_by_best(results)
    if by_best:
        stopped = int((results.trials["status"] == "early_stopped").sum())
        lines.append(f"Per axis, each value judged by its best trial ({stopped} of "
                     f"{len(results.trials)} trials were stopped early, so means would mix "
                     f"short and full runs):")
    elif len(results.axes) > 1:
        lines.append("Per axis, means pool the seeds and every value of the other axes:")
    lines += [_axis_finding(results, axis, by_best) for axis in results.axes]
    lines += _overfitting_findings(results, overfitting_by_trial(results))
    if results.missing:
        lines.append(f"{count_noun(len(results.missing), 'gap')} in these results: see "
                     f"\"What is missing\" below.")
    return lines

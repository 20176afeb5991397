"""Overfitting as measured quantities, and regularisers judged only from matched pairs.

The gap is validation loss minus the eval-mode loss on training images, both measured after
the epoch with dropout off; the rise is how far validation loss climbed after its lowest epoch.
Both are stated per configuration with a 95% interval over seeds, never as a count of trials
past a threshold. A regulariser (dropout) or more depth is credited only from two
configurations that are the same in every other setting: the change of the gap and of test
accuracy, each a difference with its interval (`differences`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from fmnist_ray.config import TrialConfig
from fmnist_ray.report.analysis import completed
from fmnist_ray.report.differences import Difference, mean_interval, welch
from fmnist_ray.report.formatting import format_value
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.stats import Noise, pooled_noise

IGNORED = {"seed", "device", "precision", "memory_format"}  # never change what is learned


def by_config(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: trials, the mean gap and rise with their 95% intervals over seeds,
    where validation loss turned, and whether the gaps compare like with like."""
    rows = []
    for config, group in per_trial.groupby("config", sort=False):
        gap_low, gap_high = mean_interval(group["gap"])
        rise_low, rise_high = mean_interval(group["rise"])
        rows.append({"config": config, "n": len(group), "gap": group["gap"].mean(),
                     "gap_low": gap_low, "gap_high": gap_high, "rise": group["rise"].mean(),
                     "rise_low": rise_low, "rise_high": rise_high,
                     "turn": group["turn_epoch"].mean(), "last": group["last_epoch"].mean(),
                     "like": bool(group["like_for_like"].all())})
    return pd.DataFrame(rows).set_index("config") if rows else pd.DataFrame(
        columns=["n", "gap", "gap_low", "gap_high", "rise", "rise_low", "rise_high", "turn",
                 "last", "like"])


def gap_noise(per_trial: pd.DataFrame) -> Noise:
    return pooled_noise(per_trial["gap"], per_trial["config"])


def _span(value: float, low: float, high: float, digits: int = 3) -> str:
    """`0.170 (0.150-0.190)`, or the value alone without an interval (one seed)."""
    if not math.isfinite(low):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"


def overfitting_sentences(results: SweepResults, per_trial: pd.DataFrame) -> list[str]:
    if per_trial.empty:
        return ["Overfitting: no trial that learned has training and validation losses to "
                "compare."]
    table = by_config(per_trial)
    first_trial = per_trial.groupby("config")["trial_id"].first()

    def name(config: str) -> str:  # long labels (searches) by their trial instead
        if len(results.axes) == 1:
            return f"{results.axes[0].name}={config}"
        return config if len(config) <= 40 else f"trial {first_trial[config]}"

    like = bool(table["like"].all())
    measure = ("validation loss minus the eval-mode loss on 6,000 training images" if like
               else "validation loss minus the running training loss, which dropout and "
               "augmentation inflate: not like for like, so small or negative gaps say little")
    ordered = table.sort_values("gap", ascending=False)
    listed = "; ".join(f"{name(c)} {_span(r.gap, r.gap_low, r.gap_high)}"
                       for c, r in ordered.iterrows())
    lines = [f"Gap at the last epoch ({measure}), mean with its 95% interval over seeds, widest "
             f"first: {listed}."]
    rising = table.sort_values("rise", ascending=False).head(4)
    rises = "; ".join(f"{name(c)} {_span(r.rise, r.rise_low, r.rise_high)} (lowest at epoch "
                      f"{r.turn:.3g} of {r.last:.3g})" for c, r in rising.iterrows())
    lines.append(f"Rise of validation loss after its lowest epoch, largest first: {rises}.")
    return lines


def _settings(trials: pd.DataFrame, key: str) -> list[str]:
    return [c for c in TrialConfig.model_fields if c in trials and c not in IGNORED | {key}]


@dataclass
class Pair:
    """Two configurations that differ in `key` alone, and what the change did."""

    key: str
    context: str  # the shared settings, shortly
    low: str
    high: str
    gap_low: float  # mean gap of `low` and of `high`
    gap_high: float
    remaining: tuple[float, float]  # 95% interval of `high`'s mean gap over seeds
    gap: Difference  # high's gap minus low's (narrower is better)
    accuracy: Difference  # high's mean test accuracy minus low's
    like_for_like: bool  # gaps from eval-mode training loss

    def to_json(self) -> dict:
        return {"key": self.key, "context": self.context, "low": self.low, "high": self.high,
                "gap_low": self.gap_low, "gap_high": self.gap_high,
                "gap_high_interval": list(self.remaining), "like_for_like": self.like_for_like,
                "gap": self.gap.to_json(), "test_accuracy": self.accuracy.to_json()}


def matched_pairs(results: SweepResults, per_trial: pd.DataFrame, key: str, margin: float,
                  accept=lambda low, high: True) -> list[Pair]:
    """Configurations equal in every setting but `key` (seeds pooled), lowest value vs each
    other; `accept(low, high)` filters the pairs (e.g. same layer width)."""
    trials = completed(results.trials).merge(per_trial[["trial_id", "gap"]], on="trial_id",
                                             how="left")
    if trials.empty or key not in trials:
        return []
    shared = _settings(trials, key)
    frame = trials.assign(**{c: trials[c].map(format_value) for c in [*shared, key]})
    pairs = []
    for _, group in frame.groupby(shared, sort=False):
        values = group[key].unique().tolist()
        if len(values) < 2:
            continue
        values.sort(key=lambda v: (len(v), v))
        low = group[group[key] == values[0]]
        for value in values[1:]:
            high = group[group[key] == value]
            if not accept(values[0], value):
                continue
            model = str(group["model"].iloc[0])
            if key != "hidden_sizes" and model == "mlp":
                model = f"mlp {group['hidden_sizes'].iloc[0]}"
            pairs.append(Pair(
                key, model, values[0], value, low["gap"].mean(), high["gap"].mean(),
                mean_interval(high["gap"]),
                welch(high["gap"], low["gap"], math.nan, higher_is_better=False),
                welch(high["test_accuracy"], low["test_accuracy"], margin),
                bool(per_trial[per_trial["trial_id"].isin(group["trial_id"])]
                     ["like_for_like"].all())))
    return pairs


def same_width_deeper(low: str, high: str) -> bool:
    """`512` against `512-512-512`: more layers of the same width."""
    a, b = low.split("-"), high.split("-")
    return len(b) > len(a) and len(set(a + b)) == 1


GAP_WORDS = {"better": "narrower", "worse": "wider", "undecided": "undecided",
             "equivalent": "equivalent"}


def _change(d: Difference, scale: float, unit: str, digits: int) -> str:
    """`-0.126, 95% interval -0.150 to -0.102` in the given unit."""
    estimate = f"{d.difference * scale:+.{digits}f}{unit}"
    if not math.isfinite(d.ci_low):
        return f"{estimate}, no interval (one seed)"
    return (f"{estimate}, 95% interval {d.ci_low * scale:+.{digits}f} to "
            f"{d.ci_high * scale:+.{digits}f}")


def _needs(d: Difference) -> str:
    return (f", needs about {d.seeds_needed} seeds" if d.verdict == "undecided"
            and d.seeds_needed else "")


def pair_sentence(pair: Pair) -> str:
    """E.g. `cnn: dropout 0 → 0.4: gap 0.296 → 0.170 (change -0.126, 95% interval -0.150 to
    -0.102: narrower; 0.170 remains, 0.150 to 0.190); test accuracy +0.19 points (95% interval
    -0.30 to +0.68: undecided, needs about 9 seeds)`."""
    gap, acc = pair.gap, pair.accuracy
    low, high = pair.remaining
    remains = (f"; {pair.gap_high:.3f} remains, {low:.3f} to {high:.3f}"
               if math.isfinite(low) else "")
    return (f"{pair.context}: {pair.key} {pair.low} → {pair.high}: gap {pair.gap_low:.3f} → "
            f"{pair.gap_high:.3f} (change {_change(gap, 1, '', 3)}: {GAP_WORDS[gap.verdict]}"
            f"{remains}); test accuracy {_change(acc, 100, ' points', 2)}: {acc.verdict}"
            f"{_needs(acc)}")


def sweep_pairs(results: SweepResults, per_trial: pd.DataFrame, margin: float) -> list[Pair]:
    """The matched pairs a sweep holds: dropout, and more layers of the same width."""
    return (matched_pairs(results, per_trial, "dropout", margin)
            + matched_pairs(results, per_trial, "hidden_sizes", margin, same_width_deeper))


def regularizer_sentences(results: SweepResults, pairs: list[Pair]) -> list[str]:
    """Dropout and depth from matched pairs; batch norm said to be untestable where it is."""
    lines = []
    dropout = [p for p in pairs if p.key == "dropout"]
    if dropout:
        lines.append("Dropout, from matched pairs (the same model otherwise): "
                     + "; ".join(pair_sentence(p) for p in dropout) + ".")
    deeper = [p for p in pairs if p.key == "hidden_sizes"]
    if deeper:
        lines.append("Depth, from matched pairs (same width and settings): "
                     + "; ".join(pair_sentence(p) for p in deeper) + ".")
    models = set(results.trials["model"].dropna())
    if "deep_cnn_bn" in models and len(models) > 1:
        lines.append("Batch norm: no two configurations here differ in batch norm alone "
                     "(deep_cnn_bn differs from the other models in depth as well), so no "
                     "effect is credited to it.")
    return lines

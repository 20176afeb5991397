"""Overfitting, measured like with like, and regularisers judged only from matched pairs.

The gap is validation loss minus the eval-mode loss on training images, both measured after
the epoch with dropout off. A regulariser (dropout) or more depth is credited only from two
configurations that are the same in every other setting, with its accuracy cost beside its
effect on the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from fmnist_ray.config import TrialConfig
from fmnist_ray.report.analysis import RISE_NOISE_MULTIPLE, completed
from fmnist_ray.report.compare import test_noise
from fmnist_ray.report.formatting import count_noun, format_value, points
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.stats import Noise, compare, pooled_noise

IGNORED = {"seed", "device", "precision", "memory_format"}  # never change what is learned


def by_config(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: trials, how many overfit, the mean gap, rise, turn and noise."""
    return per_trial.groupby("config", sort=False).agg(
        n=("trial_id", "size"), overfit=("overfits", "sum"), gap=("gap", "mean"),
        rise=("rise", "mean"), turn=("turn_epoch", "mean"), noise=("noise", "mean"),
        last=("last_epoch", "mean"), like=("like_for_like", "all"))


def gap_noise(per_trial: pd.DataFrame) -> Noise:
    return pooled_noise(per_trial["gap"], per_trial["config"])


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

    rule = (f"validation loss rose after its lowest epoch by more than "
            f"{RISE_NOISE_MULTIPLE:g}x its typical epoch-to-epoch change")
    overfit = table[table["overfit"] > 0].sort_values("rise", ascending=False)
    if len(overfit):
        listed = "; ".join(
            f"{name(c)} ({r.overfit:.0f} of {r.n:.0f}: lowest at epoch {r.turn:.3g}, up "
            f"{r.rise:.3f} by epoch {r.last:.3g}, against a typical change of {r.noise:.3f})"
            for c, r in overfit.head(4).iterrows())
        lines = [f"Overfitting ({rule}) in {count_noun(int(table['overfit'].sum()), 'trial')} "
                 f"of {len(per_trial)}: {listed}."]
    else:
        lines = [f"Overfitting: none ({rule} in no trial)."]
    like = bool(table["like"].all())
    measure = ("validation loss minus the eval-mode loss on 6,000 training images" if like
               else "validation loss minus the running training loss, which dropout and "
               "augmentation inflate: not like for like, so small or negative gaps say little")
    noise = gap_noise(per_trial)
    spread = (f"; seed-to-seed SD {noise.sd:.3f}" if noise.known else "")
    positive = table[table["gap"] > 0].sort_values("gap", ascending=False)
    listed = ", ".join(f"{name(c)} {r.gap:.3f}" for c, r in positive.head(3).iterrows())
    widest = f"; widest: {listed}" if len(positive) else "; no setting has a positive gap"
    lines.append(f"Gap at the last epoch ({measure}): from {table['gap'].min():.3f} to "
                 f"{table['gap'].max():.3f}{spread}{widest}.")
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
    gap_low: float
    gap_high: float
    gap: object  # stats.Comparison of the gaps
    accuracy: object  # stats.Comparison of mean test accuracy (high against low)
    overfit_low: str
    overfit_high: str
    like_for_like: bool  # gaps from eval-mode training loss


def matched_pairs(results: SweepResults, per_trial: pd.DataFrame, key: str,
                  accept=lambda low, high: True) -> list[Pair]:
    """Configurations equal in every setting but `key` (seeds pooled), lowest value vs each
    other; `accept(low, high)` filters the pairs (e.g. same layer width)."""
    trials = completed(results.trials).merge(per_trial[["trial_id", "gap", "overfits"]],
                                             on="trial_id", how="left")
    if trials.empty or key not in trials:
        return []
    shared = _settings(trials, key)
    frame = trials.assign(**{c: trials[c].map(format_value) for c in [*shared, key]})
    accuracy_noise = test_noise(results)
    gaps = gap_noise(per_trial)
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
                compare(high["gap"].mean(), int(high["gap"].count()), low["gap"].mean(),
                        int(low["gap"].count()), gaps, higher_is_better=False),
                compare(high["test_accuracy"].mean(), len(high), low["test_accuracy"].mean(),
                        len(low), accuracy_noise),
                f"{int(low['overfits'].sum())} of {len(low)}",
                f"{int(high['overfits'].sum())} of {len(high)}",
                bool(per_trial[per_trial["trial_id"].isin(group["trial_id"])]
                     ["like_for_like"].all())))
    return pairs


def same_width_deeper(low: str, high: str) -> bool:
    """`512` against `512-512-512`: more layers of the same width."""
    a, b = low.split("-"), high.split("-")
    return len(b) > len(a) and len(set(a + b)) == 1


def _against_noise(verdict: str, lsd: str, better: str, worse: str) -> str:
    if verdict == "no claim":
        return "one seed: no claim"
    if verdict == "tied":
        return f"within the noise of {lsd}"
    return f"{better if verdict == 'better' else worse}, beyond the noise of {lsd}"


def pair_sentence(pair: Pair) -> str:
    """E.g. `cnn: dropout 0 → 0.4: gap 0.296 → 0.170 (narrower, beyond the noise of 0.027),
    trials overfitting 2 of 2 → 0 of 2; test accuracy +0.19 points (within the noise...)`."""
    gap, acc = pair.gap, pair.accuracy
    gap_lsd = f"{gap.lsd:.3f}" if math.isfinite(gap.lsd) else ""
    acc_lsd = f"{points(acc.lsd)} points" if math.isfinite(acc.lsd) else ""
    return (f"{pair.context}: {pair.key} {pair.low} → {pair.high}: gap {pair.gap_low:.3f} → "
            f"{pair.gap_high:.3f} ({_against_noise(gap.verdict, gap_lsd, 'narrower', 'wider')})"
            f", trials overfitting {pair.overfit_low} → {pair.overfit_high}; test accuracy "
            f"{acc.difference * 100:+.2f} points "
            f"({_against_noise(acc.verdict, acc_lsd, 'a gain', 'a cost')})")


def sweep_pairs(results: SweepResults, per_trial: pd.DataFrame) -> list[Pair]:
    """The matched pairs a sweep holds: dropout, and more layers of the same width."""
    return (matched_pairs(results, per_trial, "dropout")
            + matched_pairs(results, per_trial, "hidden_sizes", same_width_deeper))


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

"""Grid sweeps: each value of an axis against the validation choice, within the seed noise.

The value with the best mean validation metric is chosen; every other value's mean *test*
accuracy is then classified against the chosen one's as tied, worse or better (test and
validation disagree) with the pooled-variance t-test of `stats`. Runs that failed to learn or
diverged are listed as such and never ranked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from fmnist_ray.report.analysis import choose, completed
from fmnist_ray.report.axes import Axis
from fmnist_ray.report.formatting import format_value, join_words, points
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.stats import Noise, compare, pooled_noise


@dataclass
class ValueFinding:
    """One value of an axis: its trials, means, 95% interval and verdict against the choice."""

    value: str
    trials: int
    n: int  # completed trials, the ones compared
    validation: float  # mean of the selection metric
    test_accuracy: float
    ci_low: float
    ci_high: float
    test_loss: float
    verdict: str  # chosen | tied | worse | better | no claim | failed_to_learn | diverged | ...
    difference: float = math.nan  # test accuracy minus the chosen value's
    lsd: float = math.nan
    p_value: float = math.nan
    failed: int = 0
    diverged: int = 0


@dataclass
class AxisFinding:
    """What the data say about one axis: its values and the sentence that states it."""

    axis: str
    values: list[ValueFinding] = field(default_factory=list)
    chosen: str | None = None
    sentence: str = ""


def test_noise(results: SweepResults) -> Noise:
    """The pooled seed-to-seed SD of test accuracy over the completed configurations."""
    done = completed(results.trials)
    return pooled_noise(done["test_accuracy"], done["config"])


def axis_finding(results: SweepResults, axis: Axis, noise: Noise) -> AxisFinding:
    """Compare the values of a listed axis (seeds and other axes pooled)."""
    trials = results.trials.assign(value=results.trials[axis.name].map(format_value))
    done = completed(trials).dropna(subset=[results.metric])
    means = done.groupby("value").agg(n=("trial_id", "size"), validation=(results.metric, "mean"),
                                      test_accuracy=("test_accuracy", "mean"),
                                      test_loss=("test_loss", "mean"))
    finding = AxisFinding(axis.name, chosen=choose(means, "validation", results.maximize))
    chosen = means.loc[finding.chosen] if finding.chosen is not None else None
    for value in axis.order:
        group = trials[trials["value"] == value]
        if group.empty:
            continue
        counts = group["status"].value_counts()
        row = means.loc[value] if value in means.index else None
        n = int(row["n"]) if row is not None else 0
        margin = noise.margin(n)
        item = ValueFinding(
            value, len(group), n, row["validation"] if n else math.nan,
            row["test_accuracy"] if n else math.nan,
            row["test_accuracy"] - margin if n else math.nan,
            row["test_accuracy"] + margin if n else math.nan,
            row["test_loss"] if n else math.nan, "no result",
            failed=int(counts.get("failed_to_learn", 0)), diverged=int(counts.get("diverged", 0)))
        if n == 0:
            item.verdict = ("diverged" if item.diverged and item.diverged >= item.failed else
                            "failed_to_learn" if item.failed else "no result")
        elif value == finding.chosen:
            item.verdict = "chosen"
        else:
            result = compare(item.test_accuracy, n, chosen["test_accuracy"], int(chosen["n"]),
                             noise)
            item.verdict, item.difference = result.verdict, result.difference
            item.lsd, item.p_value = result.lsd, result.p_value
        finding.values.append(item)
    finding.sentence = _sentence(finding, noise)
    return finding


def _names(values: list[ValueFinding]) -> str:
    return join_words([v.value for v in values])


def _span(values: list[ValueFinding]) -> str:
    gaps = sorted(abs(v.difference) for v in values)
    low, high = points(gaps[0]), points(gaps[-1])
    return f"{low} points" if low == high else f"{low}-{high} points"


def _failures(finding: AxisFinding) -> list[str]:
    parts = []
    for v in finding.values:
        if v.failed:
            parts.append(f"{v.value} failed to learn on {v.failed} of {v.trials} seeds "
                         f"(validation at chance)")
        if v.diverged:
            parts.append(f"{v.value} diverged on {v.diverged} of {v.trials}")
    return parts


def _sentence(finding: AxisFinding, noise: Noise) -> str:
    name = finding.axis
    ranked = [v for v in finding.values if v.n]
    failures = _failures(finding)
    tail = f"; {'; '.join(failures)}" if failures else ""
    if not ranked:
        return f"{name}: no value has a completed trial{tail}."
    if len(ranked) == 1:
        return f"{name}: only {ranked[0].value} completed, nothing to compare{tail}."
    if not noise.known:
        low = min(ranked, key=lambda v: v.test_accuracy)
        high = max(ranked, key=lambda v: v.test_accuracy)
        return (f"{name}: one seed per value, so no difference can be called real; mean test "
                f"accuracy ran from {low.test_accuracy:.4f} ({low.value}) to "
                f"{high.test_accuracy:.4f} ({high.value}){tail}.")
    chosen = next(v for v in ranked if v.verdict == "chosen")
    tied = [v for v in ranked if v.verdict in ("chosen", "tied")]
    worse = [v for v in ranked if v.verdict == "worse"]
    better = [v for v in ranked if v.verdict == "better"]
    seeds = f"{min(v.n for v in ranked)}" + (
        f"-{max(v.n for v in ranked)}" if len({v.n for v in ranked}) > 1 else "")
    lsd = noise.lsd(chosen.n, chosen.n)
    parts = []
    if len(tied) > 1:
        verb = "are all tied" if not worse and not better else "are tied"
        parts.append(f"{_names(tied)} {verb} (within {points(lsd)} points, the least "
                     f"significant difference for {seeds} seeds)")
    else:
        parts.append(f"{chosen.value} is ahead of every other value beyond the noise "
                     f"({points(lsd)} points for {seeds} seeds): test accuracy "
                     f"{chosen.test_accuracy:.4f} ± {points(chosen.ci_high - chosen.test_accuracy)}"
                     f" points")
    if worse:
        parts.append(f"{_names(worse)} {'is' if len(worse) == 1 else 'are'} worse, by "
                     f"{_span(worse)}")
    if better:
        parts.append(f"{_names(better)} scored higher on test than the validation choice "
                     f"{chosen.value}, by {_span(better)}: validation and test disagree")
    return f"{name}: {'; '.join(parts)}{tail}."


def grid_findings(results: SweepResults) -> tuple[Noise, list[AxisFinding]]:
    """The sweep's test-accuracy noise and a finding for each listed axis."""
    noise = test_noise(results)
    return noise, [axis_finding(results, axis, noise) for axis in results.axes
                   if not axis.continuous]


def value_table(finding: AxisFinding) -> pd.DataFrame:
    """The finding's values as a frame (for charts): value, n, means, interval, verdict."""
    return pd.DataFrame([vars(v) for v in finding.values])

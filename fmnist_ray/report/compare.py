"""Grid sweeps: each value of an axis against the validation choice, as a difference with its
interval.

The value with the best mean validation metric is chosen; every other value's mean *test*
accuracy is set against the chosen one's as a Welch difference (`differences`), and the same on
validation, so the page can show where the two disagree. Verdicts are decided later, over all of
a page's comparisons at once (Holm). Runs that failed to learn or diverged are listed as such
and never compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from fmnist_ray.report.analysis import choose, completed
from fmnist_ray.report.axes import Axis
from fmnist_ray.report.differences import Difference, mean_interval, welch
from fmnist_ray.report.formatting import format_value, join_words, points
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.stats import Noise, pooled_noise


@dataclass
class ValueFinding:
    """One value of an axis: its trials, means, 95% interval over seeds, and its difference
    from the chosen value on test accuracy (`versus_chosen`) and on validation."""

    value: str
    trials: int
    n: int  # completed trials, the ones compared
    validation: float  # mean of the selection metric
    test_accuracy: float
    ci_low: float  # 95% interval of the mean test accuracy, seed noise only
    ci_high: float
    test_loss: float
    outcome: str = "compared"  # compared | chosen | failed_to_learn | diverged | no result
    versus_chosen: Difference | None = None  # test accuracy: this value minus the chosen
    versus_chosen_validation: Difference | None = None
    failed: int = 0
    diverged: int = 0

    @property
    def verdict(self) -> str:
        """chosen, better, worse, equivalent or undecided; the outcome for values not compared."""
        if self.versus_chosen is not None:
            return self.versus_chosen.verdict
        return self.outcome

    @property
    def validation_verdict(self) -> str | None:
        return self.versus_chosen_validation.verdict if self.versus_chosen_validation else None

    def to_json(self) -> dict:
        """The comparison as findings.json has it: value, verdict, difference, interval,
        margin (accuracy fractions), and the validation verdict beside it."""
        compared = self.versus_chosen
        return {"value": self.value, "verdict": self.verdict, "trials": self.trials,
                "seeds": self.n, "test_accuracy": self.test_accuracy,
                "test_accuracy_interval": [self.ci_low, self.ci_high],
                "interval_contains": "seed noise only", "test_loss": self.test_loss,
                "validation": self.validation, "failed_to_learn": self.failed,
                "diverged": self.diverged,
                **(compared.to_json() if compared else {"difference": None, "interval": None,
                                                        "margin": None}),
                "validation_verdict": self.validation_verdict}


@dataclass
class AxisFinding:
    """What the data say about one axis: its values and the sentence that states it."""

    axis: str
    values: list[ValueFinding] = field(default_factory=list)
    chosen: str | None = None
    sentence: str = ""

    def differences(self) -> list[Difference]:
        return [v.versus_chosen for v in self.values if v.versus_chosen is not None]

    def validation_differences(self) -> list[Difference]:
        return [v.versus_chosen_validation for v in self.values
                if v.versus_chosen_validation is not None]


def test_noise(results: SweepResults) -> Noise:
    """The pooled seed-to-seed SD of test accuracy over the completed configurations (for the
    power statement; comparisons use each group's own variance)."""
    done = completed(results.trials)
    return pooled_noise(done["test_accuracy"], done["config"])


def axis_finding(results: SweepResults, axis: Axis, margin: float) -> AxisFinding:
    """Compare the values of a listed axis (seeds and other axes pooled) with the chosen one."""
    trials = results.trials.assign(value=results.trials[axis.name].map(format_value))
    done = completed(trials).dropna(subset=[results.metric])
    means = done.groupby("value").agg(validation=(results.metric, "mean"))
    finding = AxisFinding(axis.name, chosen=choose(means, "validation", results.maximize))
    chosen = done[done["value"] == finding.chosen]
    for value in axis.order:
        group = trials[trials["value"] == value]
        if group.empty:
            continue
        counts = group["status"].value_counts()
        runs = done[done["value"] == value]
        low, high = mean_interval(runs["test_accuracy"])
        item = ValueFinding(
            value, len(group), len(runs), runs[results.metric].mean(),
            runs["test_accuracy"].mean(), low, high, runs["test_loss"].mean(),
            failed=int(counts.get("failed_to_learn", 0)), diverged=int(counts.get("diverged", 0)))
        if runs.empty:
            item.outcome = ("diverged" if item.diverged and item.diverged >= item.failed else
                            "failed_to_learn" if item.failed else "no result")
        elif value == finding.chosen:
            item.outcome = "chosen"
        else:
            item.versus_chosen = welch(runs["test_accuracy"], chosen["test_accuracy"], margin)
            item.versus_chosen_validation = welch(
                runs[results.metric], chosen[results.metric],
                margin if results.metric.endswith("accuracy") else math.nan, results.maximize)
        finding.values.append(item)
    return finding


def _interval(d: Difference) -> str:
    """E.g. `-0.25 points, 95% interval -0.90 to +0.40`."""
    if not math.isfinite(d.ci_low):
        return f"{d.difference * 100:+.2f} points, no interval (one seed)"
    return (f"{d.difference * 100:+.2f} points, 95% interval {d.ci_low * 100:+.2f} to "
            f"{d.ci_high * 100:+.2f}")


def describe(d: Difference) -> str:
    """A difference in words: its verdict, estimate and interval, and what would decide it."""
    needs = (f"; needs about {d.seeds_needed} seeds per value" if d.verdict == "undecided"
             and d.seeds_needed else "")
    return f"{d.verdict} ({_interval(d)}{needs})"


def _failures(finding: AxisFinding) -> list[str]:
    parts = []
    for v in finding.values:
        if v.failed:
            parts.append(f"{v.value} failed to learn on {v.failed} of {v.trials} seeds "
                         f"(validation at chance)")
        if v.diverged:
            parts.append(f"{v.value} diverged on {v.diverged} of {v.trials}")
    return parts


def axis_sentence(finding: AxisFinding, margin: float, family: int) -> str:
    """The axis in one sentence, once its verdicts are decided: each value against the chosen
    one on test accuracy, and where validation says otherwise."""
    name = finding.axis
    ranked = [v for v in finding.values if v.n]
    failures = _failures(finding)
    tail = f"; {'; '.join(failures)}" if failures else ""
    if not ranked:
        return f"{name}: no value has a completed trial{tail}."
    if len(ranked) == 1:
        return f"{name}: only {ranked[0].value} completed, nothing to compare{tail}."
    chosen = next(v for v in ranked if v.outcome == "chosen")
    compared = [v for v in ranked if v.versus_chosen is not None]
    if all(not v.versus_chosen.testable for v in compared):
        low = min(ranked, key=lambda v: v.test_accuracy)
        high = max(ranked, key=lambda v: v.test_accuracy)
        return (f"{name}: one seed per value, so every difference is undecided; mean test "
                f"accuracy ran from {low.test_accuracy:.4f} ({low.value}) to "
                f"{high.test_accuracy:.4f} ({high.value}){tail}.")
    groups: dict[str, list[ValueFinding]] = {}
    for v in compared:
        groups.setdefault(v.verdict, []).append(v)
    parts = []
    for verdict in ("better", "worse", "equivalent", "undecided"):
        for v in groups.get(verdict, []):
            parts.append(f"{v.value} {describe(v.versus_chosen)}")
    decided = [v for v in compared if v.validation_verdict not in (None, "undecided", v.verdict)]
    conflicts = [f"{v.value} is {v.validation_verdict}" for v in decided
                 if v.verdict != "undecided"]
    only = [f"{v.value} is {v.validation_verdict}" for v in decided if v.verdict == "undecided"]
    validation = ""
    if conflicts:
        validation += f". Validation and test disagree: on validation {join_words(conflicts)}"
    if only:
        validation += (f". On validation (which chose {chosen.value}, so favours it) "
                       f"{join_words(only)}")
    return (f"{name}: chosen {chosen.value} on validation; on test accuracy against it "
            f"(margin ±{points(margin)} points, Holm over {family} comparisons): "
            f"{'; '.join(parts)}{validation}{tail}.")


def grid_findings(results: SweepResults, margin: float) -> tuple[Noise, list[AxisFinding]]:
    """The sweep's test-accuracy noise and a finding for each listed axis (undecided until
    `differences.decide` runs over the page)."""
    return test_noise(results), [axis_finding(results, axis, margin) for axis in results.axes
                                 if not axis.continuous]


def value_table(finding: AxisFinding) -> pd.DataFrame:
    """The finding's values as a frame (for charts): value, n, means, interval, verdict."""
    return pd.DataFrame([{"value": v.value, "n": v.n, "test_accuracy": v.test_accuracy,
                          "ci_low": v.ci_low, "ci_high": v.ci_high, "verdict": v.verdict,
                          "difference": v.versus_chosen.difference if v.versus_chosen
                          else 0.0 if v.outcome == "chosen" else math.nan}
                         for v in finding.values])

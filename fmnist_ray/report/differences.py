"""Differences between two groups of seeds, and the verdict the data allow on each.

Every comparison is a difference of means with its Welch interval (each group keeps its own
variance, so one noisy value does not set everyone's threshold). Verdicts are decided together
over a page's comparisons, after Holm's correction:

- `better` / `worse`: the Welch test rejects "no difference" (Holm-adjusted p < alpha);
- `equivalent`: the two one-sided tests (TOST) at the declared margin pass (Holm-adjusted);
- `undecided`: neither, with the seeds per configuration that 80% power would need.

A procedure that looks at the data several times (adding seeds in between) splits alpha over
its maximum number of looks (Bonferroni), so its error rate over all looks stays at alpha.
All distributions come from statsmodels; nothing here is hand-written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttost_ind

ALPHA = 0.05
POWER = 0.8
DEFAULT_MARGIN = 0.5  # accuracy points: smaller differences do not matter to the study
MAX_SEEDS_REPORTED = 1000  # beyond this "needs about N seeds" says only "more than"
VERDICTS = ("chosen", "better", "worse", "equivalent", "undecided")


@dataclass
class Difference:
    """`a - b` for two groups of seeds: estimate, 95% Welch interval, tests, verdict.

    `margin` is in the metric's own units (0.005 for half an accuracy point). `verdict` and the
    adjusted p-values are set by `decide`, over all the comparisons of one page.
    """

    difference: float
    ci_low: float
    ci_high: float
    p_value: float  # Welch, two-sided, against no difference
    p_equivalence: float  # TOST against |difference| >= margin
    margin: float
    n_a: int
    n_b: int
    sd: float  # the two groups' root mean variance, for the power analysis
    higher_is_better: bool = True
    p_adjusted: float = math.nan
    p_equivalence_adjusted: float = math.nan
    verdict: str = "undecided"
    seeds_needed: int | None = None  # per configuration, for 80% power (undecided only)

    @property
    def testable(self) -> bool:
        return math.isfinite(self.p_value)

    def to_json(self) -> dict:
        return {"difference": self.difference, "interval": [self.ci_low, self.ci_high],
                "interval_level": 1 - ALPHA, "p_value": self.p_value,
                "p_adjusted": self.p_adjusted, "p_equivalence": self.p_equivalence,
                "p_equivalence_adjusted": self.p_equivalence_adjusted, "margin": self.margin,
                "seeds": [self.n_a, self.n_b], "verdict": self.verdict,
                "seeds_needed": self.seeds_needed}


def welch(a, b, margin: float, higher_is_better: bool = True) -> Difference:
    """`mean(a) - mean(b)` with its Welch 95% interval, Welch p and TOST p at `margin`.

    With fewer than two seeds in a group (no variance) nothing is testable: p and the interval
    are NaN. Two groups without spread differ exactly (or not at all).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n_a, n_b = len(a), len(b)
    if not n_a or not n_b:
        return Difference(math.nan, math.nan, math.nan, math.nan, math.nan, margin, n_a, n_b,
                          math.nan, higher_is_better)
    difference = float(a.mean() - b.mean())
    variances = [float(x.var(ddof=1)) for x in (a, b) if len(x) >= 2]
    sd = math.sqrt(sum(variances) / len(variances)) if variances else math.nan
    if n_a < 2 or n_b < 2:
        return Difference(difference, math.nan, math.nan, math.nan, math.nan, margin, n_a, n_b,
                          sd, higher_is_better)
    if a.var() == 0 and b.var() == 0:  # no spread: the difference is exact
        differs = difference != 0
        equivalent = abs(difference) < margin
        return Difference(difference, difference, difference, 0.0 if differs else 1.0,
                          0.0 if equivalent else 1.0, margin, n_a, n_b, 0.0, higher_is_better)
    means = CompareMeans(DescrStatsW(a), DescrStatsW(b))
    _, p_value, _ = means.ttest_ind(usevar="unequal")
    low, high = means.tconfint_diff(alpha=ALPHA, usevar="unequal")
    p_equivalence = ttost_ind(a, b, -margin, margin, usevar="unequal")[0]
    return Difference(difference, float(low), float(high), float(p_value), float(p_equivalence),
                      margin, n_a, n_b, sd, higher_is_better)


def seeds_needed(sd: float, margin: float, alpha: float = ALPHA, power: float = POWER,
                 difference: float = 0.0) -> int:
    """Seeds per configuration for `power` to decide a comparison whose true difference is
    `difference`: to detect it (two-sided Welch at `alpha`; at least one `margin`), or, when it
    lies inside the margin, to show equivalence (TOST), whichever needs fewer seeds."""
    if not math.isfinite(sd):
        return MAX_SEEDS_REPORTED
    if sd == 0:
        return 2
    solver = TTestIndPower()
    size = abs(difference) if math.isfinite(difference) else 0.0
    detect = max(size, margin if math.isfinite(margin) else 0.0) / sd
    for seeds in (np.arange(2, 65), np.arange(65, MAX_SEEDS_REPORTED + 1)):  # small ones first
        enough = solver.power(detect, seeds, alpha, alternative="two-sided") >= power
        if math.isfinite(margin) and size < margin:
            # TOST: both one-sided tests must pass, each with power 1 - (1 - power) / 2.
            enough |= solver.power((margin - size) / sd, seeds, alpha,
                                   alternative="larger") >= 1 - (1 - power) / 2
        if enough.any():
            return int(seeds[enough.argmax()])
    return MAX_SEEDS_REPORTED


def decide(differences: list[Difference], alpha: float = ALPHA, looks: int = 1) -> None:
    """Set the verdict of each of a page's differences, Holm-corrected over all of them.

    `looks`: how many times the data may be analysed in all (seeds added between looks); each
    look tests at alpha / looks (Bonferroni over looks).
    """
    level = alpha / looks
    for adjusted, raw in (("p_adjusted", "p_value"), ("p_equivalence_adjusted", "p_equivalence")):
        tested = [d for d in differences if math.isfinite(getattr(d, raw))]
        values = [getattr(d, raw) for d in tested]
        if len(values) > 1:
            values = multipletests(values, alpha=level, method="holm")[1]
        for d, p in zip(tested, values, strict=True):
            setattr(d, adjusted, float(p))
    family = max(1, sum(d.testable for d in differences))
    for d in differences:
        if d.testable and d.p_adjusted < level:
            ahead = d.difference > 0
            d.verdict = "better" if ahead == d.higher_is_better else "worse"
        elif d.testable and d.p_equivalence_adjusted < level:
            d.verdict = "equivalent"
        else:
            d.verdict = "undecided"
            # At least one more seed than it has: the estimate assumes the pooled t-test's
            # degrees of freedom, which Welch's can fall short of.
            d.seeds_needed = max(max(d.n_a, d.n_b) + 1,
                                 seeds_needed(d.sd, d.margin, level / family,
                                              difference=d.difference))


@dataclass(frozen=True)
class SeedPlan:
    """How `extend --until-decided` grows a sweep: from `start` seeds by `step` per look, up to
    `maximum`; every look's tests run at alpha / `looks` (Bonferroni over the looks)."""

    start: int
    step: int
    maximum: int

    @property
    def looks(self) -> int:
        """The most analyses the procedure can make: the first, then one per added step."""
        if self.maximum <= self.start:
            return 1
        return 1 + math.ceil((self.maximum - self.start) / self.step)

    def next(self, seeds: int) -> int | None:
        """The seeds of the next look, or None when the plan is spent."""
        return None if seeds >= self.maximum else min(self.maximum, seeds + self.step)


def mean_interval(values) -> tuple[float, float]:
    """The 95% t interval of the mean of `values` (seed noise only); NaN below two values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return math.nan, math.nan
    if values.var() == 0:
        return float(values[0]), float(values[0])
    low, high = DescrStatsW(values).tconfint_mean(alpha=ALPHA)
    return float(low), float(high)


def detectable_difference(sd: float, seeds: int, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """The smallest difference between two means of `seeds` seeds that a two-sided Welch test
    at `alpha` detects with `power`, for a seed SD of `sd`."""
    if not math.isfinite(sd) or seeds < 2:
        return math.nan
    effect = TTestIndPower().solve_power(nobs1=seeds, alpha=alpha, power=power,
                                         alternative="two-sided")
    return float(effect * sd)


def seeds_for_interval(sd: float, half_width: float, confidence: float = 1 - ALPHA) -> int:
    """Seeds for the t interval of a mean to be at most `half_width` on each side (for a
    figure that must lie within a band, e.g. a gap within its margin of zero)."""
    if not math.isfinite(sd) or half_width <= 0:
        return MAX_SEEDS_REPORTED
    seeds = np.arange(2, MAX_SEEDS_REPORTED + 1)
    widths = stats.t.ppf(1 - (1 - confidence) / 2, seeds - 1) * sd / np.sqrt(seeds)
    enough = widths <= half_width
    return int(seeds[enough.argmax()]) if enough.any() else MAX_SEEDS_REPORTED

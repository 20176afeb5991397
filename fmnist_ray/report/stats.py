"""A sweep's noise and the rank tests of searches, from SciPy: no hand-made tables.

Seeds are the replicates. The noise of a sweep is the pooled seed-to-seed standard deviation
of a metric over its configurations (each configuration's variance weighted by its degrees of
freedom): the page states it, with the difference its seeds detect. Comparisons themselves are
Welch differences with their own groups' variances (`differences`). With one seed there is no
noise estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from scipy import stats

ALPHA = 0.05
TEST_IMAGES = 10_000  # Fashion-MNIST's test set


@dataclass(frozen=True)
class Noise:
    """The pooled seed-to-seed standard deviation of a metric and its degrees of freedom."""

    sd: float
    df: int

    @property
    def known(self) -> bool:
        return self.df >= 1 and math.isfinite(self.sd)

    def t(self) -> float:
        """The two-sided t quantile at ALPHA for these degrees of freedom."""
        return float(stats.t.ppf(1 - ALPHA / 2, self.df)) if self.known else math.nan

    def margin(self, n: int) -> float:
        """Half-width of the 95% confidence interval of a mean of `n` seeds."""
        return self.t() * self.sd / math.sqrt(n) if self.known and n else math.nan

    def lsd(self, n_a: int, n_b: int) -> float:
        """The least significant difference between a mean of `n_a` and one of `n_b` seeds."""
        if not (self.known and n_a and n_b):
            return math.nan
        return self.t() * self.sd * math.sqrt(1 / n_a + 1 / n_b)


def pooled_noise(values: pd.Series, groups: pd.Series) -> Noise:
    """The pooled within-group standard deviation of `values`; groups of one add nothing."""
    frame = pd.DataFrame({"value": values.to_numpy(), "group": groups.to_numpy()}).dropna()
    by_group = frame.groupby("group")["value"]
    n, variance = by_group.size(), by_group.var(ddof=1)
    replicated = n >= 2
    df = int((n[replicated] - 1).sum())
    if df == 0:
        return Noise(math.nan, 0)
    return Noise(math.sqrt(float(((n[replicated] - 1) * variance[replicated]).sum()) / df), df)


def test_sampling_se(accuracy: float, images: int = TEST_IMAGES) -> float:
    """The binomial standard error of an accuracy measured on `images` test images."""
    if not math.isfinite(accuracy) or not 0 <= accuracy <= 1:
        return math.nan
    return math.sqrt(accuracy * (1 - accuracy) / images)


def external_interval(value: float, n: int, noise: Noise) -> tuple[float, float]:
    """95% interval of a mean test accuracy of `n` seeds, for setting it against a figure
    measured elsewhere: seed noise plus the sampling error of the 10k test images."""
    seed_var = noise.sd ** 2 / n if noise.known and n else 0.0
    se = math.sqrt(seed_var + test_sampling_se(value) ** 2)
    quantile = noise.t() if noise.known else float(stats.norm.ppf(1 - ALPHA / 2))
    return value - quantile * se, value + quantile * se


def rank_correlation(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    """Spearman's rho and its p-value; NaN when either side is constant or too short."""
    pairs = pd.DataFrame({"x": x.to_numpy(), "y": y.to_numpy()}).dropna()
    if len(pairs) < 3 or pairs["x"].nunique() < 2 or pairs["y"].nunique() < 2:
        return math.nan, math.nan
    result = stats.spearmanr(pairs["x"], pairs["y"])
    return float(result.statistic), float(result.pvalue)


def groups_differ(values: pd.Series, groups: pd.Series) -> float:
    """Kruskal-Wallis p-value that the groups' distributions differ; NaN if untestable."""
    frame = pd.DataFrame({"value": values.to_numpy(), "group": groups.to_numpy()}).dropna()
    samples = [g["value"].to_numpy() for _, g in frame.groupby("group")]
    if len(samples) < 2 or frame["value"].nunique() < 2:
        return math.nan
    return float(stats.kruskal(*samples).pvalue)

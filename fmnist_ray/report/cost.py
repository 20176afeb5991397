"""Cost beside accuracy: for an axis whose values change the work, each value's seconds per
trial and parameters against its test accuracy, the Pareto front, and the fastest value not
worse than the chosen one.

"Not worse" is read off the verdicts the page already decided against the chosen value
(`compare`, Holm over the page), so timing never reopens the accuracy statistics: `better`,
`equivalent` and the chosen value itself are not worse; `undecided` is not shown either way.
Times are those of the trials trained in this sweep (reused trials were timed in another run,
on other load), and a sweep whose same setting ran at very different speeds says its cores
were shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from fmnist_ray.report.analysis import completed, reused_from
from fmnist_ray.report.compare import AxisFinding, ValueFinding, describe
from fmnist_ray.report.differences import Difference
from fmnist_ray.report.formatting import format_value, join_words
from fmnist_ray.report.load import SweepResults

# Settings that change the work per image or the batching; lr, optimizer or seed do not.
COST_SETTINGS = ("model", "hidden_sizes", "width", "depth", "batch_size", "precision",
                 "memory_format", "augment_crop", "augment_flip", "augment_erasing", "ema")
CONTENTION = 1.3  # same setting, throughput this many times apart: the cores were shared
# One value is clearly faster than another when every trial of it finished before any trial of
# the other did, and its mean is at least this many times lower: a smaller gap is within what
# two runs of one setting differ by on a quiet machine.
FASTER = 1.1
# Where a value stands on test accuracy against the chosen one, by its verdict: a value can
# only be beaten by one that stands higher, or by one of the chosen value's own class (the
# chosen value and those equivalent to it, among which the choice does not matter). Undecided
# values stand nowhere: they neither dominate nor are dominated.
STANDING = {"better": 2, "chosen": 1, "equivalent": 1, "worse": 0}
NOT_WORSE = ("better", "chosen", "equivalent")
PARETO_RULE = (f"A value is dominated when another is clearly faster (each of its trials "
               f"finished before any of the other's, and at least {FASTER:g}x faster on the "
               f"mean) and not worse on test accuracy by the verdicts against the chosen value "
               f"(better beats equivalent, chosen and worse; equivalent and chosen beat each "
               f"other and worse); undecided values are never dominated and dominate nothing. "
               f"The values no other dominates are Pareto-optimal.")


def changes_cost(results: SweepResults, axis: str) -> bool:
    """Whether an axis's values differ in a setting that changes the cost of training."""
    if axis == "variant":
        trials = results.trials
        return any(c in trials and trials.groupby("variant")[c].first().astype(str).nunique() > 1
                   for c in COST_SETTINGS)
    return axis in COST_SETTINGS or axis == "config"


def contention(trials: pd.DataFrame) -> float:
    """The largest ratio between two trials' throughputs for one configuration (NaN when no
    configuration has two timed trials): above CONTENTION, trials shared cores."""
    speed = trials.dropna(subset=["images_per_second"]).groupby("config")["images_per_second"]
    spread = (speed.max() / speed.min()).dropna()
    return float(spread.max()) if len(spread) else math.nan


@dataclass
class ValueCost:
    """One value: its timed trials' seconds (training and evaluation), its parameters, and its
    test accuracy and verdict as the axis finding has them."""

    value: str
    verdict: str
    timed: int  # completed trials trained in this sweep
    seconds_mean: float
    seconds_sd: float  # over the timed trials (seeds); NaN with one
    seconds_min: float
    seconds_max: float
    params: float  # median over the value's trials (other axes pooled)
    test_accuracy: float
    ci_low: float
    ci_high: float
    versus_chosen: Difference | None = None  # test accuracy, as the axis finding has it
    pareto: bool = False
    dominated_by: str | None = None

    def clearly_faster_than(self, other: ValueCost) -> bool:
        return (self.seconds_max < other.seconds_min
                and self.seconds_mean * FASTER <= other.seconds_mean)

    def dominates(self, other: ValueCost) -> bool:
        mine, theirs = STANDING.get(self.verdict), STANDING.get(other.verdict)
        if mine is None or theirs is None or not self.clearly_faster_than(other):
            return False
        return mine > theirs or mine == theirs == STANDING["chosen"]

    def to_json(self) -> dict:
        return {"value": self.value, "verdict": self.verdict, "timed_trials": self.timed,
                "seconds_mean": self.seconds_mean, "seconds_sd": self.seconds_sd,
                "seconds_range": [self.seconds_min, self.seconds_max],
                "params": round(self.params) if math.isfinite(self.params) else None,
                "test_accuracy": self.test_accuracy,
                "test_accuracy_interval": [self.ci_low, self.ci_high], "pareto": self.pareto,
                "dominated_by": self.dominated_by}


@dataclass
class AxisCost:
    """One cost-changing axis: its values' cost and accuracy, and what that allows."""

    axis: str
    chosen: ValueCost | None
    values: list[ValueCost] = field(default_factory=list)
    contention: float = math.nan  # see `contention`, over the timed trials
    reused: int = 0  # completed trials left out of the times: trained in another sweep
    nodes: int = 1  # machines the timed trials ran on

    @property
    def shared_cores(self) -> bool:
        return math.isfinite(self.contention) and self.contention > CONTENTION

    def speedup(self, value: ValueCost) -> float:
        """How many times faster than the chosen value, on mean seconds per trial."""
        if self.chosen is None or not value.seconds_mean > 0:
            return math.nan
        return self.chosen.seconds_mean / value.seconds_mean

    def fastest_not_worse(self) -> ValueCost | None:
        """The value with the lowest mean seconds among those not worse than the chosen one
        (better, equivalent, or the chosen value itself)."""
        timed = [v for v in self.values if v.verdict in NOT_WORSE and v.timed]
        return min(timed, key=lambda v: v.seconds_mean) if timed else None

    def faster(self, verdict: str) -> list[ValueCost]:
        """Values with `verdict` whose mean seconds are below the fastest not-worse value's."""
        best = self.fastest_not_worse()
        limit = best.seconds_mean if best else math.inf
        return sorted((v for v in self.values if v.verdict == verdict and v.timed
                       and v.seconds_mean < limit), key=lambda v: v.seconds_mean)

    def _brief(self, v: ValueCost) -> dict:
        return {**v.to_json(), "speedup": self.speedup(v),
                "clearly_faster": self.chosen is not None and v.clearly_faster_than(self.chosen)}

    def to_json(self) -> dict:
        best = self.fastest_not_worse()
        return {"axis": self.axis, "chosen": self.chosen.value if self.chosen else None,
                "seconds": "per trial, training and evaluation, over the completed trials "
                           "trained in this sweep",
                "values": [v.to_json() for v in self.values],
                "pareto_rule": PARETO_RULE,
                "fastest_not_worse": self._brief(best) if best else None,
                "faster_but_undecided": [self._brief(v) for v in self.faster("undecided")],
                "faster_but_worse": [self._brief(v) for v in self.faster("worse")],
                "shared_cores": self.shared_cores, "throughput_spread": self.contention,
                "reused_trials_left_out": self.reused, "nodes": self.nodes}

    def _timing(self, v: ValueCost) -> str:
        spread = f" ± {v.seconds_sd:.1f}" if math.isfinite(v.seconds_sd) else ""
        return f"{v.seconds_mean:.1f} s{spread}"

    def _speed(self, v: ValueCost) -> str:
        """E.g. `19.4 s ± 0.5, 1.28x faster`; `within timing noise` unless clearly faster."""
        factor = self.speedup(v)
        if not math.isfinite(factor):
            return self._timing(v)
        clearly = self.chosen is not None and v.clearly_faster_than(self.chosen)
        return (f"{self._timing(v)}, {factor:.2f}x faster"
                + ("" if clearly else " (within timing noise)"))

    def sentence(self) -> str:
        """The axis's cost in one sentence: the fastest value not worse than the chosen one,
        the faster ones that are undecided or worse, the Pareto front, and how far the times
        can be trusted."""
        if self.chosen is None or not self.chosen.timed:
            return (f"Cost by {self.axis}: the chosen value has no trial timed in this sweep, "
                    f"so no value's speed is set against it.")
        best = self.fastest_not_worse()
        what = (f"Cost by {self.axis} (seconds per trial, training and evaluation, mean ± SD "
                f"over seeds): the chosen {self.chosen.value} took {self._timing(self.chosen)}")
        if best is self.chosen:
            what += "; it is itself the fastest value not worse than the choice on test accuracy"
        else:
            what += (f"; the fastest value not worse than it on test accuracy is {best.value} "
                     f"at {self._speed(best)}, test accuracy {describe(best.versus_chosen)}")
        for verdict, label in (("undecided", "faster but undecided (not shown to be not "
                                             "worse)"), ("worse", "faster but worse")):
            found = self.faster(verdict)
            if found:
                what += f"; {label}: " + "; ".join(
                    f"{v.value} at {self._speed(v)}, test accuracy "
                    f"{describe(v.versus_chosen)}" for v in found)
        front = [v.value for v in self.values if v.pareto]
        what += f". Pareto-optimal by the rule under the cost chart: {join_words(front)}"
        beaten = [f"{v.value} (by {v.dominated_by})" for v in self.values if v.dominated_by]
        if beaten:
            what += f"; dominated: {join_words(beaten)}"
        if self.shared_cores:
            what += (f". These times were measured while trials shared cores (one setting ran "
                     f"up to {self.contention:.1f}x faster on one trial than on another), so "
                     f"they measure contention as well as the setting")
        if self.nodes > 1:
            what += (f". The timed trials ran on {self.nodes} Ray nodes (machines, or the "
                     f"same machine in separate runs, such as an extension's)")
        if self.reused:
            what += (f". {self.reused} reused trials are left out of the times (timed in "
                     f"another sweep)")
        return what + "."


def _value_cost(value: ValueFinding, runs: pd.DataFrame) -> ValueCost:
    seconds = runs["seconds"].dropna()
    return ValueCost(value.value, value.verdict, len(seconds), float(seconds.mean()),
                     float(seconds.std(ddof=1)) if len(seconds) > 1 else math.nan,
                     float(seconds.min()) if len(seconds) else math.nan,
                     float(seconds.max()) if len(seconds) else math.nan,
                     float(runs["params"].median()) if runs["params"].notna().any()
                     else math.nan, value.test_accuracy, value.ci_low, value.ci_high,
                     value.versus_chosen)


def axis_cost(results: SweepResults, finding: AxisFinding) -> AxisCost:
    """The cost of each compared value of one axis, with its Pareto mark."""
    done = completed(results.trials).dropna(subset=[results.metric])
    reused = done.index.isin(reused_from(done).index)
    timed = done[~reused]
    labels = timed[finding.axis].map(format_value)
    values = [_value_cost(v, timed[labels == v.value]) for v in finding.values if v.n]
    for v in values:
        # The fastest value that dominates it lies on the front itself (dominance is transitive).
        winner = min((w for w in values if w.dominates(v)), key=lambda w: w.seconds_mean,
                     default=None)
        v.pareto, v.dominated_by = v.timed > 0 and winner is None, winner and winner.value
    chosen = next((v for v in values if v.verdict == "chosen"), None)
    return AxisCost(finding.axis, chosen, values, contention(timed), int(reused.sum()),
                    max(1, int(timed["node_id"].nunique())) if "node_id" in timed else 1)


def axis_costs(results: SweepResults, axes: list[AxisFinding]) -> list[AxisCost]:
    """A cost finding for each compared axis whose values change the work."""
    return [axis_cost(results, a) for a in axes if changes_cost(results, a.axis)
            and sum(v.n > 0 for v in a.values) > 1]

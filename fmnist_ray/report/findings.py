"""A sweep's findings, computed once: the choice, the noise, each axis, failures, overfitting.

The page's sentences, its charts and `findings.json` all read this one object, so what the
page says and what a script reads cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from fmnist_ray.config import Analysis
from fmnist_ray.report.analysis import (
    FAILED,
    chosen,
    config_name,
    learned,
    overfitting_by_trial,
)
from fmnist_ray.report.compare import AxisFinding, axis_sentence, grid_findings
from fmnist_ray.report.cost import AxisCost, axis_costs
from fmnist_ray.report.differences import decide, detectable_difference
from fmnist_ray.report.front import Front, pareto_front
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.overfit import Pair, by_config, sweep_pairs
from fmnist_ray.report.rungs import RungFinding, is_search, search_findings
from fmnist_ray.report.stats import Noise, external_interval, test_sampling_se
from fmnist_ray.results.outcomes import CHANCE_LOSS


@dataclass
class Chosen:
    """The configuration chosen on validation and the test metrics of what was chosen."""

    config: str
    label: str  # e.g. batch_size=64
    trials: int
    validation: float
    test_accuracy: float
    test_loss: float
    interval: tuple[float, float]  # 95%, seed noise plus test-set sampling error
    equivalent_to: list[str] = field(default_factory=list)  # on test, at the margin
    trial_id: str | None = None
    model: str | None = None
    # A search's choice: how it was judged. Confirmed: the figures above are those of
    # `confirmed_seeds` fresh seeds at full length, trained after the search chose it, and
    # `search_test_accuracy` is the search's own figure for it (optimistic: it won partly by
    # luck). Not confirmed: the figures are the search's own, optimistic.
    search: bool = False
    confirmed_seeds: int = 0
    search_test_accuracy: float | None = None


@dataclass
class SweepFindings:
    name: str
    uri: str
    metric: str
    search: bool  # judged at common rungs rather than on final numbers
    margin: float  # accuracy (fraction) below which a difference does not matter
    gap_margin: float  # a loss gap within this of zero is closed
    comparisons: int  # the page's comparisons, over which Holm corrects
    noise: Noise
    test_se: float  # sampling error of one test accuracy on 10k images
    chosen: Chosen | None
    axes: list[AxisFinding] = field(default_factory=list)
    rungs: list[RungFinding] = field(default_factory=list)
    search_notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    overfitting: pd.DataFrame = field(default_factory=pd.DataFrame)
    pairs: list[Pair] = field(default_factory=list)
    looks: int = 1  # analyses the seeds were added for; each tests at alpha / looks
    cost: list[AxisCost] = field(default_factory=list)  # axes whose values change the work
    front: Front | None = None  # a multi-objective search's Pareto front

    def detectable(self) -> float:
        """The smallest difference between two means of the chosen value's seeds that this
        sweep detects with 80% power (pooled seed SD); NaN without replicates."""
        seeds = self.chosen.trials if self.chosen else 0
        return detectable_difference(self.noise.sd, seeds) if self.noise.known else math.nan

    def compared(self) -> int:
        """How many comparisons the page makes, testable or not (one seed makes none
        testable): each axis value against the chosen one, each matched pair's two."""
        return (sum(v.versus_chosen is not None for a in self.axes for v in a.values)
                + 2 * len(self.pairs))

    def undecided(self) -> list[str]:
        """The page's comparisons still undecided, e.g. `batch_size=16` or `dropout 0 → 0.4`."""
        open_values = [f"{a.axis}={v.value}" for a in self.axes for v in a.values
                       if v.versus_chosen is not None and v.verdict == "undecided"]
        open_pairs = [f"{p.context}: {p.key} {p.low} → {p.high} ({what})" for p in self.pairs
                      for what, d in (("gap", p.gap), ("test accuracy", p.accuracy))
                      if d.verdict == "undecided"]
        return open_values + open_pairs

    def to_json(self) -> dict:
        """Plain data for findings.json (NaN as null); accuracies as fractions."""
        seeds = self.chosen.trials if self.chosen else 0
        per_config = by_config(self.overfitting)
        return clean({
            "sweep": self.name, "results": self.uri, "selection": f"{self.metric} (validation)",
            "compared_at_rungs": self.search, "margin": self.margin,
            "margin_points": self.margin * 100, "gap_margin": self.gap_margin,
            "comparisons": self.comparisons, "correction": "holm", "looks": self.looks,
            "noise": {"test_accuracy_sd": self.noise.sd, "df": self.noise.df,
                      "detectable_at_80_percent_power": self.detectable(),
                      "seeds": seeds, "test_sampling_se": self.test_se},
            "chosen": asdict(self.chosen) if self.chosen else None,
            "axes": [{"axis": a.axis, "chosen": a.chosen, "sentence": a.sentence,
                      "values": [v.to_json() for v in a.values]} for a in self.axes],
            "rungs": [r.to_json() for r in self.rungs],
            "failures": self.failures,
            "overfitting": {str(c): r.to_dict() for c, r in per_config.iterrows()},
            "matched_pairs": [p.to_json() for p in self.pairs],
            "cost": [c.to_json() for c in self.cost],
            "front": self.front.to_json() if self.front else None})


def clean(value):
    """`value` as plain JSON data: numpy scalars unwrapped, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _chosen(results: SweepResults, noise: Noise, axes: list[AxisFinding],
            search: bool) -> Chosen | None:
    """The page's figures for `analysis.chosen`'s choice, over the trials its mean pools."""
    choice = chosen(results)
    if choice is None:
        return None
    pool = choice.pool
    search_figure = None
    if choice.confirmed:  # fresh seeds: their own spread is the noise
        values = pool["test_accuracy"].dropna()
        noise = Noise(float(values.std(ddof=1)), len(values) - 1) if len(values) > 1 \
            else Noise(math.nan, 0)
        own = learned(results.trials)
        own = own[own["config"] == choice.config]
        search_figure = float(own["test_accuracy"].mean()) if len(own) else None
    accuracy = float(pool["test_accuracy"].mean())
    same = [v.value for a in axes if len(results.axes) == 1 for v in a.values
            if v.verdict == "equivalent"]
    return Chosen(choice.config, choice.label, len(pool), float(pool[results.metric].mean()),
                  accuracy, float(pool["test_loss"].mean()),
                  external_interval(accuracy, len(pool), noise), same,
                  str(choice.trial["trial_id"]), str(choice.trial["model"]), search,
                  len(pool) if choice.confirmed else 0, search_figure)


def _failure_lines(results: SweepResults) -> list[str]:
    """Each run that failed to learn or diverged: where, and at which epoch."""
    lines = []
    failed = results.trials[results.trials["status"].isin(FAILED)]
    for _, t in failed.iterrows():
        history = results.epochs[results.epochs["trial_id"] == t["trial_id"]]
        who = f"{t['trial_id']} ({config_name(results, t['config'])}, seed {t['seed']:.0f})"
        if t["status"] == "diverged":
            finite = history["train_loss"].dropna()
            peak = f"; training loss up to {finite.max():,.0f}" if len(finite) else ""
            lines.append(f"{who} diverged at epoch {t['epochs_run']:.0f}{peak}")
        else:
            loss = history["val_loss"].dropna()
            at = f", validation loss {loss.iloc[-1]:.2f} (ln 10 = {CHANCE_LOSS:.2f})" \
                if len(loss) else ""
            lines.append(f"{who} failed to learn: best validation accuracy "
                         f"{t['best_val_accuracy']:.3f}, chance 0.10{at}")
    return lines


def analysis_of(results: SweepResults) -> Analysis:
    """The sweep's analysis settings (the defaults for a sweep stored without a spec)."""
    return results.spec.analysis if results.spec is not None else Analysis()


def margin_of(results: SweepResults) -> float:
    """The sweep's equivalence margin as an accuracy fraction (the spec says points)."""
    return analysis_of(results).margin / 100


def sweep_findings(results: SweepResults, looks: int | None = None) -> SweepFindings:
    """Everything the page says, decided once: each comparison's verdict is set over all the
    page's comparisons (Holm), at alpha / `looks` when seeds were added between analyses
    (default: the spec's analysis.looks)."""
    margin = margin_of(results)
    looks = looks or analysis_of(results).looks
    noise, axes = grid_findings(results, margin)
    search = is_search(results)
    rungs, notes = search_findings(results) if search else ([], [])
    per_trial = overfitting_by_trial(results)
    pairs = sweep_pairs(results, per_trial, margin)
    shown = [] if search else axes
    tested = [d for a in shown for d in a.differences()]
    tested += [d for p in pairs for d in (p.gap, p.accuracy)]
    decide(tested, looks=looks)
    decide([d for a in shown for d in a.validation_differences()], looks=looks)
    family = sum(d.testable for d in tested)
    for axis in shown:
        axis.sentence = axis_sentence(axis, margin, family)
    chosen = _chosen(results, noise, shown, search)
    accuracy = chosen.test_accuracy if chosen else math.nan
    return SweepFindings(results.name, results.uri, results.metric, search, margin,
                         analysis_of(results).gap_margin, family,
                         noise, test_sampling_se(accuracy), chosen, shown, rungs, notes,
                         _failure_lines(results), per_trial, pairs, looks,
                         axis_costs(results, shown), pareto_front(results))

"""A sweep's findings, computed once: the choice, the noise, each axis, failures, overfitting.

The page's sentences, its charts and `findings.json` all read this one object, so what the
page says and what a script reads cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from fmnist_ray.report.analysis import (
    FAILED,
    best_config,
    best_trial,
    completed,
    config_name,
    overfitting_by_trial,
)
from fmnist_ray.report.compare import AxisFinding, grid_findings
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.overfit import Pair, sweep_pairs
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
    tied_with: list[str] = field(default_factory=list)
    trial_id: str | None = None
    model: str | None = None


@dataclass
class SweepFindings:
    name: str
    uri: str
    metric: str
    search: bool  # judged at common rungs rather than on final numbers
    noise: Noise
    test_se: float  # sampling error of one test accuracy on 10k images
    chosen: Chosen | None
    axes: list[AxisFinding] = field(default_factory=list)
    rungs: list[RungFinding] = field(default_factory=list)
    search_notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    overfitting: pd.DataFrame = field(default_factory=pd.DataFrame)
    pairs: list[Pair] = field(default_factory=list)

    def to_json(self) -> dict:
        """Plain data for findings.json (NaN as null)."""
        seeds = self.chosen.trials if self.chosen else 0
        per_config = self.overfitting.groupby("config", sort=False).agg(
            trials=("trial_id", "size"), overfit=("overfits", "sum"), gap=("gap", "mean"),
            like_for_like=("like_for_like", "all")) if len(self.overfitting) else pd.DataFrame()
        return _clean({
            "sweep": self.name, "results": self.uri, "selection": f"{self.metric} (validation)",
            "compared_at_rungs": self.search,
            "noise": {"test_accuracy_sd": self.noise.sd, "df": self.noise.df,
                      "least_significant_difference": self.noise.lsd(seeds, seeds),
                      "seeds": seeds, "test_sampling_se": self.test_se},
            "chosen": asdict(self.chosen) if self.chosen else None,
            "axes": [{"axis": a.axis, "chosen": a.chosen, "sentence": a.sentence,
                      "values": [asdict(v) for v in a.values]} for a in self.axes],
            "rungs": [r.to_json() for r in self.rungs],
            "failures": self.failures,
            "overfitting": {str(c): r.to_dict() for c, r in per_config.iterrows()},
            "matched_pairs": [{**{k: v for k, v in asdict(p).items()
                                  if k not in ("gap", "accuracy")},
                               "gap": asdict(p.gap), "test_accuracy": asdict(p.accuracy)}
                              for p in self.pairs]})


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _chosen(results: SweepResults, noise: Noise, axes: list[AxisFinding]) -> Chosen | None:
    config = best_config(results)
    trial = best_trial(results)
    if config is None or trial is None:
        return None
    pool = completed(results.trials)
    pool = pool[pool["config"] == config]
    if pool.empty:  # a search cut short: the chosen trial alone
        pool = results.trials[results.trials["trial_id"] == trial["trial_id"]]
    accuracy = float(pool["test_accuracy"].mean())
    tied = [v.value for a in axes if len(results.axes) == 1 for v in a.values
            if v.verdict == "tied"]
    return Chosen(config, config_name(results, config), len(pool),
                  float(pool[results.metric].mean()), accuracy, float(pool["test_loss"].mean()),
                  external_interval(accuracy, len(pool), noise), tied, str(trial["trial_id"]),
                  str(trial["model"]))


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


def sweep_findings(results: SweepResults) -> SweepFindings:
    noise, axes = grid_findings(results)
    search = is_search(results)
    rungs, notes = search_findings(results) if search else ([], [])
    per_trial = overfitting_by_trial(results)
    chosen = _chosen(results, noise, [] if search else axes)
    pairs = sweep_pairs(results, per_trial)
    accuracy = chosen.test_accuracy if chosen else math.nan
    return SweepFindings(results.name, results.uri, results.metric, search, noise,
                         test_sampling_se(accuracy), chosen, [] if search else axes, rungs,
                         notes, _failure_lines(results), per_trial, pairs)

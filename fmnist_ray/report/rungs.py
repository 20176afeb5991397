"""Search sweeps (ASHA, TPE, random): trials compared only at equal training lengths.

A trial stopped at epoch 3 and one trained for 15 cannot be ranked on their final numbers.
Here every trial that reached a rung is scored by its best validation metric up to that
epoch, and the axes are judged at that rung: a rank correlation for sampled ranges, a
Kruskal-Wallis test for listed values. Stops are told apart by where they happened: at an
ASHA rung, or elsewhere (the time budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from fmnist_ray.report.analysis import learned
from fmnist_ray.report.formatting import count_noun, format_value, join_words
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.stats import ALPHA, groups_differ, rank_correlation

MIN_TRIALS = 4  # a rung is compared only when at least this many trials reached it


def is_search(results: SweepResults) -> bool:
    """A sweep whose trials are single draws or ran unequal lengths (ASHA, a time budget)."""
    stopped = bool((results.trials["status"] == "early_stopped").any())
    return stopped or (results.spec is not None and results.spec.is_search)


def asha_rungs(results: SweepResults) -> list[int]:
    """The epochs where ASHA or HyperBand compare trials (empty without either). HyperBand's
    brackets start at max_t / factor^k epochs (k = 1 .. log_factor(max_t)) and stop trials
    there."""
    spec = results.spec
    if spec is None or not spec.scheduler.stops_early:
        return []
    factor = spec.scheduler.reduction_factor
    if spec.scheduler.type == "hyperband":
        brackets = int(math.log(spec.max_t) / math.log(factor) + 1e-9)
        return sorted({math.ceil(spec.max_t / factor ** k) for k in range(1, brackets + 1)})
    rungs, rung = [], float(spec.scheduler.grace_period)
    while rung < spec.max_t:
        rungs.append(round(rung))
        rung *= spec.scheduler.reduction_factor
    return rungs


def stopper(results: SweepResults) -> str:
    """The scheduler that stops trials at the rungs, as the page names it (ASHA, HyperBand);
    ASHA where the spec is lost."""
    spec = results.spec
    return spec.scheduler.label if spec is not None and spec.scheduler.stops_early else "ASHA"


def rung_scores(results: SweepResults, rung: int) -> pd.DataFrame:
    """The learned trials that reached `rung`, each with `score`: its best validation metric
    up to that epoch."""
    column = "val_loss" if results.metric == "best_val_loss" else "val_accuracy"
    upto = results.epochs[results.epochs["epoch"] <= rung].dropna(subset=[column])
    reached = upto.groupby("trial_id")["epoch"].max()
    reached = reached[reached >= rung].index
    best = upto[upto["trial_id"].isin(reached)].groupby("trial_id")[column]
    scores = best.min() if results.metric == "best_val_loss" else best.max()
    trials = learned(results.trials)
    return trials[trials["trial_id"].isin(scores.index)].assign(
        score=lambda t: t["trial_id"].map(scores))


def comparison_rungs(results: SweepResults) -> dict[int, pd.DataFrame]:
    """The rungs (and the full length) that at least MIN_TRIALS trials reached, each with
    the scores of those trials (`rung_scores`)."""
    ran = learned(results.trials)["epochs_run"]
    full = int(ran.max()) if ran.notna().any() else 0
    candidates = sorted(set(asha_rungs(results) + ([full] if full else [])))
    scored = {r: rung_scores(results, r) for r in candidates}
    return {r: scores for r, scores in scored.items() if len(scores) >= MIN_TRIALS}


def best_at_common_rung(results: SweepResults) -> str | None:
    """The configuration a search ranks first at its deepest common rung (the longest
    training that at least MIN_TRIALS trials reached), never a longer trial against shorter
    ones; None when no rung was reached by that many."""
    rungs = comparison_rungs(results)
    if not rungs:
        return None
    means = rungs[max(rungs)].groupby("config")["score"].mean().dropna()
    if means.empty:
        return None
    return means.idxmax() if results.maximize else means.idxmin()


@dataclass
class RungFinding:
    rung: int
    trials: int
    axes: dict[str, dict] = field(default_factory=dict)  # per axis: test, statistic, p, means
    sentences: list[str] = field(default_factory=list)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # the trials, scored

    def to_json(self) -> dict:
        return {"rung": self.rung, "trials": self.trials, "axes": self.axes,
                "sentences": self.sentences}


def rung_finding(results: SweepResults, rung: int, scores: pd.DataFrame) -> RungFinding:
    metric = "validation loss" if results.metric == "best_val_loss" else "validation accuracy"
    finding = RungFinding(rung, len(scores), scores=scores)
    parts = []
    for axis in results.axes:
        if scores[axis.name].nunique() < 2:
            continue
        if axis.continuous:
            rho, p = rank_correlation(scores[axis.name].astype(float), scores["score"])
            finding.axes[axis.name] = {"test": "spearman", "rho": rho, "p_value": p}
            if math.isfinite(p):
                parts.append(f"{axis.name} Spearman ρ {rho:+.2f} (p = {p:.2f}"
                             f"{'' if p < ALPHA else ': no evidence of an effect'})")
            continue
        labels = scores[axis.name].map(format_value)
        means = scores.groupby(labels)["score"].agg(["mean", "size"])
        means = means.sort_values("mean", ascending=results.metric == "best_val_loss")
        p = groups_differ(scores["score"], labels)
        finding.axes[axis.name] = {
            "test": "kruskal", "p_value": p,
            "means": {v: {"mean": float(r["mean"]), "n": int(r["size"])}
                      for v, r in means.iterrows()}}
        order = ", ".join(f"{v} {r['mean']:.4f} ({r['size']:.0f})" for v, r in means.iterrows())
        verdict = ("no evidence it matters" if not math.isfinite(p) or p >= ALPHA
                   else "the values differ")
        p_text = f"Kruskal-Wallis p = {p:.2f}" if math.isfinite(p) else "untestable"
        parts.append(f"{axis.name}: {order} ({p_text}: {verdict})")
    lead = (f"At epoch {rung} ({count_noun(len(scores), 'trial')} reached it; {metric} "
            f"up to that epoch, mean and trials per value): ")
    if parts:
        finding.sentences.append(lead + "; ".join(parts) + ".")
    return finding


def stop_causes(results: SweepResults) -> dict[str, list[str]]:
    """Early-stopped trials by cause: stopped at an ASHA rung, or elsewhere (a time budget)."""
    rungs = set(asha_rungs(results))
    stopped = results.trials[results.trials["status"] == "early_stopped"]
    at_rung = stopped["epochs_run"].isin(rungs)
    return {"asha": stopped.loc[at_rung, "trial_id"].tolist(),
            "budget": stopped.loc[~at_rung, "trial_id"].tolist()}


def confounds(results: SweepResults, trials: pd.DataFrame) -> list[str]:
    """Listed values that only ever ran together with one value of another varied setting."""
    notes = []
    listed = [a.name for a in results.axes if not a.continuous]
    for a in listed:
        for b in listed:
            if a == b or trials[b].nunique() < 2:
                continue
            together = trials.groupby(trials[a].map(format_value))[b].agg(
                lambda s: s.map(format_value).unique().tolist())
            for value, partners in together.items():
                count = int((trials[a].map(format_value) == value).sum())
                if len(partners) == 1 and count >= 2:
                    notes.append(f"{a}={value} only ever ran with {b}={partners[0]} "
                                 f"({count} trials)")
    return notes[:4]


def search_findings(results: SweepResults) -> tuple[list[RungFinding], list[str]]:
    """Findings at each comparable rung (sentences for the last two), and sentences on stops
    and confounds."""
    rungs = [rung_finding(results, r, scores) for r, scores in comparison_rungs(results).items()]
    for early in rungs[:-2]:
        early.sentences = []  # kept in findings.json; the page states the two longest
    causes = stop_causes(results)
    lines = []
    if causes["asha"] or causes["budget"]:
        budget = (f"; {len(causes['budget'])} cut short by the time budget between rungs"
                  if causes["budget"] else "")
        lines.append(f"{len(causes['asha'])} trials stopped by {stopper(results)} at a "
                     f"rung{budget}. "
                     f"Final numbers of trials of different lengths are not compared; each "
                     f"axis is judged at a common epoch instead.")
    if not rungs:
        lines.append(f"No epoch was reached by {MIN_TRIALS} or more trials that learned: "
                     f"there is no common length to compare the axes at.")
    reached = rungs[-1].scores if rungs else learned(results.trials)
    found = confounds(results, reached)
    if found:
        lines.append("Confounded in these trials (their effects cannot be told apart): "
                     + join_words(found) + ".")
    return rungs, lines

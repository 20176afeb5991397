"""The study's conclusion: each claim of the original study, decided only as far as the data
allow.

Each claim is one or more differences (`differences.welch`) in the direction the claim
predicts, decided together over the index page's comparisons (Holm). A claim is

- *reproduced* when every difference it rests on is `better` (its benefit excludes zero);
- *contradicted* when a difference's 95% interval lies below +margin (the claimed benefit is
  ruled out as large enough to matter) or the opposite is shown; for a reference figure, when
  its interval lies outside the figure ± margin; for "cures overfitting", when a gap remains
  beyond the noise;
- *undecided (needs about N seeds)* otherwise;
- *not testable* when no sweep here can measure it (no such axis, one seed, no matched pair).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from fmnist_ray.report.analysis import choose, completed, config_table
from fmnist_ray.report.claim import LOSS_UNIT, Claim, Shown
from fmnist_ray.report.differences import (
    Difference,
    decide,
    mean_interval,
    seeds_for_interval,
    welch,
)
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.formatting import format_value, join_words, points
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.overfit import by_config, pair_sentence
from fmnist_ray.report.stats import external_interval, test_sampling_se
from fmnist_ray.report.summary import CONVOLUTIONAL, REFERENCE

SMALL_BATCHES = ("32", "64")
LOSS_MARGIN = 0.02  # test loss: a figure within this of the reference's reproduces it


def _untestable(claim: str, why: str, sweep: str | None = None) -> Claim:
    return Claim(claim, sweep, evidence=why)


def _benefits(verdicts: list[Difference]) -> str:
    """Reproduced when all are better, contradicted when any lies below its margin (or is
    worse), else undecided with the seeds the widest would need."""
    if all(d.verdict == "better" for d in verdicts):
        return "reproduced"
    if any(d.verdict == "worse" or (math.isfinite(d.ci_high) and d.ci_high < d.margin)
           for d in verdicts):
        return "contradicted"
    return _undecided(verdicts)


def _undecided(verdicts: list[Difference]) -> str:
    needs = [d.seeds_needed for d in verdicts if d.seeds_needed]
    return f"undecided (needs about {max(needs)} seeds)" if needs else "undecided"


def _effect(d: Difference, scale: float = 100, unit: str = " points", digits: int = 2) -> str:
    if not math.isfinite(d.ci_low):
        return f"{d.difference * scale:+.{digits}f}{unit} (one seed: no interval)"
    return (f"{d.difference * scale:+.{digits}f}{unit} (95% interval "
            f"{d.ci_low * scale:+.{digits}f} to {d.ci_high * scale:+.{digits}f})")


def _find_axis(sweeps: list[SweepResults], found: list[SweepFindings], name: str):
    for sweep, sweep_found in zip(sweeps, found, strict=True):
        if any(a.axis == name for a in sweep_found.axes):
            return sweep, sweep_found
    return None


def _accuracies(sweep: SweepResults, column: str, value: str) -> pd.Series:
    """Test accuracy of the completed trials whose `column` reads `value` (as the page labels
    it)."""
    done = completed(sweep.trials)
    return done[done[column].map(format_value) == value]["test_accuracy"]


def _batch_best(sweeps, found) -> Claim:
    claim = "Batch size 32-64 is best."
    hit = _find_axis(sweeps, found, "batch_size")
    if hit is None:
        return _untestable(claim, "No sweep here varies the batch size on a grid.")
    sweep, sweep_found = hit
    axis = next(a for a in sweep_found.axes if a.axis == "batch_size")
    ranked = [v for v in axis.values if v.n]
    inside = [v for v in ranked if v.value in SMALL_BATCHES]
    outside = [v for v in ranked if v.value not in SMALL_BATCHES]
    if not inside or not outside:
        return _untestable(claim, "The sweep lacks batch sizes inside or outside 32-64.",
                           sweep.name)
    best = max(inside, key=lambda v: v.validation if sweep.maximize else -v.validation)
    mine = _accuracies(sweep, "batch_size", best.value)
    result = Claim(claim, sweep.name)
    for other in outside:
        result.differences.append(welch(mine, _accuracies(sweep, "batch_size", other.value),
                                        sweep_found.margin))
        result.labels.append(f"{best.value} minus {other.value}")

    def judge():
        parts = [f"{best.value} minus {o.value}: {_effect(d)}, {d.verdict}"
                 for o, d in zip(outside, result.differences, strict=True)]
        return _benefits(result.differences), (
            f"Test accuracy of the better of 32-64 on validation ({best.value}) against each "
            f"larger or smaller batch (margin ±{points(sweep_found.margin)} points): "
            + "; ".join(parts) + ".")

    result.judge = judge
    return result


def _gap_claim(claim: str, sweep: str, remaining: tuple[float, float], remaining_mean: float,
               narrowing: list[tuple[str, Difference]], gap_margin: float,
               gap_seeds: int) -> Claim:
    """`claim` that something cures overfitting: it must narrow the gap beyond the noise and
    leave none (the gap left within ±`gap_margin` of zero); a gap that remains beyond
    `gap_margin` contradicts it."""
    result = Claim(claim, sweep, [d for _, d in narrowing],
                   labels=[f"{label}: gap change" for label, _ in narrowing], unit=LOSS_UNIT)
    words = {"better": "narrower", "worse": "wider"}

    def judge():
        low, high = remaining
        changes = "; ".join(f"{label}: gap change {_effect(d, 1, '', 3)}, "
                            f"{words.get(d.verdict, d.verdict)}" for label, d in narrowing)
        left = (f"the gap left is {remaining_mean:.3f} (95% interval {low:.3f} to {high:.3f}; "
                f"closed means within ±{gap_margin:g})" if math.isfinite(low) else
                f"the gap left is {remaining_mean:.3f} (one seed)")
        evidence = f"{changes}; {left}."
        if math.isfinite(low):  # the gap left decides unless a change is worse
            result.shown = Shown("the gap left", LOSS_UNIT, remaining_mean, low, high,
                                 gap_margin)
        narrows = all(d.verdict == "better" for d in result.differences)
        if math.isfinite(low) and low > gap_margin:
            return "contradicted", (("It narrows the gap but does not close it: " if narrows
                                     else "A gap remains: ") + evidence)
        if any(d.verdict == "worse" for d in result.differences):
            result.shown = None  # the change that widens it: `deciding`
            return "contradicted", "The gap widens: " + evidence
        if narrows and math.isfinite(high) and -gap_margin <= low and high <= gap_margin:
            return "reproduced", evidence
        if narrows and math.isfinite(low) and abs(remaining_mean) < gap_margin:
            sd = (high - low) / 2 / stats.t.ppf(0.975, gap_seeds - 1) * math.sqrt(gap_seeds)
            needs = seeds_for_interval(sd, gap_margin - abs(remaining_mean))
            return f"undecided (needs about {needs} seeds)", evidence
        return _undecided(result.differences), evidence

    result.judge = judge
    return result


def _batch_overfitting(sweeps, found) -> Claim:
    claim = "Batch size 32-64 cures overfitting."
    hit = _find_axis(sweeps, found, "batch_size")
    if hit is None:
        return _untestable(claim, "No sweep here varies the batch size on a grid.")
    sweep, sweep_found = hit
    per_trial = sweep_found.overfitting
    if per_trial.empty or not per_trial["like_for_like"].all():
        return _untestable(claim, "The sweep did not measure the training loss in eval mode, "
                           "so its gaps don't compare like with like.", sweep.name)
    inside = per_trial[per_trial["config"].isin(SMALL_BATCHES)]["gap"]
    others = [c for c in by_config(per_trial).index if c not in SMALL_BATCHES]
    if inside.empty or not others:
        return _untestable(claim, "The sweep lacks batch sizes inside or outside 32-64.",
                           sweep.name)
    narrowing = [(f"32-64 against {c}",
                  welch(inside, per_trial[per_trial["config"] == c]["gap"], math.nan,
                        higher_is_better=False)) for c in others]
    return _gap_claim(claim, sweep.name, mean_interval(inside), float(inside.mean()), narrowing,
                      sweep_found.gap_margin, int(inside.count()))


def _dropout(found) -> Claim:
    claim = "Dropout cures overfitting."
    pairs = [(s, p) for s in found for p in s.pairs if p.key == "dropout"]
    if not pairs:
        return _untestable(claim, "No two configurations here differ in dropout alone.")
    if not all(p.like_for_like for _, p in pairs):
        return _untestable(claim, "The training loss was not measured in eval mode, so the "
                           "gaps with and without dropout don't compare like with like.")
    sweeps = join_words(sorted({s.name for s, _ in pairs}))
    worst = max(pairs, key=lambda sp: sp[1].gap_high)[1]
    result = _gap_claim(claim, sweeps, worst.remaining, worst.gap_high,
                        [(f"{p.context} {p.low} → {p.high}", replace(p.gap)) for _, p in pairs],
                        min(s.gap_margin for s, _ in pairs), worst.gap.n_a)
    judge = result.judge

    def with_pairs():
        verdict, evidence = judge()
        return verdict, evidence + " " + "; ".join(pair_sentence(p) for _, p in pairs) + "."

    result.judge = with_pairs
    return result


def _deeper(found) -> Claim:
    claim = "More hidden layers help (same width)."
    pairs = [(s, p) for s in found for p in s.pairs if p.key == "hidden_sizes"]
    if not pairs:
        return _untestable(claim, "No two configurations here differ in depth alone.")
    # Where several sweeps measured depth, the one with the most seeds speaks (chosen by its
    # size, never by its outcome): the others' smaller samples add only looser intervals.
    most = max(min(p.accuracy.n_a, p.accuracy.n_b) for _, p in pairs)
    pairs = [(s, p) for s, p in pairs if min(p.accuracy.n_a, p.accuracy.n_b) == most]
    result = Claim(claim, join_words(sorted({s.name for s, _ in pairs})),
                   [replace(p.accuracy) for _, p in pairs],
                   labels=[f"{p.context}: {p.low} → {p.high}" for _, p in pairs])

    def judge():
        return _benefits(result.differences), "; ".join(
            f"{p.context}: {p.low} → {p.high}: test accuracy {_effect(d)}, {d.verdict}"
            for (_, p), d in zip(pairs, result.differences, strict=True)) + (
            f" (margin ±{points(pairs[0][1].accuracy.margin)} points).")

    result.judge = judge
    return result


def _family_table(sweep: SweepResults) -> pd.DataFrame:
    """`analysis.config_table` with each configuration's model beside it."""
    if "model" not in sweep.trials:
        return pd.DataFrame(columns=["trials", "metric", "test_accuracy", "test_loss", "model"])
    table = config_table(sweep)
    models = sweep.trials.groupby("config")["model"].first()
    return table.assign(model=table.index.map(models)).dropna(subset=["metric"])


def _architectures(sweeps: list[SweepResults], found: list[SweepFindings]) -> list[Claim]:
    cnn_claim = "A CNN beats an MLP."
    deep_claim = "The deep CNN with batch norm is the best architecture."
    accuracy_claim = ("The deep CNN with batch norm reaches test accuracy "
                      f"{REFERENCE['test_accuracy']}.")
    loss_claim = f"The deep CNN with batch norm reaches test loss {REFERENCE['test_loss']}."
    for sweep, sweep_found in zip(sweeps, found, strict=True):
        table = _family_table(sweep)
        if (sweep_found.search or table.empty or table["model"].nunique() < 2
                or table["trials"].max() < 2):
            continue
        margin, maximize = sweep_found.margin, sweep.maximize
        claims = []
        convolutional = table[table["model"].isin(CONVOLUTIONAL)]
        mlp = table[table["model"] == "mlp"]
        if len(convolutional) and len(mlp):
            best_cnn = choose(convolutional, "metric", maximize)
            best_mlp = choose(mlp, "metric", maximize)
            d = welch(_accuracies(sweep, "config", best_cnn),
                      _accuracies(sweep, "config", best_mlp), margin)
            claim = Claim(cnn_claim, sweep.name, [d], labels=[f"{best_cnn} minus {best_mlp}"])
            claim.judge = lambda d=d, a=best_cnn, b=best_mlp: (_benefits([d]), (
                f"Best of each family on validation: {a} minus {b}, test accuracy "
                f"{_effect(d)}, {d.verdict} (margin ±{points(d.margin)} points)."))
            claims.append(claim)
        deep = table[table["model"] == "deep_cnn_bn"]
        if len(deep):
            claims += _deep_claims(sweep, sweep_found, table, deep.index[0],
                                   (deep_claim, accuracy_claim, loss_claim))
        if claims:
            return claims
    untestable = "No grid sweep with seeds compares these architectures."
    return [_untestable(c, untestable) for c in (cnn_claim, deep_claim, accuracy_claim,
                                                 loss_claim)]


def _deep_claims(sweep: SweepResults, found: SweepFindings, table: pd.DataFrame, deep: str,
                 claims: tuple[str, str, str]) -> list[Claim]:
    deep_claim, accuracy_claim, loss_claim = claims
    mine = _accuracies(sweep, "config", deep)
    others = [c for c in table.index if c != deep]
    best = Claim(deep_claim, sweep.name,
                 [welch(mine, _accuracies(sweep, "config", c), found.margin) for c in others],
                 labels=[f"{deep} minus {c}" for c in others])
    best.judge = lambda: (_benefits(best.differences), "; ".join(
        f"{deep} minus {c}: {_effect(d)}, {d.verdict}"
        for c, d in zip(others, best.differences, strict=True))
        + f" (test accuracy, margin ±{points(found.margin)} points).")
    row = table.loc[deep]
    n = int(row["trials"])
    low, high = external_interval(row["test_accuracy"], n, found.noise)
    ref = REFERENCE["test_accuracy"]
    accuracy = Claim(accuracy_claim, sweep.name, [_figure(row["test_accuracy"], low, high, ref,
                                                          found.margin, n)])
    accuracy.shown = Shown.of(f"{deep}: mean {row['test_accuracy']:.4f} minus the study's {ref}",
                              accuracy.differences[0], reference=ref)
    sampling = 1.96 * test_sampling_se(row["test_accuracy"])
    room = found.margin - abs(row["test_accuracy"] - ref)
    verdict = _against_figure(low, high, ref, found.margin)
    if verdict == "undecided" and sampling >= room:
        verdict = "undecided (more seeds cannot decide it)"
        limit = (f" The 10k test images alone give ±{points(sampling)} points at 95%, more than "
                 f"the room left inside the margin ({points(max(room, 0))} points): no number of "
                 f"seeds decides it; only a wider margin or another test set could.")
    elif verdict == "undecided":
        seeds = seeds_for_interval(found.noise.sd, math.sqrt(room ** 2 - sampling ** 2))
        verdict, limit = f"undecided (needs about {seeds} seeds)", ""
    else:
        limit = ""
    accuracy.judge = lambda: (verdict, (
        f"{deep}: mean test accuracy {row['test_accuracy']:.4f} over {n} seeds, 95% interval "
        f"{low:.4f}-{high:.4f} (seed noise and test-set sampling), against the study's {ref} "
        f"± {found.margin:.3f}.{limit}"))
    losses = completed(sweep.trials)
    losses = losses[losses["config"] == deep]["test_loss"]
    loss_low, loss_high = mean_interval(losses)
    if not math.isfinite(loss_low):
        loss_low = loss_high = float(losses.mean())
    ref_loss = REFERENCE["test_loss"]
    loss = Claim(loss_claim, sweep.name, [_figure(row["test_loss"], loss_low, loss_high,
                                                  ref_loss, LOSS_MARGIN, n)])
    loss.shown = Shown.of(f"{deep}: mean {row['test_loss']:.4f} minus the study's {ref_loss}",
                          loss.differences[0], LOSS_UNIT, reference=ref_loss)
    loss.judge = lambda: (_against_figure(loss_low, loss_high, ref_loss, LOSS_MARGIN), (
        f"{deep}: mean test loss {row['test_loss']:.4f} over {n} seeds, 95% interval "
        f"{loss_low:.4f}-{loss_high:.4f} (seed noise only), against the study's {ref_loss} "
        f"± {LOSS_MARGIN}."))
    return [best, accuracy, loss]


def _figure(value: float, low: float, high: float, reference: float, margin: float,
            n: int) -> Difference:
    """A measured figure against a reference figure, as a difference with its interval (its
    verdict is read from the interval against the margin, not tested again)."""
    d = Difference(value - reference, low - reference, high - reference, math.nan, math.nan,
                   margin, n, 0, math.nan)
    d.verdict = _against_figure(low, high, reference, margin)
    return d


def _against_figure(low: float, high: float, reference: float, margin: float) -> str:
    if reference - margin <= low and high <= reference + margin:
        return "reproduced"
    if high < reference - margin or low > reference + margin:
        return "contradicted"
    return "undecided"


def headline(found: list[SweepFindings]) -> dict | None:
    """Across the sweeps, the choice with the best validation accuracy (test never chooses,
    here either), and its test accuracy against the study's 0.931."""
    chosen = [(f.chosen, f.name) for f in found if f.chosen is not None
              and f.metric == "best_val_accuracy" and math.isfinite(f.chosen.validation)]
    if not chosen:
        return None
    best, name = max(chosen, key=lambda c: c[0].validation)
    low, high = best.interval
    ref = REFERENCE["test_accuracy"]
    return {"sweep": name, "config": best.label, "test_accuracy": best.test_accuracy,
            "test_loss": best.test_loss, "interval": [low, high],
            "beats_reference": bool(low > ref),
            "confirmed_seeds": best.confirmed_seeds,
            "text": f"Best chosen on validation across the sweeps: {best.label} in {name}, "
                    f"test accuracy {best.test_accuracy:.4f} (95% interval {low:.4f}-{high:.4f}"
                    + (f", {best.confirmed_seeds} fresh seeds after the search" if
                       best.confirmed_seeds else ", the search's own figure: optimistic"
                       if best.search else "")
                    + f"), test loss {best.test_loss:.4f}: "
                    + (f"{(best.test_accuracy - ref) * 100:+.2f} points over the study's {ref}."
                       if low > ref else f"not beyond the study's {ref} at 95%.")}


def study_verdicts(sweeps: list[SweepResults], found: list[SweepFindings]) -> list[dict]:
    """A verdict with its evidence for each claim of the original study; the claims'
    differences are decided together (Holm over the index page's comparisons)."""
    claims = [_batch_best(sweeps, found), _batch_overfitting(sweeps, found), _dropout(found),
              _deeper(found), *_architectures(sweeps, found)]
    decide([d for c in claims for d in c.differences if np.isfinite(d.p_value)])
    for claim in claims:
        if claim.judge is not None:
            claim.verdict, claim.evidence = claim.judge()
            claim.shown = claim.shown or claim.deciding()
    return [c.to_json() for c in claims]

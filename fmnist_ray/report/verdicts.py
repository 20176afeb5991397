"""The study's conclusion: each claim of the original study, checked against the sweeps.

A claim is *reproduced* when the data support it beyond the seed noise; *contradicted* when
the data show the opposite or show no effect where the sweep could have seen one (the claimed
advantage is smaller than the sweep's least significant difference); *not testable* when no
sweep here can measure it (no such axis, one seed, no matched pair, nothing overfits).
"""

from __future__ import annotations

import math

import pandas as pd

from fmnist_ray.report.analysis import choose, config_table
from fmnist_ray.report.compare import AxisFinding
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.formatting import join_words, points
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.overfit import by_config, gap_noise, pair_sentence
from fmnist_ray.report.stats import compare, external_interval
from fmnist_ray.report.summary import CONVOLUTIONAL, REFERENCE

SMALL_BATCHES = ("32", "64")


def _verdict(claim: str, verdict: str, evidence: str, sweep: str | None = None) -> dict:
    return {"claim": claim, "verdict": verdict, "evidence": evidence, "sweep": sweep}


def _axis(found: list[SweepFindings], name: str) -> tuple[SweepFindings, AxisFinding] | None:
    for sweep in found:
        for axis in sweep.axes:
            if axis.axis == name:
                return sweep, axis
    return None


def _batch_best(found: list[SweepFindings]) -> dict:
    claim = "Batch size 32-64 is best."
    hit = _axis(found, "batch_size")
    if hit is None:
        return _verdict(claim, "not testable", "No sweep here varies the batch size on a grid.")
    sweep, axis = hit
    if not sweep.noise.known:
        return _verdict(claim, "not testable", "One seed per batch size: no difference can be "
                        "called real.", sweep.name)
    ranked = {v.value: v for v in axis.values if v.n}
    inside = [v for k, v in ranked.items() if k in SMALL_BATCHES]
    outside = [v for k, v in ranked.items() if k not in SMALL_BATCHES]
    if not inside or not outside:
        return _verdict(claim, "not testable", "The sweep lacks batch sizes inside or outside "
                        "32-64.", sweep.name)
    evidence = axis.sentence
    if axis.chosen in SMALL_BATCHES and all(v.verdict == "worse" for v in outside):
        return _verdict(claim, "reproduced", evidence, sweep.name)
    as_good = [v.value for v in outside if v.verdict in ("chosen", "tied", "better")]
    lead = (f"{join_words(as_good)} did as well as or better than 32-64 (within the noise or "
            f"beyond it). " if as_good else "")
    return _verdict(claim, "contradicted", lead + evidence, sweep.name)


def _batch_overfitting(found: list[SweepFindings]) -> dict:
    claim = "Batch size 32-64 cures overfitting."
    hit = _axis(found, "batch_size")
    if hit is None:
        return _verdict(claim, "not testable", "No sweep here varies the batch size on a grid.")
    sweep = hit[0]
    per_trial = sweep.overfitting
    if per_trial.empty or not per_trial["like_for_like"].all():
        return _verdict(claim, "not testable", "The sweep did not measure the training loss in "
                        "eval mode, so its gaps don't compare like with like.", sweep.name)
    table = by_config(per_trial)
    counts = "; ".join(f"{c}: {r.overfit:.0f} of {r.n:.0f}, gap {r.gap:.3f}"
                       for c, r in table.iterrows())
    noise = gap_noise(per_trial)
    evidence = (f"Trials that overfit and the last-epoch gap (eval mode; seed SD "
                f"{noise.sd:.3f}), by batch size: {counts}.")
    if table["overfit"].sum() == 0:
        return _verdict(claim, "not testable", "Nothing overfits in this sweep, so there is "
                        "nothing to cure. " + evidence, sweep.name)
    inside = table[table.index.isin(SMALL_BATCHES)]
    outside = table[~table.index.isin(SMALL_BATCHES)]
    cured = inside["overfit"].sum() == 0 and outside["overfit"].sum() > 0 and (
        inside["gap"].max() + noise.lsd(2, 2) < outside["gap"].max() if noise.known else False)
    return _verdict(claim, "reproduced" if cured else "contradicted", evidence, sweep.name)


def _pair_claim(found: list[SweepFindings], claim: str, key: str, on: str) -> dict:
    pairs = [(s.name, p) for s in found for p in s.pairs if p.key == key]
    if not pairs:
        return _verdict(claim, "not testable", f"No two configurations here differ in {key} "
                        f"alone.")
    evidence = "; ".join(f"{pair_sentence(p)} [{name}]" for name, p in pairs) + "."
    sweeps = join_words(sorted({name for name, _ in pairs}))
    if on == "accuracy":
        verdicts = {p.accuracy.verdict for _, p in pairs}
        if verdicts == {"no claim"}:
            return _verdict(claim, "not testable", "One seed: " + evidence, sweeps)
        return _verdict(claim, "reproduced" if verdicts == {"better"} else "contradicted",
                        evidence, sweeps)
    if not all(p.like_for_like for _, p in pairs):
        return _verdict(claim, "not testable", "The training loss was not measured in eval "
                        "mode, so the gaps with and without dropout don't compare like with "
                        "like. " + evidence, sweeps)
    testable = [p for _, p in pairs if not p.overfit_low.startswith("0 ")]
    if not testable:
        return _verdict(claim, "not testable", "Without dropout nothing overfits here, so "
                        "there is nothing to cure. " + evidence, sweeps)
    cured = all(p.gap.verdict == "better" for p in testable)
    return _verdict(claim, "reproduced" if cured else "contradicted", evidence, sweeps)


def _family_table(sweep: SweepResults) -> pd.DataFrame:
    table = config_table(sweep)
    models = sweep.trials.groupby("config")["model"].first()
    return table.assign(model=table.index.map(models)).dropna(subset=["metric"])


def _architectures(sweeps: list[SweepResults], found: list[SweepFindings]) -> list[dict]:
    cnn_claim = "A CNN beats an MLP."
    deep_claim = (f"The deep CNN with batch norm is best, at test accuracy "
                  f"{REFERENCE['test_accuracy']} / loss {REFERENCE['test_loss']}.")
    for sweep, sweep_found in zip(sweeps, found, strict=True):
        table = _family_table(sweep)
        if sweep_found.search or not sweep_found.noise.known or table["model"].nunique() < 2:
            continue
        noise, maximize = sweep_found.noise, sweep.maximize
        convolutional = table[table["model"].isin(CONVOLUTIONAL)]
        mlp = table[table["model"] == "mlp"]
        verdicts = []
        if len(convolutional) and len(mlp):
            best_cnn = convolutional.loc[choose(convolutional, "metric", maximize)]
            best_mlp = mlp.loc[choose(mlp, "metric", maximize)]
            result = compare(best_cnn["test_accuracy"], int(best_cnn["trials"]),
                             best_mlp["test_accuracy"], int(best_mlp["trials"]), noise)
            verdicts.append(_verdict(
                cnn_claim, "reproduced" if result.verdict == "better" else "contradicted",
                f"Best of each family on validation: {best_cnn.name} test "
                f"{best_cnn['test_accuracy']:.4f} against {best_mlp.name} "
                f"{best_mlp['test_accuracy']:.4f}: {result.difference * 100:+.2f} points "
                f"(noise {points(result.lsd)}).", sweep.name))
        deep = table[table["model"] == "deep_cnn_bn"]
        if len(deep):
            verdicts.append(_deep_verdict(deep_claim, table, deep, sweep_found, maximize))
        if verdicts:
            return verdicts
    untestable = "No grid sweep with seeds compares these architectures."
    return [_verdict(cnn_claim, "not testable", untestable),
            _verdict(deep_claim, "not testable", untestable)]


def _deep_verdict(claim: str, table: pd.DataFrame, deep: pd.DataFrame, found: SweepFindings,
                  maximize: bool) -> dict:
    noise = found.noise
    chosen = choose(table, "metric", maximize)
    row = deep.iloc[0]
    others = table.drop(deep.index)
    against = {name: compare(row["test_accuracy"], int(row["trials"]), other["test_accuracy"],
                             int(other["trials"]), noise) for name, other in others.iterrows()}
    ahead = all(c.verdict == "better" for c in against.values())
    low, high = external_interval(row["test_accuracy"], int(row["trials"]), noise)
    ref = REFERENCE["test_accuracy"]
    place = "above" if low > ref else "below" if high < ref else "consistent with"
    close = [n for n, c in against.items() if c.verdict != "better"]
    evidence = (f"{deep.index[0]}: test accuracy {row['test_accuracy']:.4f} (95% interval "
                f"{low:.4f}-{high:.4f}, {place} the study's {ref}), test loss "
                f"{row['test_loss']:.4f} (study: {REFERENCE['test_loss']}); chosen on "
                f"validation: {chosen}; "
                + (f"ahead of every other architecture beyond the noise "
                   f"({points(noise.lsd(2, 2))} points)." if ahead else
                   f"not ahead of {join_words(close)} beyond the noise "
                   f"({points(noise.lsd(2, 2))} points)."))
    verdict = "reproduced" if ahead and chosen == deep.index[0] else "contradicted"
    return _verdict(claim, verdict, evidence, found.name)


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
            "text": f"Best chosen on validation across the sweeps: {best.label} in {name}, "
                    f"test accuracy {best.test_accuracy:.4f} (95% interval {low:.4f}-{high:.4f})"
                    f", test loss {best.test_loss:.4f}: "
                    + (f"{(best.test_accuracy - ref) * 100:+.2f} points over the study's {ref}."
                       if low > ref else f"not beyond the study's {ref} at 95%.")}


def study_verdicts(sweeps: list[SweepResults], found: list[SweepFindings]) -> list[dict]:
    """A verdict with its evidence for each claim of the original study."""
    return [_batch_best(found), _batch_overfitting(found),
            _pair_claim(found, "Dropout cures overfitting.", "dropout", "gap"),
            _pair_claim(found, "More hidden layers help (same width).", "hidden_sizes",
                        "accuracy"),
            *_architectures(sweeps, found)]

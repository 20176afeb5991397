"""Findings on synthetic result tables with known effects: what is real, what is noise.

Each table is written in the sweep's exact tidy format (`exports.trial_row` / `epoch_row`), with
effects planted at a known size against a known seed noise, and read back by the report.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from fmnist_ray.report import build_report, load_results, summarize
from fmnist_ray.report.analysis import best_config, best_trial
from fmnist_ray.report.differences import decide, welch
from fmnist_ray.report.findings import sweep_findings
from fmnist_ray.report.stats import Noise, pooled_noise
from fmnist_ray.report.verdicts import study_verdicts
from fmnist_ray.results import exports
from fmnist_ray.results.outcomes import failed_to_learn

from .test_report import epoch, page_specs, trial, write_sweep

SD = 0.002  # the planted seed-to-seed noise of test accuracy: 0.2 points
OFFSETS = (-1.0, 1.0, -0.5, 0.5)  # seed deviations in units of SD: sample SD about SD


def grid(directory, effects: dict[int, float], seeds: int = 2, validation=None,
         name: str = "grid", histories=None, **settings) -> str:
    """A batch-size grid: value -> mean test accuracy; seeds scatter it by about SD.

    `validation` (value -> mean validation accuracy) defaults to the test means, so both agree;
    `histories` (value -> function of seed giving epoch rows) overrides the default curve.
    """
    spec = {"name": name, "trial": {"model": "mlp", "epochs": 3, **settings},
            "axes": {"batch_size": list(effects)}, "seeds": seeds}
    rows = []
    for size, accuracy in effects.items():
        for seed in range(seeds):
            noise = OFFSETS[seed] * SD / (math.sqrt(2) if seeds == 2 else 1)
            val = (validation or effects)[size] + noise / 2
            history = (histories[size](seed) if histories else
                       [epoch(n, 0.6 - 0.1 * n, 0.5 - 0.05 * n, val - 0.01 * (3 - n),
                              train_eval_loss=0.55 - 0.1 * n) for n in (1, 2, 3)])
            rows.append(trial(f"b{size}_{seed}", history, test_accuracy=accuracy + noise,
                              test_loss=1.2 - accuracy, batch_size=size, seed=seed, epochs=3,
                              model="mlp", **settings))
    return write_sweep(directory, spec, rows)


def verdicts_of(finding) -> dict[str, str]:
    return {v.value: v.verdict for v in finding.values}


def test_a_difference_and_its_interval_match_scipys_welch_test():
    a, b = pd.Series([0.880, 0.884, 0.879]), pd.Series([0.886, 0.891, 0.889, 0.893])
    d = welch(b, a, margin=0.005)
    reference = scipy_stats.ttest_ind(b, a, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert d.difference == pytest.approx(b.mean() - a.mean())
    assert d.p_value == pytest.approx(reference.pvalue)
    assert (d.ci_low, d.ci_high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    decide([d])
    assert d.verdict == ("better" if reference.pvalue < 0.05 else "undecided")


def test_a_difference_of_many_sds_is_worse_and_a_tiny_one_equivalent(tmp_path):
    # 64 chosen; 128 is 0.1 points below (inside the 0.5-point margin); 16 is 2 points below
    found = sweep_findings(load_results(grid(tmp_path / "g", {16: 0.86, 64: 0.88, 128: 0.879},
                                             seeds=4)))
    assert found.noise.df == 9 and found.noise.sd == pytest.approx(SD, rel=0.3)
    assert verdicts_of(found.axes[0]) == {"16": "worse", "64": "chosen", "128": "equivalent"}
    sentence = found.axes[0].sentence
    assert sentence.startswith("batch_size: chosen 64 on validation; on test accuracy against "
                               "it (margin ±0.50 points, Holm over 2 comparisons): 16 worse "
                               "(-2.00 points, 95% interval ")
    assert "128 equivalent (-0.10 points" in sentence
    assert found.chosen.equivalent_to == ["128"]


def test_two_seeds_leave_a_small_difference_undecided_and_say_how_many_would_decide(tmp_path):
    found = sweep_findings(load_results(grid(tmp_path / "g", {64: 0.88, 128: 0.877})))
    (compared,) = [v for v in found.axes[0].values if v.value == "128"]
    assert compared.verdict == "undecided"
    assert compared.versus_chosen.seeds_needed >= 3
    assert f"needs about {compared.versus_chosen.seeds_needed} seeds per value" in \
        found.axes[0].sentence


def test_one_seed_makes_no_claim(tmp_path):
    found = sweep_findings(load_results(grid(tmp_path / "g", {16: 0.80, 64: 0.88}, seeds=1)))
    assert not found.noise.known
    assert verdicts_of(found.axes[0]) == {"16": "undecided", "64": "chosen"}
    assert "one seed per value, so every difference is undecided" in found.axes[0].sentence


def test_selection_never_reads_test_columns(tmp_path):
    # Validation prefers 64; test prefers 128 by 2 points: 64 is still the choice, and the
    # disagreement is reported, never acted on.
    uri = grid(tmp_path / "g", {64: 0.86, 128: 0.88}, validation={64: 0.90, 128: 0.87})
    loaded = load_results(uri)
    found = sweep_findings(loaded)
    assert found.chosen.label == "batch_size=64"
    assert best_trial(loaded)["batch_size"] == 64
    assert verdicts_of(found.axes[0])["128"] == "better"
    assert "Validation and test disagree" in found.axes[0].sentence
    # Scrambling every test column changes nothing that is chosen.
    scrambled = loaded.trials.copy()
    scrambled[["test_accuracy", "test_loss"]] = scrambled[["test_accuracy", "test_loss"]].values[
        ::-1]
    loaded.trials = scrambled
    assert best_config(loaded) == "64" and best_trial(loaded)["batch_size"] == 64


def test_a_chance_level_trial_is_failed_to_learn(tmp_path):
    assert failed_to_learn(0.101) and failed_to_learn(0.149) and not failed_to_learn(0.2)
    assert not failed_to_learn(None) and not failed_to_learn(math.nan)
    assert exports.trial_status("TERMINATED", {"epoch": 3, "best_val_accuracy": 0.1}, 3) == \
        "failed_to_learn"
    assert exports.trial_status("TERMINATED", {"epoch": 3, "best_val_accuracy": 0.8}, 3) == \
        "completed"
    # An export from before the status existed says `completed`: the report corrects it.
    stuck = [epoch(n, 2.303, 2.302, 0.1) for n in (1, 2, 3)]
    rows = [trial("ok", [epoch(1, 0.5, 0.4, 0.85)], test_accuracy=0.84, test_loss=0.4, lr=0.001),
            trial("stuck", stuck, "completed", 0.1, 2.30, lr=0.1)]
    spec = {"name": "lr", "trial": {"epochs": 3}, "axes": {"lr": [0.001, 0.1]}}
    loaded = load_results(write_sweep(tmp_path / "lr", spec, rows))
    assert dict(zip(loaded.trials["trial_id"], loaded.trials["status"], strict=True)) == {
        "ok": "completed", "stuck": "failed_to_learn"}
    found = sweep_findings(loaded)
    assert verdicts_of(found.axes[0])["0.1"] == "failed_to_learn"
    assert "stuck (lr=0.1, seed 0) failed to learn: best validation accuracy 0.100" in \
        found.failures[0]


def test_a_diverged_trial_does_not_set_a_shared_scale(tmp_path):
    blown = [epoch(1, 0.9, 0.8, 0.7), epoch(2, 1.5e3, 2e3, 0.1)]
    rows = [trial(f"ok{s}", [epoch(n, 0.5 / n, 0.4 / n, 0.8 + 0.01 * n) for n in (1, 2, 3)],
                  test_accuracy=0.85, test_loss=0.4, lr=0.001, seed=s) for s in (0, 1)]
    rows.append(trial("blown", blown, "diverged", lr=1.0))
    spec = {"name": "lr", "trial": {"epochs": 3}, "axes": {"lr": [0.001, 1.0]}, "seeds": 2}
    page = build_report([write_sweep(tmp_path / "lr", spec, rows)],
                        tmp_path / "r.html").read_text()
    shared = [s for s in page_specs(page) if any(
        t in json.dumps(s.get("title", "")) for t in ("Validation loss", "Training vs validation",
                                                      "Generalisation gap"))]
    assert len(shared) == 3
    for chart in shared:
        assert "blown" not in json.dumps(chart["datasets"])  # off the shared scale...
    failed = [s for s in page_specs(page) if "failed runs" in json.dumps(s.get("title", ""))]
    assert "blown" in json.dumps(failed[0]["datasets"])  # ...and drawn on its own
    assert "blown (lr=1, seed 0) diverged at epoch 2; training loss up to 1,500" in page


def overfitting_history(overfits: bool, seed: int, level: float = 0.85) -> list[dict]:
    """Eight epochs; validation loss turns up after epoch 3 when `overfits` (noise ±0.003);
    validation accuracy climbs to `level` + 0.015."""
    jitter = 0.003 * (-1) ** seed
    val = [0.40, 0.34, 0.31, 0.32, 0.35, 0.38, 0.41, 0.44] if overfits else \
        [0.42, 0.37, 0.34, 0.33, 0.325, 0.32, 0.318, 0.316]
    step = 0.04 if overfits else 0.012
    train = [0.40 - step * n for n in range(8)]
    return [epoch(n + 1, train[n] + 0.05, val[n] + jitter, level + 0.005 * min(n, 3),
                  train_eval_loss=train[n]) for n in range(8)]


def test_dropout_is_credited_only_from_a_matched_pair_with_its_cost(tmp_path):
    spec = {"name": "arch", "trial": {"model": "mlp", "epochs": 8}, "seeds": 2,
            "variants": [{"name": "plain", "hidden_sizes": [512, 512]},
                         {"name": "dropout", "hidden_sizes": [512, 512], "dropout": 0.3},
                         {"name": "cnn", "model": "cnn"}]}
    rows = []
    for seed in (0, 1):
        noise = OFFSETS[seed] * SD / math.sqrt(2)
        rows += [trial(f"p{seed}", overfitting_history(True, seed), test_accuracy=0.885 + noise,
                       test_loss=0.33, variant="plain", model="mlp", hidden_sizes=[512, 512],
                       seed=seed, epochs=8),
                 trial(f"d{seed}", overfitting_history(False, seed), test_accuracy=0.875 + noise,
                       test_loss=0.35, variant="dropout", model="mlp", hidden_sizes=[512, 512],
                       dropout=0.3, seed=seed, epochs=8),
                 trial(f"c{seed}", overfitting_history(False, seed, 0.9),
                       test_accuracy=0.92 + noise,
                       test_loss=0.25, variant="cnn", model="cnn", seed=seed, epochs=8)]
    uri = write_sweep(tmp_path / "arch", spec, rows)
    loaded = load_results(uri)
    found = sweep_findings(loaded)
    (pair,) = [p for p in found.pairs if p.key == "dropout"]
    assert pair.gap.verdict == "better" and pair.accuracy.verdict == "worse"
    assert pair.gap.difference == pytest.approx(-0.32, abs=1e-3)
    verdicts = {v["claim"]: v for v in study_verdicts([loaded], [found])}
    dropout = verdicts["Dropout cures overfitting."]
    # Narrower beyond the noise, but with two seeds the gap left (0.000 ± 0.003) has an
    # interval wider than ±0.02: whether it closed is undecided.
    assert dropout["verdict"].startswith("undecided (needs about ")
    assert ("mlp 512-512: dropout 0 → 0.3: gap 0.320 → 0.000 (change -0.320, 95% interval "
            in dropout["evidence"])
    assert "test accuracy -1.00 points, 95% interval" in dropout["evidence"]
    assert verdicts["A CNN beats an MLP."]["verdict"] == "reproduced"
    assert verdicts["Batch size 32-64 is best."]["verdict"] == "not testable"
    assert dropout["effect"]["verdict"] == "better" and dropout["effect"]["interval"][1] < 0
    # the report writes the same findings for scripts
    build_report([uri], tmp_path / "out" / "arch.html")
    written = json.loads((tmp_path / "out" / "arch.findings.json").read_text())
    assert written["chosen"]["label"] == "variant=cnn"
    values = {v["value"]: v for v in written["axes"][0]["values"]}
    assert {k: v["verdict"] for k, v in values.items()} == {
        "plain": "worse", "dropout": "worse", "cnn": "chosen"}
    for compared in (values["plain"], values["dropout"]):
        assert compared["margin"] == 0.005 and compared["difference"] < 0
        assert compared["interval"][0] < compared["difference"] < compared["interval"][1]
    assert written["matched_pairs"][0]["gap"]["verdict"] == "better"


def test_a_gap_that_narrows_but_remains_does_not_cure(tmp_path):
    spec = {"name": "arch", "trial": {"model": "mlp", "epochs": 8}, "seeds": 3,
            "variants": [{"name": "plain", "hidden_sizes": [512]},
                         {"name": "dropout", "hidden_sizes": [512], "dropout": 0.3}]}
    rows = []
    for seed in (0, 1, 2):
        for name, dropout, gap in (("plain", 0.0, 0.30), ("dropout", 0.3, 0.15)):
            history = [epoch(n, 0.5, 0.5 + gap + 0.01 * seed, 0.85,
                             train_eval_loss=0.5) for n in (1, 2, 3)]
            rows.append(trial(f"{name}{seed}", history, test_accuracy=0.88 + 0.001 * seed,
                              test_loss=0.33, variant=name, model="mlp", hidden_sizes=[512],
                              dropout=dropout, seed=seed, epochs=3))
    loaded = load_results(write_sweep(tmp_path / "arch", spec, rows))
    verdict = {v["claim"]: v for v in study_verdicts([loaded], [sweep_findings(loaded)])}[
        "Dropout cures overfitting."]
    assert verdict["verdict"] == "contradicted"
    assert verdict["evidence"].startswith("It narrows the gap but does not close it: ")
    assert "the gap left is 0.160 (95% interval 0.135 to 0.185; closed means within ±0.02)" \
        in verdict["evidence"]


def test_batch_claims_are_judged_from_the_batch_sweep(tmp_path):
    effects = {16: 0.870, 32: 0.880, 64: 0.881, 128: 0.8805, 512: 0.865}
    histories = {size: (lambda seed, s=size: overfitting_history(s not in (32, 64), seed))
                 for size in effects}
    loaded = load_results(grid(tmp_path / "b", effects, seeds=4, histories=histories))
    found = sweep_findings(loaded)
    verdicts = {v["claim"]: v for v in study_verdicts([loaded], [found])}
    best = verdicts["Batch size 32-64 is best."]
    assert best["verdict"] == "contradicted"  # 128 is as good: its benefit is ruled out
    assert "32 minus 128: -0.05 points (95% interval" in best["evidence"]
    cured = verdicts["Batch size 32-64 cures overfitting."]
    assert cured["verdict"] == "reproduced"  # narrower than every other size, and closed
    assert "the gap left is 0.000 (95% interval -0.003 to 0.003" in cured["evidence"]


def test_noise_without_replicates_is_unknown():
    noise = pooled_noise(pd.Series([0.8, 0.9]), pd.Series(["a", "b"]))
    assert noise == Noise(math.nan, 0) or (math.isnan(noise.sd) and noise.df == 0)
    d = welch([0.9], [0.8], 0.005)
    decide([d])
    assert d.verdict == "undecided" and math.isnan(d.ci_low)


# ---- real sweeps: the study's first batch-size and optimizer runs (2 seeds, full dataset) ----

REAL = Path(__file__).parent / "data"


@pytest.mark.parametrize("sweep", ["batch_size-2026-11-24", "optimizer-2026-11-24"])
def test_real_two_seed_runs_call_nothing_better_or_worse(sweep):
    loaded = load_results(str(REAL / sweep))
    found = sweep_findings(loaded)
    verdicts = set(verdicts_of(found.axes[0]).values())
    assert verdicts <= {"chosen", "equivalent", "undecided"}, verdicts
    assert "margin ±0.50 points" in found.axes[0].sentence
    text = "\n".join(summarize(loaded, found))
    assert "tied" not in text and not re.search(r"\bbest\b(?!-)", text.replace("best val", ""))


def test_the_study_headline_is_chosen_on_validation_across_sweeps(tmp_path):
    from fmnist_ray.report.verdicts import headline

    picked = load_results(grid(tmp_path / "a", {64: 0.86}, validation={64: 0.90}, name="a"))
    other = load_results(grid(tmp_path / "b", {64: 0.88}, validation={64: 0.87}, name="b"))
    top = headline([sweep_findings(picked), sweep_findings(other)])
    assert top["sweep"] == "a" and top["test_accuracy"] == pytest.approx(0.86)

"""The verdicts' error rates, by simulation against known truths (Ray-free, seconds).

Thousands of comparisons are drawn from known seed distributions (seed SD 0.25 accuracy
points, the study's margin of 0.5 points) and decided exactly as a report decides them. Each
test prints its measured rate with its Monte Carlo standard error.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

from fmnist_ray.report.differences import SeedPlan, decide, seeds_needed, welch

SD = 0.0025  # seed-to-seed SD of test accuracy: 0.25 points
MARGIN = 0.005  # 0.5 points
RUNS = 1000


@pytest.fixture(autouse=True)
def _quick_collections():
    # statsmodels' Holm correction calls gc.collect(); with the test process's objects frozen
    # each collection is quick.
    gc.freeze()
    yield
    gc.unfreeze()


def _rate(hits: int, runs: int, label: str) -> float:
    rate = hits / runs
    print(f"{label}: {rate:.4f} (Monte Carlo SE {math.sqrt(rate * (1 - rate) / runs):.4f}, "
          f"{runs} runs)")
    return rate


def _bound(rate: float, runs: int) -> float:
    """`rate` plus three Monte Carlo standard errors."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / runs)


def _draw(rng, effect: float, seeds: int):
    return rng.normal(0.9 + effect, SD, seeds), rng.normal(0.9, SD, seeds)


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_no_effect_is_called_better_or_worse_at_most_5_percent(seeds):
    rng = np.random.default_rng(seeds)
    wrong = 0
    for _ in range(RUNS):
        d = welch(*_draw(rng, 0.0, seeds), MARGIN)
        decide([d])
        wrong += d.verdict in ("better", "worse")
    assert _rate(wrong, RUNS, f"no effect, {seeds} seeds, better/worse") <= _bound(0.05, RUNS)


def test_a_page_of_six_null_comparisons_makes_a_false_finding_at_most_5_percent():
    rng = np.random.default_rng(6)
    runs, wrong = RUNS // 2, 0
    for _ in range(runs):
        page = [welch(*_draw(rng, 0.0, 3), MARGIN) for _ in range(6)]
        decide(page)
        wrong += any(d.verdict in ("better", "worse") for d in page)
    assert _rate(wrong, runs, "no effect, 6 comparisons (Holm), any better/worse") <= \
        _bound(0.05, runs)


def test_a_planted_one_point_effect_is_detected_at_the_seeds_the_power_analysis_asks_for():
    effect = 0.01
    seeds = seeds_needed(SD, MARGIN, difference=effect)
    print(f"seeds asked for a 1-point effect at SD 0.25 points: {seeds}")
    rng = np.random.default_rng(1)
    found = 0
    for _ in range(RUNS):
        d = welch(*_draw(rng, effect, seeds), MARGIN)
        decide([d])
        found += d.verdict == "better"
    assert _rate(found, RUNS, f"1-point effect, {seeds} seeds, better") >= 0.8


def test_no_effect_with_enough_seeds_is_equivalent():
    seeds = seeds_needed(SD, MARGIN)
    print(f"seeds asked for at no effect: {seeds}")
    rng = np.random.default_rng(2)
    same = 0
    for _ in range(RUNS):
        d = welch(*_draw(rng, 0.0, seeds), MARGIN)
        decide([d])
        same += d.verdict == "equivalent"
    assert _rate(same, RUNS, f"no effect, {seeds} seeds, equivalent") >= 0.8


def test_an_effect_of_twice_the_margin_is_never_called_equivalent():
    rng = np.random.default_rng(3)
    wrong = 0
    for _ in range(RUNS):
        d = welch(*_draw(rng, 2 * MARGIN, 4), MARGIN)
        decide([d])
        wrong += d.verdict == "equivalent"
    assert _rate(wrong, RUNS, "1-point effect, 4 seeds, equivalent") <= _bound(0.05, RUNS)


def until_decided(rng, effect: float, plan: SeedPlan) -> tuple[str, int]:
    """The `--until-decided` procedure on one simulated comparison: look, add seeds while
    undecided, stop when decided or the plan is spent. Returns the verdict and seeds used."""
    a, b = _draw(rng, effect, plan.maximum)
    seeds = plan.start
    while True:
        d = welch(a[:seeds], b[:seeds], MARGIN)
        decide([d], looks=plan.looks)
        following = plan.next(seeds)
        if d.verdict != "undecided" or following is None:
            return d.verdict, seeds
        seeds = following


def test_until_decided_keeps_its_error_rate_over_all_its_looks():
    plan = SeedPlan(start=2, step=2, maximum=12)
    rng = np.random.default_rng(4)
    outcomes = [until_decided(rng, 0.0, plan) for _ in range(RUNS)]
    wrong = sum(v in ("better", "worse") for v, _ in outcomes)
    same = sum(v == "equivalent" for v, _ in outcomes)
    _rate(same, RUNS, f"until-decided, no effect, {plan.looks} looks, equivalent")
    assert _rate(wrong, RUNS, f"until-decided, no effect, {plan.looks} looks, better/worse") \
        <= _bound(0.05, RUNS)
    planted = [until_decided(rng, 0.01, plan) for _ in range(RUNS)]
    found = sum(v == "better" for v, _ in planted)
    print(f"until-decided, 1-point effect: mean seeds used "
          f"{np.mean([s for _, s in planted]):.1f}")
    assert _rate(found, RUNS, "until-decided, 1-point effect, better") >= 0.8


def test_looking_without_the_correction_would_inflate_the_error_rate():
    """The reason for the correction: the same procedure at full alpha on every look makes
    more false findings than one look does (shown, so the correction is not decoration)."""
    plan = SeedPlan(start=2, step=1, maximum=20)
    rng = np.random.default_rng(5)
    wrong = 0
    for _ in range(RUNS):
        a, b = _draw(rng, 0.0, plan.maximum)
        seeds = plan.start
        while seeds is not None:
            d = welch(a[:seeds], b[:seeds], MARGIN)
            decide([d])  # one look's alpha, as if it were the only look
            if d.verdict in ("better", "worse"):
                wrong += 1
                break
            seeds = plan.next(seeds)
    assert _rate(wrong, RUNS, "uncorrected looks, no effect, better/worse") > 0.05


def test_seed_plan_counts_its_looks():
    assert SeedPlan(2, 2, 12).looks == 6
    assert SeedPlan(2, 3, 10).looks == 4  # 2, 5, 8, 10
    assert SeedPlan(4, 2, 4).looks == 1
    assert SeedPlan(2, 3, 10).next(8) == 10 and SeedPlan(2, 3, 10).next(10) is None

"""Cost beside accuracy: seconds per trial against test accuracy, the Pareto front and the
fastest value not worse than the chosen one, on planted grids and on the committed study."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fmnist_ray.report import build_report, load_results, summarize
from fmnist_ray.report.findings import sweep_findings

from .test_findings import grid
from .test_report import epoch, page_specs

STUDY = Path(__file__).parent.parent / "reports" / "data"


def timed(seconds: dict[int, float], validation: dict[int, float],
          slower: dict[int, float] | None = None):
    """Histories per batch size: three epochs of `seconds` each, a little slower per seed
    (2%), or by `slower[size]` times on seed 1 (trials that shared cores), ending at the
    size's `validation` accuracy."""
    def history(size):
        def by_seed(seed):
            factor = (1 + 0.02 * seed) * ((slower or {}).get(size, 1) if seed == 1 else 1)
            return [epoch(n, 0.6 - 0.1 * n, 0.5 - 0.05 * n, validation[size] - 0.01 * (3 - n),
                          seconds=seconds[size] * factor, train_eval_loss=0.55 - 0.1 * n)
                    for n in (1, 2, 3)]
        return by_seed
    return {size: history(size) for size in seconds}


def planted(tmp_path, seeds: int = 4, **kwargs):
    """64 chosen (10 s an epoch); 128 equivalent at half its time; 512 worse and fastest; 16
    worse and slowest; `kwargs` override the accuracies or timings."""
    accuracy = {16: 0.87, 64: 0.88, 128: 0.879, 512: 0.86, **kwargs.pop("accuracy", {})}
    seconds = {16: 20.0, 64: 10.0, 128: 5.0, 512: 2.0, **kwargs.pop("seconds", {})}
    validation = {**accuracy, 64: 0.89}
    uri = grid(tmp_path / "g", accuracy, seeds=seeds, validation=validation,
               histories=timed(seconds, validation, kwargs.pop("slower", None)))
    results = load_results(uri)
    return results, sweep_findings(results)


def by_value(cost) -> dict:
    return {v.value: v for v in cost.values}


def test_a_cheaper_equivalent_value_is_the_fastest_not_worse_and_a_cheaper_worse_one_is_not(
        tmp_path):
    results, found = planted(tmp_path)
    (cost,) = found.cost
    values = by_value(cost)
    assert {v: values[v].verdict for v in values} == {
        "16": "worse", "64": "chosen", "128": "equivalent", "512": "worse"}
    assert cost.fastest_not_worse().value == "128"  # not 512: faster, but worse
    assert cost.speedup(values["128"]) == pytest.approx(2.0, rel=0.05)
    assert [v.value for v in cost.faster("worse")] == ["512"]
    assert cost.faster("undecided") == []
    # every trial's seconds: three epochs, each with 0.2 s of evaluation
    assert values["128"].seconds_mean == pytest.approx(
        sum(3 * (5.0 * (1 + 0.02 * s) + 0.2) for s in range(4)) / 4)
    assert values["128"].seconds_sd > 0 and values["128"].timed == 4
    line = next(s for s in summarize(results, found) if s.startswith("Cost by batch_size"))
    assert (f"the fastest value not worse than it on test accuracy is 128 at "
            f"{values['128'].seconds_mean:.1f} s ± {values['128'].seconds_sd:.1f}, "
            f"{cost.speedup(values['128']):.2f}x faster, test accuracy equivalent") in line
    assert "faster but worse: 512" in line
    assert "shared cores" not in line


def test_a_dominated_value_is_not_pareto_and_undecided_ones_are_never_dominated(tmp_path):
    _, found = planted(tmp_path)
    values = by_value(found.cost[0])
    # 128 is as good as the choice and clearly faster: it dominates the chosen 64 and 16
    assert (values["64"].pareto, values["64"].dominated_by) == (False, "128")
    assert (values["16"].pareto, values["16"].dominated_by) == (False, "128")
    assert values["128"].pareto and values["512"].pareto  # nothing faster stands as high
    # with two seeds a small loss is undecided: it may be better, so it stays on the front
    _, found = planted(tmp_path / "two", seeds=2, accuracy={128: 0.877, 16: 0.80})
    values = by_value(found.cost[0])
    assert values["128"].verdict == "undecided" and values["128"].pareto
    assert found.cost[0].fastest_not_worse().value == "64"
    assert [v.value for v in found.cost[0].faster("undecided")] == ["128"]


def test_times_within_noise_or_on_shared_cores_say_so(tmp_path):
    # 128 only 5% faster than the chosen 64: not clearly faster, so it dominates nothing
    results, found = planted(tmp_path, seconds={128: 9.5}, slower={16: 2.0})
    (cost,) = found.cost
    values = by_value(cost)
    assert cost.fastest_not_worse().value == "128"
    assert not values["128"].clearly_faster_than(values["64"])
    assert values["64"].pareto and values["128"].pareto and not values["16"].pareto
    assert cost.shared_cores and cost.contention == pytest.approx(2.0 * 1.02 / 1.0, rel=0.01)
    line = cost.sentence()
    assert "(within timing noise)" in line
    assert "measured while trials shared cores (one setting ran up to 2.0x faster" in line


def test_a_setting_that_does_not_change_the_work_has_no_cost_block():
    found = sweep_findings(load_results(str(STUDY / "optimizer")))
    assert found.axes and found.cost == [] and found.to_json()["cost"] == []


def test_the_committed_batch_size_study_names_its_fastest_setting(tmp_path):
    import pandas as pd

    page = build_report([str(STUDY / "batch_size")], tmp_path / "batch.html")
    findings = json.loads(page.with_name("batch.findings.json").read_text())
    (cost,) = findings["cost"]
    assert cost["axis"] == "batch_size" and cost["chosen"] == findings["axes"][0]["chosen"]
    # Against the data: the fastest mean time among the values not worse than the choice.
    trials = pd.read_parquet(STUDY / "batch_size" / "trials.parquet")
    seconds = trials[trials["status"] == "completed"].groupby("batch_size")["seconds"].mean()
    verdicts = {v["value"]: v["verdict"] for v in findings["axes"][0]["values"]}
    not_worse = [b for b in seconds.index if verdicts[str(b)] in ("chosen", "equivalent",
                                                                  "better")]
    fastest = str(min(not_worse, key=lambda b: seconds[b]))
    assert cost["fastest_not_worse"]["value"] == fastest
    assert cost["fastest_not_worse"]["seconds_mean"] == pytest.approx(seconds[int(fastest)])
    assert all(math.isfinite(v["seconds_mean"]) and v["params"] == 235146
               for v in cost["values"])
    text = page.read_text()
    named = ("it is itself the fastest value not worse" if fastest == cost["chosen"] else
             f"the fastest value not worse than it on test accuracy is {fastest} at")
    assert named in text
    titles = [json.dumps(s.get("title", "")) for s in page_specs(text)]
    assert any("Test accuracy against seconds per trial by batch_size" in t for t in titles)

"""Training whose settings change between epochs (PBT's schedules), and the Pareto front of
a multi-objective search: no Ray, checked against definitions and simulations."""

import json

import numpy as np
import pandas as pd
import pytest

from fmnist_ray.config import TrialConfig
from fmnist_ray.report.front import dominated, pareto_front
from fmnist_ray.report.load import SweepResults
from fmnist_ray.spec.file import parse_spec_text
from fmnist_ray.training.data import load_fashion_mnist
from fmnist_ray.training.loop import train_trial
from fmnist_ray.training.population import adopt_settings, segments, train_schedule


@pytest.fixture(scope="module")
def data(synthetic_dir):
    return load_fashion_mnist(synthetic_dir)


BASE = TrialConfig(model="mlp", hidden_sizes=[16], optimizer="sgd_momentum", epochs=4,
                   batch_size=128, seed=3)


def run(schedule, data):
    """Train through `schedule`; each epoch's optimizer settings and validation accuracy."""
    seen = []

    def on_epoch(metrics, state):
        group = state.optimizer["param_groups"][0]
        seen.append((metrics.epoch, group["lr"], group["momentum"], metrics.val_accuracy))

    train_schedule(lambda s: BASE.model_copy(update=s), schedule, data, on_epoch=on_epoch)
    return seen


def test_segments_are_runs_of_equal_settings():
    a, b = {"lr": 0.1}, {"lr": 0.01}
    assert segments([a, a, b, b, a]) == [(2, a), (4, b), (5, a)]
    assert segments([a]) == [(1, a)]


def test_a_schedule_trains_each_epoch_with_its_own_settings(data):
    first, then = {"lr": 0.05, "momentum": 0.9}, {"lr": 0.005, "momentum": 0.5}
    seen = run([first, first, then, then], data)
    assert [(e, lr, m) for e, lr, m, _ in seen] == [(1, 0.05, 0.9), (2, 0.05, 0.9),
                                                    (3, 0.005, 0.5), (4, 0.005, 0.5)]
    assert seen == run([first, first, then, then], data)  # the same numbers again


def test_a_schedule_that_never_changes_is_the_plain_run_bit_for_bit(data):
    settings = {"lr": 0.05, "momentum": 0.9}
    plain = []
    train_trial(BASE.model_copy(update=settings), data,
                on_epoch=lambda m, s: plain.append(m.val_accuracy))
    assert [v for *_, v in run([settings] * 4, data)] == plain


def test_adopting_its_own_settings_leaves_a_state_unchanged(data):
    states = []
    train_trial(BASE, data, on_epoch=lambda m, s: states.append(s))
    groups = [dict(g) for g in states[0].optimizer["param_groups"]]
    adopt_settings(states[0], BASE)
    assert [dict(g) for g in states[0].optimizer["param_groups"]] == groups


def brute_force_front(points: np.ndarray) -> np.ndarray:
    """By the definition, one pair at a time: no other point at least as good everywhere
    and better somewhere."""
    keep = []
    for i, p in enumerate(points):
        beaten = any(all(q >= p) and any(q > p) for j, q in enumerate(points) if j != i)
        keep.append(not beaten)
    return np.array(keep)


def test_the_front_matches_its_definition_on_random_and_tied_points():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        n, k = rng.integers(1, 25), rng.integers(2, 4)
        points = rng.integers(0, 6, size=(n, k)).astype(float)  # many ties
        assert (~dominated(points) == brute_force_front(points)).all(), points
        checked += 1
    print(f"front == definition on {checked} random point sets (with ties)")


def _search(choose_within: str) -> SweepResults:
    spec = parse_spec_text("name: p\nsearch: optuna\nnum_samples: 5\n"
                           "axes: {lr: {loguniform: [0.0001, 0.1]}}\n"
                           "objectives: {val_accuracy: max, seconds: min}\n" + choose_within,
                           "p.yaml")
    trials = pd.DataFrame({"trial_id": list("abcdef"), "config": list("abcdef"),
                           "status": ["completed"] * 5 + ["diverged"],
                           "best_val_accuracy": [0.90, 0.89, 0.85, 0.91, 0.80, 0.99],
                           "seconds": [100.0, 40.0, 20.0, 300.0, 50.0, 1.0],
                           "test_accuracy": [0.89, 0.88, 0.84, 0.90, 0.79, 0.1],
                           "test_loss": [0.3] * 6})
    return SweepResults("p", "p", trials, pd.DataFrame(), spec=spec)


@pytest.mark.parametrize(("limit", "chosen"), [("", "d"), ("choose_within: {seconds: 120}\n", "a"),
                                               ("choose_within: {seconds: 45}\n", "b"),
                                               ("choose_within: {seconds: 5}\n", None)])
def test_the_front_of_completed_trials_and_the_member_chosen_within_a_limit(limit, chosen):
    front = pareto_front(_search(limit))
    assert list(front.members["trial_id"]) == ["d", "a", "b", "c"]  # best accuracy first
    assert (None if front.chosen is None else front.chosen["trial_id"]) == chosen
    found = front.to_json()
    assert found["chosen"] == chosen and len(found["members"]) == 4
    assert "seconds at most" in found["rule"] if limit else "among" not in found["rule"]


def test_confirming_a_confirmed_pbt_choice_again_replays_the_pbt_trials_schedule(tmp_path):
    """The committed PBT example, asked for a third confirmation seed: the new run replays the
    population's winner (never one of its confirmations) with the next fresh seed."""
    import shutil
    from pathlib import Path

    from fmnist_ray.config import SCHEDULE_KEY
    from fmnist_ray.spec.file import read_stored_spec
    from fmnist_ray.sweep.confirm import confirmation_points

    uri = shutil.copytree(Path(__file__).parents[1] / "reports" / "data" / "pbt", tmp_path / "pbt")
    spec = read_stored_spec(str(uri), ["confirm_seeds=3"])
    trials = pd.read_parquet(uri / "trials.parquet")
    sources = {json.loads(s)["source"] for s in
               trials.loc[trials["role"] == "confirmation", "pbt_schedule"]}
    assert len(sources) == 1 and sources <= set(trials["trial_id"])
    [point] = confirmation_points(spec, str(uri))
    assert point["seed"] == spec.trial.seed + 10_002
    assert point[SCHEDULE_KEY]["source"] in sources
    winner = trials.set_index("trial_id").loc[point[SCHEDULE_KEY]["source"]]
    assert point[SCHEDULE_KEY]["epochs"] == json.loads(winner["pbt_schedule"])["epochs"]

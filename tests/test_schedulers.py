"""PBT, HyperBand and a multi-objective search, each a real sweep on a real local Ray, driven
through the CLI as a user runs them."""

import json

import pandas as pd
import pytest

from .conftest import run_cli

PBT = """
name: pbt
search: random
num_samples: 4
confirm_seeds: 1
trial: {model: mlp, hidden_sizes: [16], epochs: 4, batch_size: 128, optimizer: sgd_momentum}
axes:
  lr: {loguniform: [0.0003, 0.3]}
  batch_size: {choice: [64, 128, 256]}
scheduler: {type: pbt, perturbation_interval: 1, mutate: [lr, batch_size], quantile: 0.5}
resources: {cpu: 0.5}
"""


def sweep(tmp_path, synthetic_dir, name, text, *extra):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(text)
    result = run_cli("sweep", str(spec), "--storage", str(tmp_path / "runs"), "--quiet",
                     "--data-dir", str(synthetic_dir), *extra)
    folder = tmp_path / "runs" / name
    trials = pd.read_parquet(folder / "trials.parquet")
    epochs = pd.read_parquet(folder / "epochs.parquet")
    return result, folder, trials, epochs


def test_pbt_records_each_lineage_and_confirms_the_best_schedule_from_scratch(
        tmp_path, synthetic_dir):
    result, folder, trials, epochs = sweep(tmp_path, synthetic_dir, "pbt", PBT)
    assert result.returncode == 0, result.stderr
    own = trials[trials["role"] != "confirmation"]
    assert len(own) == 4 and (own["status"] == "completed").all()
    schedules = {t: json.loads(s) for t, s in zip(own["trial_id"], own["pbt_schedule"],
                                                   strict=True)}
    for trial_id, schedule in schedules.items():
        assert len(schedule["epochs"]) == 4, trial_id
        for settings in schedule["epochs"]:
            assert set(settings) == {"lr", "batch_size"}
            assert settings["batch_size"] in (64, 128, 256)  # a choice moves to a neighbour
            assert 0.0003 * 0.8 ** 4 <= settings["lr"] <= 0.3 * 1.2 ** 4
    # Every epoch row says what it trained with; the last epoch's is the trial's own.
    assert epochs.loc[epochs["trial_id"].isin(own["trial_id"]), "pbt_settings"].notna().all()
    # Three perturbations in a population of 4 at quantile 0.5: some trial took another's
    # weights, so its lineage starts with settings it did not start with itself.
    changed = [t for t, s in schedules.items() if len({json.dumps(e) for e in s["epochs"]}) > 1]
    assert changed, schedules
    # The confirmation replays the chosen trial's schedule from scratch with a fresh seed.
    confirmation = trials[trials["role"] == "confirmation"]
    assert len(confirmation) == 1
    replayed = json.loads(confirmation["pbt_schedule"].iloc[0])
    source = replayed["source"]
    assert replayed["epochs"] == schedules[source]["epochs"]
    assert confirmation["seed"].iloc[0] == 10000
    mine = epochs[epochs["trial_id"] == confirmation["trial_id"].iloc[0]]
    assert [json.loads(s) for s in mine["pbt_settings"]] == schedules[source]["epochs"]

    page = tmp_path / "pbt.html"
    report = run_cli("report", str(folder), "-o", str(page))
    assert report.returncode == 0, report.stderr
    found = json.loads((tmp_path / "pbt.findings.json").read_text())
    assert found["chosen"]["config"] == f"schedule of {source}"
    assert found["chosen"]["confirmed_seeds"] == 1
    assert found["axes"] == []  # trials are schedules: no setting value is compared
    text = page.read_text()
    assert "Population based training" in text and "never setting values" in text


HYPERBAND = """
name: hyperband
search: random
num_samples: 9
trial: {model: mlp, hidden_sizes: [16], epochs: 9, batch_size: 128}
axes:
  lr: {loguniform: [0.0001, 0.1]}
scheduler: {type: hyperband, reduction_factor: 3}
"""


@pytest.mark.slow  # keeps the default run under 7 minutes; PBT's test runs there
def test_hyperband_stops_weak_trials_and_the_sweep_ends_finished(tmp_path, synthetic_dir):
    result, folder, trials, epochs = sweep(tmp_path, synthetic_dir, "hyperband", HYPERBAND)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sweep finished" in result.stdout and "interrupted" not in result.stdout
    assert set(trials["status"]) <= {"completed", "early_stopped"}
    assert (trials["status"] == "early_stopped").any()
    assert (trials["epochs_run"] == 9).any()
    assert len(epochs) == trials["epochs_run"].sum() < 9 * 9


PARETO = """
name: pareto
search: optuna
num_samples: 5
objectives: {val_accuracy: max, seconds: min}
choose_within: {seconds: 1000}
trial: {model: mlp, epochs: 2}
variants:
  - {name: small, hidden_sizes: [8]}
  - {name: large, hidden_sizes: [256, 256]}
axes:
  lr: {loguniform: [0.0003, 0.01]}
"""


@pytest.mark.slow  # Optuna sweeps run with the slow tests
def test_a_multi_objective_search_reports_its_pareto_front(tmp_path, synthetic_dir):
    result, folder, trials, _ = sweep(tmp_path, synthetic_dir, "pareto", PARETO)
    assert result.returncode == 0, result.stderr
    assert len(trials) == 5 and (trials["status"] == "completed").all()
    assert "Pareto front (" in result.stdout
    report = run_cli("report", str(folder), "-o", str(tmp_path / "p.html"))
    assert report.returncode == 0, report.stderr
    front = json.loads((tmp_path / "p.findings.json").read_text())["front"]
    members = {m["trial_id"] for m in front["members"]}
    # By the definition: no trial is at least as accurate and as fast as a member, and better.
    for _, t in trials.iterrows():
        beaten = any((o["best_val_accuracy"] >= t["best_val_accuracy"]) and
                     (o["seconds"] <= t["seconds"]) and
                     (o["best_val_accuracy"] > t["best_val_accuracy"] or
                      o["seconds"] < t["seconds"]) for _, o in trials.iterrows())
        assert (t["trial_id"] in members) == (not beaten)
    best = trials.loc[trials["trial_id"].isin(members), "best_val_accuracy"].max()
    chosen = trials.set_index("trial_id").loc[front["chosen"]]
    assert chosen["best_val_accuracy"] == best  # within 1000 s every member qualifies
    assert f"best trial {front['chosen']}" in result.stdout
    grown = run_cli("extend", str(folder), "--set", "num_samples=7", "--data-dir",
                    str(synthetic_dir), "--quiet")
    assert grown.returncode == 2 and "confirm_seeds" in grown.stderr, grown.stderr
    assert len(pd.read_parquet(folder / "trials.parquet")) == 5  # nothing lost

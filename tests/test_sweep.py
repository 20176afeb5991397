"""Sweeps on a real local Ray, driven through the CLI as a user would."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from fmnist_ray.cli.app import app
from fmnist_ray.results.ray_files import rebuild_from_ray_logs
from fmnist_ray.spec.file import parse_spec_text

from .conftest import run_cli

runner = CliRunner()


def read(results, name):
    return (pd.read_parquet(results / name / "trials.parquet"),
            pd.read_parquet(results / name / "epochs.parquet"))


@pytest.fixture(scope="module")
def smoke(smoke_sweep):
    """The session's smoke sweep: its run, its folder, its two tables and its chosen trial."""
    result, storage = smoke_sweep
    assert result.returncode == 0, result.stderr
    trials, epochs = read(storage, "smoke")
    best = trials.loc[trials["best_val_accuracy"].idxmax()]
    return result, storage / "smoke", trials, epochs, best


def test_smoke_sweep_shows_progress_from_the_start_and_a_summary(smoke):
    result, *_ = smoke
    # progress from the start: a line before Ray's slow start, then one per trial
    lines = result.stdout.splitlines()
    assert lines[0] == "starting Ray on this machine ..."
    assert sum(line.startswith("[") and " completed: lr=" in line for line in lines) == 2
    assert "sweep finished" in result.stdout and "2 completed" in result.stdout


def test_smoke_sweep_writes_one_row_per_trial_and_epoch(smoke):
    _, folder, trials, epochs, _ = smoke
    assert len(trials) == 2 and trials["trial_id"].is_unique
    assert sorted(trials["lr"]) == [0.001, 0.003]
    assert set(trials["status"]) == {"completed"}
    assert trials["test_accuracy"].between(0, 1).all() and trials["node_id"].str.len().gt(0).all()
    assert len(epochs) == 2 * 2
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert (folder / "spec.yaml").is_file()


def test_a_second_sweep_of_the_same_name_is_refused_and_loses_nothing(smoke_copy,
                                                                       synthetic_dir):
    again = run_cli("sweep", "sweeps/smoke.yaml", "--storage", str(smoke_copy), "--quiet",
                    "--data-dir", str(synthetic_dir))
    assert again.returncode == 2
    assert "already holds a sweep; resume it with `fmnist-ray resume" in again.stderr
    assert "or pass --name NEW" in again.stderr
    assert len(pd.read_parquet(smoke_copy / "smoke" / "trials.parquet")) == 2  # nothing lost


def test_ls_and_show_list_the_sweep_and_its_chosen_trial(smoke):
    _, folder, trials, _, best = smoke
    listed = runner.invoke(app, ["ls", str(folder.parent)])
    assert listed.exit_code == 0, listed.output
    assert "smoke" in listed.stdout and "2 completed" in listed.stdout
    [entry] = json.loads(runner.invoke(app, ["ls", str(folder.parent), "--json"]).stdout)
    assert entry["name"] == "smoke" and entry["statuses"] == {"completed": 2}
    assert entry["best_value"] == best["best_val_accuracy"]
    shown = runner.invoke(app, ["show", str(folder), "--top", "1"])
    assert shown.exit_code == 0, shown.output
    assert f"chosen on val_accuracy: trial {best['trial_id']}" in shown.stdout
    view = json.loads(runner.invoke(app, ["show", str(folder), "--json", "--sort", "lr"]).stdout)
    assert [row["lr"] for row in view["rows"]] == [0.003, 0.001]  # largest first
    assert view["best"]["trial_id"] == best["trial_id"] and view["total"] == 2
    assert view["best_folder"].startswith(str(folder / "run_trial_"))


def test_each_trial_writes_tensorboard_events_matching_its_epochs(smoke):
    """Read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, folder, trials, epochs, _ = smoke
    for trial_id in trials["trial_id"]:
        [trial_folder] = folder.glob(f"run_trial_{trial_id}_*")
        events = EventAccumulator(str(trial_folder))
        events.Reload()
        logged = events.Scalars("ray/tune/val_accuracy")
        rows = epochs[epochs["trial_id"] == trial_id].sort_values("epoch")
        assert [e.step for e in logged] == rows["epoch"].tolist()
        assert [e.value for e in logged] == pytest.approx(rows["val_accuracy"].tolist())


def test_the_chosen_trials_best_weights_export_and_predict(smoke, tmp_path, synthetic_dir):
    """Exported from the chosen trial's checkpoint, then used."""
    _, folder, trials, _, best = smoke
    assert trials["checkpoint"].str.endswith("/state.pt").all()
    exported = runner.invoke(app, ["export", str(folder), "-o", str(tmp_path / "best.pt")])
    assert exported.exit_code == 0, exported.output
    assert f"exported trial {best['trial_id']}" in exported.stdout
    sidecar = json.loads((tmp_path / "best.json").read_text())
    assert sidecar["test_accuracy"] == best["test_accuracy"]
    predicted = runner.invoke(app, ["predict", str(tmp_path / "best.pt"), "--json",
                                    str(synthetic_dir / "t10k-images-idx3-ubyte.gz")])
    assert len(json.loads(predicted.stdout)) == 300


MIXED = """
name: mixed
trial: {model: mlp, hidden_sizes: [32], optimizer: sgd_momentum, epochs: 6, batch_size: 128}
axes:
  lr: [0.01, 10.0, 0.02]
"""  # max_failures: the default, 2


def test_diverged_is_data_but_an_errored_trial_exits_1_and_is_named(tmp_path, synthetic_dir):
    spec = tmp_path / "mixed.yaml"
    spec.write_text(MIXED)
    result = run_cli("sweep", str(spec), "--storage", str(tmp_path / "out"), "--quiet",
                     "--data-dir", str(synthetic_dir),
                     env={"FMNIST_RAY_FAULT": "error:lr=0.02@2"})
    assert result.returncode == 1, result.stderr
    assert "1 completed, 1 diverged, 1 errored" in result.stdout
    trials, epochs = read(tmp_path / "out", "mixed")
    by_lr = trials.set_index("lr")
    assert by_lr.loc[0.01, "status"] == "completed"
    assert by_lr.loc[10.0, "status"] == "diverged"
    assert by_lr.loc[0.02, "status"] == "errored"
    errored_id = by_lr.loc[0.02, "trial_id"]
    assert f"errored: trial {errored_id}: RuntimeError: injected fault" in result.stderr
    assert "Traceback" not in result.stderr
    assert "injected fault" in by_lr.loc[0.02, "error"]
    # It fails after every epoch from 2 on: the first run and its two retries, each resumed
    # from the last checkpoint, reported epochs 1-2, 3 and 4; then it was given up.
    assert sorted(epochs.loc[epochs["trial_id"] == errored_id, "epoch"]) == [1, 2, 3, 4]
    assert by_lr.loc[0.01, "epochs_run"] == 6


ASHA = """
name: asha
trial: {model: mlp, hidden_sizes: [16], optimizer: sgd, epochs: 4, batch_size: 256}
axes:
  lr: [0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001]  # strong first: ASHA compares with earlier trials
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
"""


def test_asha_stops_weak_trials_early(tmp_path, synthetic_dir):
    spec = tmp_path / "asha.yaml"
    spec.write_text(ASHA)
    result = run_cli("sweep", str(spec), "--storage", str(tmp_path), "--quiet",
                     "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    trials, epochs = read(tmp_path, "asha")
    assert len(trials) == 6
    assert (trials["status"] == "early_stopped").sum() >= 2
    assert len(epochs) == trials["epochs_run"].sum() < 6 * 4


@pytest.mark.slow  # Optuna sweeps run with the slow tests (also in test_growing)
def test_optuna_search_samples_the_space(tmp_path, synthetic_dir):
    spec = tmp_path / "tpe.yaml"
    spec.write_text("name: tpe\ntrial: {model: mlp, hidden_sizes: [16], epochs: 1}\n"
                    "search: optuna\nnum_samples: 3\n"
                    "axes: {lr: {loguniform: [0.0001, 0.01]}, batch_size: [64, 128]}\n")
    result = run_cli("sweep", str(spec), "--storage", str(tmp_path), "--quiet",
                     "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    trials, _ = read(tmp_path, "tpe")
    assert len(trials) == 3
    assert trials["lr"].between(1e-4, 1e-2).all() and trials["lr"].nunique() == 3
    assert set(trials["batch_size"]) <= {64, 128}


def test_dry_run_lists_trials_and_estimates_without_training(tmp_path, synthetic_dir):
    result = run_cli("sweep", "sweeps/smoke.yaml", "--dry-run", "--storage", str(tmp_path),
                     "--data-dir", str(synthetic_dir), "--set", "seeds=2")
    assert result.returncode == 0, result.stderr
    assert "4 trial(s)" in result.stdout
    assert "1 CPU + 0 GPU per trial" in result.stdout
    assert "estimated wall time:" in result.stdout
    assert not (tmp_path / "smoke").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:1"])
def test_unreachable_cluster_is_a_clear_error(tmp_path, synthetic_dir, address):
    result = run_cli("sweep", "sweeps/smoke.yaml", "--address", address, "--storage",
                     str(tmp_path), "--quiet", "--data-dir", str(synthetic_dir), timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"--address {address}: cannot connect" in result.stderr
    assert "Traceback" not in result.stderr


RETRY = """
name: retry
trial: {model: mlp, hidden_sizes: [32], epochs: 4, batch_size: 128}
axes:
  lr: [0.001, 0.003]
max_failures: 2
"""


# A raised error and a dead worker: the same retry path, so the first runs with the slow tests.
@pytest.mark.parametrize("fault", [pytest.param("error_once", marks=pytest.mark.slow),
                                   "crash_once"])
def test_a_failed_trial_is_retried_from_its_checkpoint(tmp_path, synthetic_dir, fault):
    spec = tmp_path / "retry.yaml"
    spec.write_text(RETRY)
    result = run_cli("sweep", str(spec), "--storage", str(tmp_path), "--quiet",
                     "--data-dir", str(synthetic_dir),
                     env={"FMNIST_RAY_FAULT": f"{fault}:lr=0.003@2"})
    assert result.returncode == 0, result.stderr
    trials, epochs = read(tmp_path, "retry")
    assert set(trials["status"]) == {"completed"}
    assert trials["epochs_run"].tolist() == [4, 4]
    faulty = trials.loc[trials["lr"] == 0.003, "trial_id"].item()
    assert sorted(epochs.loc[epochs["trial_id"] == faulty, "epoch"]) == [1, 2, 3, 4]
    # It resumed after epoch 2 rather than starting over: Ray's own log shows epochs 3-4 once
    # after the restart, and never a second epoch 1.
    result_json = next((tmp_path / "retry").glob(f"*{faulty}*/result.json")).read_text()
    reported = [json.loads(line)["epoch"] for line in result_json.splitlines()]
    assert reported.count(1) == 1 and reported[-2:] == [3, 4]
    # Rebuilt from Ray's own files (an export lost), the retried trial follows its last attempt.
    stored = parse_spec_text((tmp_path / "retry" / "spec.yaml").read_text(), "spec.yaml")
    rebuilt, _ = rebuild_from_ray_logs(str(tmp_path / "retry"), stored.trial_config, asha=False)
    assert {row["trial_id"]: row["status"] for row in rebuilt}[faulty] == "completed"


@pytest.mark.slow  # waits out its 15 s budget
def test_start_points_run_first_and_the_time_budget_ends_the_search(tmp_path, synthetic_dir):
    spec = tmp_path / "budget.yaml"
    spec.write_text(
        "name: budget\ntrial: {model: mlp, hidden_sizes: [16], epochs: 40}\n"
        "search: optuna\nnum_samples: 200\nmax_concurrent_trials: 1\n"
        "axes: {lr: {loguniform: [0.0001, 0.01]}}\n"
        "variants: [{name: narrow, hidden_sizes: [8]}, {name: wide, hidden_sizes: [64]}]\n"
        "start_with: [{lr: 0.003, variant: wide}]\ntime_budget_minutes: 0.25\n")
    result = run_cli("sweep", str(spec), "--storage", str(tmp_path), "--quiet",
                     "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    assert "the time budget of 0.25 min ended the search" in result.stdout
    trials, _ = read(tmp_path, "budget")
    assert 1 <= len(trials) < 200
    starter = trials[trials["lr"] == 0.003]
    assert len(starter) == 1 and starter.iloc[0]["variant"] == "wide"

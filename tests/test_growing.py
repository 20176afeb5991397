"""Studies that grow, on a real local Ray: finished trials are reused by content key, never
trained twice, and a sweep is extended with only its new trials training."""

import json
import pickle
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from fmnist_ray.cli.app import app
from fmnist_ray.sweep.store import TrialStore

from .conftest import CLI, REPO, run_cli

runner = CliRunner()
METRICS = ["status", "epochs_run", "best_epoch", "best_val_accuracy", "best_val_loss",
           "final_val_loss", "test_accuracy", "test_loss", "test_confusion", "params"]
EPOCH_METRICS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]


def read(results, name):
    return (pd.read_parquet(results / name / "trials.parquet"),
            pd.read_parquet(results / name / "epochs.parquet"))


def sweep(storage, spec, data, *args, name=None, check=True):
    result = run_cli("sweep", str(spec), "--storage", str(storage), "--quiet", "--data-dir",
                     str(data), *(["--name", name] if name else []), *args)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def checkpoint_dirs(results, name):
    return sorted((results / name).glob("run_trial_*/checkpoint_*"))


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    spec = tmp_path_factory.mktemp("grid-spec") / "grid.yaml"
    spec.write_text("name: grid\ntrial: {model: mlp, hidden_sizes: [32], batch_size: 256, "
                    "epochs: 2}\naxes:\n  lr: [0.001, 0.003]\nseeds: 2\n")
    return spec


@pytest.fixture(scope="module")
def grid_results(tmp_path_factory, small_grid, synthetic_dir):
    """A storage folder holding the small grid, swept once for this module (2 x 2 trials) and
    its trial store. The reuse test adds a sweep beside it; the others change a copy."""
    results = tmp_path_factory.mktemp("grid") / "results"
    sweep(results, small_grid, synthetic_dir)
    return results


def test_a_second_sweep_reuses_every_trial_and_reports_the_same(tmp_path, small_grid,
                                                                  grid_results, synthetic_dir):
    results = grid_results
    planned = runner.invoke(app, ["sweep", str(small_grid), "--dry-run", "--storage",
                                  str(results), "--name", "again", "--data-dir",
                                  str(synthetic_dir)])
    assert "4 trial(s), 4 of them reused from the trial store" in planned.output, planned.output
    again = sweep(results, small_grid, synthetic_dir, name="again")
    assert "4 trial(s) reused" in again.stdout

    first, first_epochs = read(results, "grid")
    second, second_epochs = read(results, "again")
    assert first["trial_key"].notna().all() and first["reused_from"].isna().all()
    # Every trial of the second sweep came from the first: none trained, none checkpointed.
    expected = {f"grid/{t}" for t in first["trial_id"]}
    assert set(second["reused_from"]) == expected
    assert checkpoint_dirs(results, "again") == [] and len(checkpoint_dirs(results, "grid")) >= 4
    by_key = first.set_index("trial_key")[METRICS]
    pd.testing.assert_frame_equal(by_key, second.set_index("trial_key")[METRICS].loc[by_key.index])
    # ... and each reused trial points at its stored state, which holds the best weights.
    assert all(p.startswith(str(results / "trial-store" / "checkpoints")) for p in
               second["checkpoint"])
    ids = dict(zip(second["trial_id"], second["reused_from"], strict=True))
    second_epochs["trial_id"] = second_epochs["trial_id"].map(ids).str.removeprefix("grid/")
    key = ["trial_id", "epoch"]
    pd.testing.assert_frame_equal(
        first_epochs.sort_values(key)[key + EPOCH_METRICS].reset_index(drop=True),
        second_epochs.sort_values(key)[key + EPOCH_METRICS].reset_index(drop=True))

    # The reports agree in every finding and say the trials were reused.
    findings = []
    for name in ("grid", "again"):
        out = tmp_path / f"{name}.html"
        made = runner.invoke(app, ["report", str(results / name), "-o", str(out)])
        assert made.exit_code == 0, made.output
        findings.append(json.loads(out.with_suffix(".findings.json").read_text()))
        if name == "again":
            assert "4 of 4 trials were reused, not trained" in out.read_text()
    assert _without_ids(findings[0]) == _without_ids(findings[1])


@pytest.mark.slow
def test_changed_training_numerics_or_no_reuse_train_every_trial_again(
        tmp_path, small_grid, grid_results, synthetic_dir):
    results = shutil.copytree(grid_results, tmp_path / "results", symlinks=True)
    first, _ = read(results, "grid")
    # Training code whose numbers changed (a bumped NUMERICS_VERSION) reuses nothing.
    bumped = subprocess.run(
        [sys.executable, "-c", "import sys; import fmnist_ray.training.loop as t; "
         "t.NUMERICS_VERSION += 1; from fmnist_ray.cli.app import app; app(sys.argv[1:])",
         "sweep", str(small_grid), "--storage", str(results), "--name", "bumped", "--quiet",
         "--data-dir", str(synthetic_dir)], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert bumped.returncode == 0, bumped.stdout + bumped.stderr
    retrained, _ = read(results, "bumped")
    assert len(retrained) == 4 and retrained["reused_from"].isna().all()
    assert not set(retrained["trial_key"]) & set(first["trial_key"])
    # --no-reuse trains too.
    forced = sweep(results, small_grid, synthetic_dir, "--no-reuse", name="forced")
    assert "reused" not in forced.stdout
    assert read(results, "forced")[0]["reused_from"].isna().all()


def test_sweeps_started_by_earlier_versions_find_their_exporter_at_its_old_path():
    """Ray pickles the exporter into tuner.pkl: `fmnist_ray.sweep.ResultsExporter`."""
    from fmnist_ray.sweep.exporter import ResultsExporter

    assert pickle.loads(b"cfmnist_ray.sweep\nResultsExporter\n.") is ResultsExporter
    old = ResultsExporter.__new__(ResultsExporter)  # as unpickled: no attributes added since
    old.__dict__.update({"spec": None, "uri": "x", "epochs": {}, "last_write": 0.0})
    assert old.store is None and old.keys is None


def _without_ids(findings):
    """A report's findings with the trial ids and sweep names, which differ by design, out."""
    return json.loads(json.dumps(findings), object_hook=lambda d: {
        k: v for k, v in d.items() if k not in ("trial_id", "sweep", "results")})


def test_a_grid_grows_by_a_seed_and_an_axis_value_training_only_the_new_trials(
        tmp_path, grid_results, synthetic_dir):
    results = shutil.copytree(grid_results, tmp_path / "results", symlinks=True)
    before, before_epochs = read(results, "grid")
    grown = run_cli("extend", str(results / "grid"), "--set", "seeds=3", "--set",
                    "axes.lr=[0.001, 0.003, 0.01]", "--quiet", "--data-dir", str(synthetic_dir))
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert "4 trial(s) kept from before as they were (same ids); 5 new" in grown.stdout
    assert "reused" not in grown.stdout  # its own trials are kept, not reused

    trials, epochs = read(results, "grid")
    assert len(trials) == 9 and trials["trial_id"].is_unique
    assert sorted(zip(trials["lr"], trials["seed"], strict=True)) == sorted(
        (lr, seed) for lr in (0.001, 0.003, 0.01) for seed in (0, 1, 2))
    # The 4 trials from before keep their ids and rows; the 5 new ones trained.
    kept = trials[trials["trial_id"].isin(before["trial_id"])]
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), before.reset_index(drop=True))
    new = trials[~trials["trial_id"].isin(before["trial_id"])]
    assert len(new) == 5 and new["reused_from"].isna().all()
    assert not set(new["trial_key"]) & set(before["trial_key"])
    assert len(epochs) == 9 * 2 and not epochs.duplicated(["trial_id", "epoch"]).any()
    assert set(epochs["trial_id"]) == set(trials["trial_id"])
    key = ["trial_id", "epoch"]
    pd.testing.assert_frame_equal(
        epochs[epochs["trial_id"].isin(before["trial_id"])].sort_values(key)
        .reset_index(drop=True), before_epochs.sort_values(key).reset_index(drop=True))
    assert "seeds: 3" in (results / "grid" / "spec.yaml").read_text()

    # The same extension again adds nothing: said in one line, before any Ray starts.
    again = runner.invoke(app, ["extend", str(results / "grid"), "--set", "seeds=3", "--set",
                                "axes.lr=[0.001, 0.003, 0.01]", "--data-dir",
                                str(synthetic_dir)])
    assert again.exit_code == 0, again.output
    assert again.output.strip().splitlines() == [
        f"{results / 'grid'}: nothing to add: every trial of this spec has run already; change "
        f"it with --set (e.g. --set seeds=N, more axis values or num_samples)"]
    assert "starting Ray" not in again.output
    pd.testing.assert_frame_equal(read(results, "grid")[0], trials)


@pytest.mark.slow  # two runs, 10 trials
def test_an_optuna_sweep_grows_from_6_to_10_samples_and_tpe_goes_on_from_the_first_6(
        tmp_path, synthetic_dir):
    spec = tmp_path / "tpe.yaml"
    spec.write_text("name: tpe\nsearch: optuna\nnum_samples: 6\nmax_concurrent_trials: 2\n"
                    "trial: {model: mlp, hidden_sizes: [32], batch_size: 256, epochs: 1}\n"
                    "axes:\n  lr: {loguniform: [0.0001, 0.03]}\n"
                    "  optimizer: [adam, sgd_momentum]\n")
    results = tmp_path / "results"
    sweep(results, spec, synthetic_dir)
    first, _ = read(results, "tpe")
    grown = sweep(results, spec, synthetic_dir, "--extend", "--set", "num_samples=10")
    assert "6 trial(s) kept from before as they were (same ids); 4 new" in grown.stdout

    trials, _ = read(results, "tpe")
    assert len(trials) == 10 and trials["reused_from"].isna().all()
    assert list(trials["trial_id"][:6]) == list(first["trial_id"])
    # The searcher was given the first 6 points with their results (not run again) before it
    # sampled more.
    state = sorted((results / "tpe").glob("searcher-state-*.pkl"))[-1]
    searcher = pickle.loads(state.read_bytes())
    given = [(p["lr"], p["optimizer"]) for p in searcher["_points_to_evaluate"]]
    assert given == list(zip(first["lr"], first["optimizer"], strict=True))
    study = [t for t in searcher["_ot_study"].trials if t.value is not None]
    assert len(study) == 10
    assert [(t.params["lr"], t.params["optimizer"]) for t in study[:6]] == given
    assert sorted(t.value for t in study[:6]) == sorted(first["best_val_accuracy"])
    # The 4 new points are new: no point of the first 6 was sampled again.
    assert not {(t.params["lr"], t.params["optimizer"]) for t in study[6:]} & set(given)


def test_a_change_that_is_not_an_extension_is_refused_in_one_line(tmp_path, synthetic_dir):
    results = tmp_path / "results"
    (results / "grid").mkdir(parents=True)
    (results / "grid" / "spec.yaml").write_text(
        "name: grid\ntrial: {model: mlp, epochs: 2}\naxes:\n  lr: [0.001, 0.003]\n")
    cases = {
        ("--set", "trial.epochs=3"): "trial.epochs (2 -> 3) changed",
        ("--set", "metric=val_loss"): "metric (\"val_accuracy\" -> \"val_loss\") changed",
        ("--set", "axes.lr=[0.001]"): "1 trial(s) already run would no longer be in the sweep "
                                      "(e.g. lr=0.003)",
        ("--set", "scheduler.type=asha"): "scheduler.type (\"none\" -> \"asha\") changed",
    }
    for args, message in cases.items():
        result = runner.invoke(app, ["extend", str(results / "grid"), *args, "--data-dir",
                                     str(synthetic_dir)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "--name NEW" in lines[0], lines
    both = runner.invoke(app, ["sweep", "sweeps/smoke.yaml", "--extend", "--resume",
                               "--storage", str(results)])
    assert both.exit_code == 2 and "--extend and --resume: choose one" in both.output

    # Optuna: a variant's settings changed (a long list, not only its first characters).
    (results / "tpe").mkdir()
    (results / "tpe" / "spec.yaml").write_text(
        "name: tpe\nsearch: optuna\nnum_samples: 4\naxes:\n  lr: {loguniform: [0.0001, 0.1]}\n"
        "variants:\n  - {name: small, model: mlp, hidden_sizes: [16]}\n"
        "  - {name: big, model: mlp, hidden_sizes: [64]}\n")
    changed = runner.invoke(app, ["extend", str(results / "tpe"), "--set",
                                  "variants=[{name: small, model: mlp, hidden_sizes: [16]}, "
                                  "{name: big, model: mlp, hidden_sizes: [128]}]"])
    assert changed.exit_code == 2 and "variants (" in changed.output, changed.output
    # A sweep stopped before its trials finished is resumed first, not extended.
    state = {"trial_data": [[json.dumps({"trial_id": "a_00000", "status": "PENDING"}), "{}"]]}
    (results / "grid" / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(state))
    unfinished = runner.invoke(app, ["extend", str(results / "grid"), "--set", "seeds=2"])
    assert unfinished.exit_code == 2 and "finish it first with `fmnist-ray resume" in \
        unfinished.output, unfinished.output

    missing = runner.invoke(app, ["sweep", "sweeps/smoke.yaml", "--extend", "--storage",
                                  str(results), "--data-dir", str(synthetic_dir)])
    assert missing.exit_code == 2 and "no sweep to extend there" in missing.output
    assert not (results / "smoke").exists()
    assert (results / "grid" / "spec.yaml").read_text().count("epochs: 2") == 1  # unchanged


@pytest.mark.slow  # two Rays at once
def test_two_sweeps_at_once_on_one_storage_both_finish_and_the_store_stays_readable(
        tmp_path, synthetic_dir):
    results = tmp_path / "results"
    specs = []
    for name, lr in (("one", 0.001), ("two", 0.003)):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(f"name: {name}\ntrial: {{model: mlp, hidden_sizes: [32], batch_size: "
                        f"256, epochs: 1}}\naxes:\n  lr: [{lr}, 0.01]\n")
        specs.append(spec)
    children = [subprocess.Popen([*CLI, "sweep", str(spec), "--storage", str(results),
                                  "--quiet", "--data-dir", str(synthetic_dir)], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for spec in specs]
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, out + err
    stored = TrialStore(str(results)).load()
    keys = set()
    for name in ("one", "two"):
        trials, _ = read(results, name)
        assert len(trials) == 2 and set(trials["status"]) == {"completed"}
        keys |= set(trials["trial_key"])
    # lr=0.01 is in both: trained once or twice (they ran at once), stored once.
    assert set(stored) == keys and len(keys) == 3
    assert all(len(s.results) == 1 and s.checkpoint for s in stored.values())
    index = json.loads((results / "trial-store" / "index.json").read_text())
    assert set(index) <= keys


@pytest.mark.slow  # three runs on a real local Ray: about 60 s
def test_an_extension_stopped_by_ctrl_c_is_resumed_and_keeps_every_id(tmp_path, synthetic_dir):
    import signal
    import time

    spec = tmp_path / "seq.yaml"
    spec.write_text("name: seq\nmax_concurrent_trials: 1\ntrial: {model: mlp, hidden_sizes: "
                    "[64], batch_size: 32, epochs: 4}\naxes:\n  lr: [0.001, 0.003]\n")
    results = tmp_path / "results"
    sweep(results, spec, synthetic_dir)
    before, _ = read(results, "seq")
    process = subprocess.Popen(
        [*CLI, "extend", str(results / "seq"), "--set", "seeds=3", "--quiet", "--data-dir",
         str(synthetic_dir)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while True:  # stop it once one new trial finished and others are still to run
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        try:
            rows, _ = read(results, "seq")
        except (OSError, ValueError):
            rows = before
        if ((rows["status"] == "completed") & ~rows["trial_id"].isin(before["trial_id"])).any():
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    # Stopped between two trials, the searcher's next points were never suggested: still
    # counted as stopped, and resume runs them.
    assert process.returncode == 130 and f"fmnist-ray resume {results / 'seq'}" in out, (out,
                                                                                       err)

    resumed = run_cli("resume", str(results / "seq"), "--quiet", "--data-dir",
                      str(synthetic_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials, _ = read(results, "seq")
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}, trials
    assert trials["trial_id"].is_unique and set(before["trial_id"]) <= set(trials["trial_id"])
    assert sorted(zip(trials["lr"], trials["seed"], strict=True)) == sorted(
        (lr, seed) for lr in (0.001, 0.003) for seed in (0, 1, 2))

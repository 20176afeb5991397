"""A search's choice confirmed with fresh seeds, on a real local Ray: the confirmation trials
run at full length after the search, the report gives their mean as the result and the
search's own figure as optimistic, and `show` names the trial the report chose."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from fmnist_ray.cli.app import app
from fmnist_ray.sweep.confirm import FRESH_SEEDS

from .conftest import run_cli

runner = CliRunner()
SPEC = ("name: tpe\nsearch: optuna\nnum_samples: 4\nmax_concurrent_trials: 2\n"
        "confirm_seeds: 2\ntrial: {model: mlp, hidden_sizes: [16], batch_size: 256, epochs: 2}\n"
        "axes:\n  lr: {loguniform: [0.0003, 0.03]}\n")


@pytest.mark.slow  # three runs on a real local Ray: about 60 s
def test_a_search_confirms_its_choice_with_fresh_seeds_and_reports_them(tmp_path,
                                                                       synthetic_dir):
    spec = tmp_path / "tpe.yaml"
    spec.write_text(SPEC)
    results = tmp_path / "results"
    ran = run_cli("sweep", str(spec), "--storage", str(results), "--quiet", "--data-dir",
                  str(synthetic_dir))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "trained again with 2 fresh seed(s) at full length" in ran.stdout

    trials = pd.read_parquet(results / "tpe" / "trials.parquet")
    search = trials[trials["role"].isna()]
    confirmation = trials[trials["role"] == "confirmation"]
    assert len(search) == 4 and len(confirmation) == 2
    assert sorted(confirmation["seed"]) == [FRESH_SEEDS, FRESH_SEEDS + 1]
    assert (confirmation["epochs_run"] == 2).all() and confirmation["lr"].nunique() == 1
    # The search's choice (best on validation; ties on this easy data go either way).
    winner = search[search["lr"] == confirmation["lr"].iloc[0]].iloc[0]
    assert winner["best_val_accuracy"] == search["best_val_accuracy"].max()

    out = tmp_path / "r.html"
    made = runner.invoke(app, ["report", str(results / "tpe"), "-o", str(out)])
    assert made.exit_code == 0, made.output
    chosen = json.loads(out.with_suffix(".findings.json").read_text())["chosen"]
    assert chosen["confirmed_seeds"] == 2 and chosen["trials"] == 2
    assert chosen["test_accuracy"] == confirmation["test_accuracy"].mean()
    assert chosen["search_test_accuracy"] == winner["test_accuracy"]
    assert chosen["trial_id"] in set(confirmation["trial_id"])
    page = out.read_text()
    assert "mean of 2 fresh seeds at full length" in page and "is optimistic" in page
    shown = runner.invoke(app, ["show", str(results / "tpe")])
    assert shown.exit_code == 0 and chosen["trial_id"] in shown.output, shown.output

    # One more seed: an extension that adds a confirmation only; then nothing is left to add.
    more = run_cli("extend", str(results / "tpe"), "--set", "confirm_seeds=3", "--quiet",
                   "--data-dir", str(synthetic_dir))
    assert more.returncode == 0, more.stdout + more.stderr
    assert "6 trial(s) kept from before as they were (same ids); 1 new" in more.stdout
    grown = pd.read_parquet(results / "tpe" / "trials.parquet")
    assert sorted(grown.loc[grown["role"] == "confirmation", "seed"]) == [
        FRESH_SEEDS, FRESH_SEEDS + 1, FRESH_SEEDS + 2]
    again = runner.invoke(app, ["extend", str(results / "tpe"), "--set", "confirm_seeds=3",
                                "--data-dir", str(synthetic_dir)])
    assert again.exit_code == 0 and "nothing to add" in again.output, again.output


def test_confirm_seeds_on_a_grid_is_refused_in_one_line(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("name: grid\nconfirm_seeds: 3\naxes:\n  lr: [0.001, 0.01]\n")
    result = runner.invoke(app, ["sweep", str(spec), "--dry-run"])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "confirm_seeds: only a search" in result.output and "set seeds instead" in \
        result.output

"""The trials table's columns have one home (`fmnist_ray.results.exports`): the export writes
them, the report's loader reads them and `show` prints them from that one list."""

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from fmnist_ray.cli.app import app
from fmnist_ray.config import TrialConfig
from fmnist_ray.report.load import load_results
from fmnist_ray.results import exports

DATA = Path(__file__).resolve().parent / "data"
BEST = Path(__file__).resolve().parents[1] / "reports" / "data" / "best"


def test_the_loader_reads_every_numeric_setting_the_export_writes_as_a_number(tmp_path):
    config = TrialConfig(model="resnet", depth=2, warmup_epochs=1.0, label_smoothing=0.1,
                         ema=0.99, augment_crop=2, augment_erasing=0.25)
    history = [{"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.85,
                "epoch_seconds": 2.0, "eval_seconds": 0.2, "images_per_second": 27_000.0}]
    last = {"best_epoch": 1, "best_val_accuracy": 0.85, "best_val_loss": 0.4,
            "test_accuracy": 0.84, "test_loss": math.inf, "params": 1000, "node_id": "n"}
    row = exports.trial_row("t1", config, None, "completed", history, last, None)
    assert tuple(row) == exports.TRIAL_COLUMNS
    exports.write_table(str(tmp_path), exports.TRIALS_FILE, [row])
    exports.write_table(str(tmp_path), exports.EPOCHS_FILE,
                        [exports.epoch_row("t1", h) for h in history])

    trials = load_results(str(tmp_path)).trials
    numbers = {c: trials[c].dtype.kind for c in exports.NUMBER_COLUMNS}
    assert numbers == dict.fromkeys(exports.NUMBER_COLUMNS, "f")
    assert trials.loc[0, ["depth", "label_smoothing", "ema", "augment_crop"]].tolist() == [
        2, 0.1, 0.99, 2]
    assert math.isnan(trials.loc[0, "test_loss"])  # inf read as missing


def test_an_export_from_before_newer_settings_reads_them_as_their_defaults():
    results = load_results(str(DATA / "optimizer-2026-11-24"))  # no depth, schedule, ema, ...
    trials = results.trials
    assert (trials["depth"] == 1).all() and (trials["schedule"] == "constant").all()
    assert (trials["ema"] == 0).all() and not trials["augment_flip"].any()
    assert not [m for m in results.missing if "has no column" in m]


def test_show_prints_whole_settings_as_integers():
    view = json.loads(CliRunner().invoke(app, ["show", str(BEST), "--json"]).stdout)
    crop = view["best_settings"]["augment_crop"]
    assert crop == 1 and isinstance(crop, int)

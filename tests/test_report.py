"""The HTML report: summary numbers, partial results, offline rendering in a real browser.

Most tests write small results directories in the exact tidy format the sweep exports (rows
made by `results.exports.trial_row` / `epoch_row`), so they run in milliseconds; the tests
marked slow run a real smoke sweep on tiny synthetic IDX files first.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from fmnist_ray.config import TrialConfig
from fmnist_ray.errors import UserError
from fmnist_ray.report import REFERENCE, build_report, load_results, summarize
from fmnist_ray.results import exports
from fmnist_ray.spec.file import parse_spec, spec_to_yaml
from fmnist_ray.training.data import CLASS_NAMES, FILES, write_idx

from .conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")


# ---- helpers: results directories in the sweep's tidy format ----------------------------------

def epoch(n: int, train_loss: float, val_loss: float, val_accuracy: float,
          seconds: float = 2.0, train_eval_loss: float | None = None) -> dict:
    """One epoch row; `train_eval_loss` is the eval-mode loss on training images, if measured."""
    row = {"epoch": n, "train_loss": train_loss, "train_accuracy": 1 - train_loss / 3,
           "val_loss": val_loss, "val_accuracy": val_accuracy, "epoch_seconds": seconds,
           "eval_seconds": 0.2, "images_per_second": 27_000 / seconds}
    if train_eval_loss is not None:
        row.update(train_eval_loss=train_eval_loss, train_eval_accuracy=1 - train_eval_loss / 3)
    return row


def confusion(accuracy: float) -> list[list[int]]:
    right = round(1000 * accuracy)
    return [[right if i == j else (1000 - right) // 9 for j in range(10)] for i in range(10)]


def trial(trial_id: str, history: list[dict], status: str = "completed", test_accuracy=None,
          test_loss=None, variant: str | None = None, error: str | None = None,
          **settings) -> tuple[dict, list[dict]]:
    """One trials row and its epoch rows, made by the same functions the sweep export uses."""
    finite = [h for h in history if math.isfinite(h["val_loss"])]
    best = max(finite, key=lambda h: h["val_accuracy"]) if finite else None
    last = {"best_epoch": best["epoch"] if best else 0,
            "best_val_accuracy": best["val_accuracy"] if best else -1.0,
            "best_val_loss": best["val_loss"] if best else math.inf,
            "test_accuracy": test_accuracy, "test_loss": test_loss,
            "test_confusion": json.dumps(confusion(test_accuracy)) if test_accuracy else None,
            "params": 421_642, "node_id": "node-1"}
    row = exports.trial_row(trial_id, TrialConfig(**settings), variant, status, history, last,
                            error)
    return row, [exports.epoch_row(trial_id, h) for h in history]


def write_sweep(directory: Path, spec: dict, trials: list[tuple[dict, list[dict]]]) -> str:
    """A results directory as `fmnist-ray sweep` leaves it: spec.yaml and the two tables."""
    uri = str(directory)
    exports.write_text(uri, exports.SPEC_FILE, spec_to_yaml(parse_spec(spec, "test")))
    exports.write_table(uri, exports.TRIALS_FILE, [row for row, _ in trials])
    exports.write_table(uri, exports.EPOCHS_FILE, [e for _, rows in trials for e in rows])
    return uri


def batch_size_sweep(directory: Path) -> str:
    """batch_size 32 / 64 / 512, two seeds each, with hand-picked numbers to check.

    Test accuracy: 32 -> 0.908 and 64 -> 0.912 (4 points apart, within the noise: pooled SD
    0.34 points, LSD 1.07), 512 -> 0.894 (worse). Validation picks 64.
    """
    spec = {"name": "batch", "trial": {"model": "cnn", "epochs": 8},
            "axes": {"batch_size": [32, 64, 512]}, "seeds": 2}
    tests = {32: (0.910, 0.906), 64: (0.915, 0.909), 512: (0.896, 0.892)}
    rows = []
    for seed in (0, 1):
        for size, accuracy in tests.items():
            # batch 32 overfits: validation loss bottoms out at epoch 3 and climbs after it.
            val = ([0.40, 0.31, 0.30, 0.31, 0.34, 0.37, 0.40, 0.43] if size == 32 else
                   [0.45, 0.38, 0.34, 0.32, 0.31, 0.305, 0.30, 0.30])
            train = [0.50 - 0.05 * n for n in range(8)]
            # best validation accuracy: 32 -> 0.87 (epoch 3), 64 -> 0.88, 512 -> 0.875
            bump = {32: [0, 0, 0, -0.01, -0.02, -0.03, -0.04, -0.05], 64: [0] * 8,
                    512: [-0.005] * 8}[size]
            history = [epoch(n + 1, train[n], val[n], 0.85 + 0.01 * min(n, 3) + bump[n],
                             seconds=64 / size * 4, train_eval_loss=train[n] - 0.05)
                       for n in range(8)]
            rows.append(trial(f"t{size}_{seed}", history, test_accuracy=accuracy[seed],
                              test_loss=0.30 + (0.92 - accuracy[seed]), batch_size=size,
                              seed=seed, epochs=8))
    return write_sweep(directory, spec, rows)


def study_sweep(directory: Path) -> str:
    """A random search over three axes with ASHA and every kind of trial ending.

    dropout and batch norm narrow the gap; one trial diverges (NaN/inf losses), one errors
    before its first epoch, one is still pending, and ASHA stops some early.
    """
    spec = {"name": "study", "description": "Synthetic multi-axis search with ASHA.",
            "trial": {"model": "cnn", "epochs": 6},
            "axes": {"model": ["cnn", "deep_cnn_bn"], "dropout": [0.0, 0.5],
                     "lr": {"loguniform": [1e-4, 1e-1]}},
            "search": "random", "num_samples": 2, "seeds": 2,
            "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2}}
    rng = np.random.default_rng(7)
    rows, n = [], 0
    for model in ("cnn", "deep_cnn_bn"):
        for dropout in (0.0, 0.5):
            for seed in (0, 1):
                for _ in range(2):
                    lr = float(10 ** rng.uniform(-4, -1))
                    damping = (0.5 if dropout else 1.0) * (0.4 if model == "deep_cnn_bn" else 1)
                    epochs_run = [6, 6, 2, 4][n % 4]
                    skill = rng.uniform(0, 0.01)
                    history = [epoch(e, 0.6 / e, 0.35 + damping * 0.03 * (e - 3) ** 2 / 3,
                                     0.88 + skill + 0.01 * min(e, 3)
                                     - damping * 0.004 * max(0, e - 3),
                                     seconds=3.0 if model == "cnn" else 4.5)
                               for e in range(1, epochs_run + 1)]
                    status = "completed" if epochs_run == 6 else "early_stopped"
                    accuracy = 0.905 + (model == "deep_cnn_bn") * 0.02 + rng.uniform(0, 0.005)
                    rows.append(trial(f"s{n:02d}", history, status, accuracy, 0.3 - accuracy / 10,
                                      model=model, dropout=dropout, lr=lr, seed=seed, epochs=6))
                    n += 1
    blown = [epoch(1, 0.9, 0.8, 0.7), epoch(2, 1e3, 2e3, 0.1), epoch(3, math.inf, math.nan, 0.1)]
    rows.append(trial("s90", blown, "diverged", 0.69, 0.81, model="cnn", dropout=0.0, lr=0.09))
    rows.append(trial("s91", [epoch(1, math.nan, math.nan, 0.1)], "diverged", model="cnn",
                      lr=0.1))
    rows.append(trial("s92", [], "errored", model="deep_cnn_bn", lr=0.01,
                      error="RuntimeError: CUDA out of memory </script><b>x</b>"))
    rows.append(trial("s93", [], "pending", model="cnn", dropout=0.5, lr=0.001))
    return write_sweep(directory, spec, rows)


def page_specs(page: str) -> list[dict]:
    """The Vega-Lite specs embedded in a report page, parsed strictly (NaN/inf rejected)."""
    text = re.search(r'<script type="application/json" id="chart-specs">(.*?)</script>', page,
                     re.S).group(1)

    def reject(constant: str):
        raise AssertionError(f"non-finite JSON constant {constant} in a chart")

    return json.loads(text.replace("<\\/", "</"), parse_constant=reject)


def render_in_chromium(page: Path, tmp_path: Path) -> str:
    """The DOM of `page` after headless Chromium ran its scripts, with no network at all."""
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chromium-profile'}",
               "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def assert_every_chart_rendered(dom: str) -> int:
    status = re.search(r'<div id="render-status" data-expected="(\d+)" data-done="(\w+)"', dom)
    assert status, "the page has no render status element"
    expected = int(status.group(1))
    problems = re.search(r'<ul id="render-problems"[^>]*>(.*?)</ul>', dom, re.S).group(1)
    assert problems == "", f"console errors or warnings: {problems}"
    assert status.group(2) == "true", "vegaEmbed did not finish"
    assert len(re.findall(r'class="chart-rendered"', dom)) == expected
    charts = re.findall(r'<div class="chart[^"]*" id="chart-\d+"', dom)
    assert len(charts) == expected
    assert len(re.findall(r'<svg[^>]*class="marks"', dom)) == expected
    return expected


# ---- the written summary ----------------------------------------------------------------------

def test_summary_states_each_axis_with_its_noise(tmp_path):
    lines = summarize(load_results(batch_size_sweep(tmp_path / "batch")))
    text = "\n".join(lines)
    assert lines[0] == "6 trials: 6 completed."
    # chosen on validation; test reported for it, with what it cannot be told apart from
    assert ("Chosen on validation accuracy (the test set never chooses): batch_size=64; its "
            "test accuracy 0.9120 (mean of 2 trials;") in text
    assert "equivalent to" not in text  # 2 seeds: nothing is shown to be equivalent
    assert ("Noise: the seed-to-seed SD of test accuracy is 0.34 points (pooled, 3 degrees of "
            "freedom), so with 2 seeds a difference of 1.90 points is detected with 80% power"
            ) in text
    assert ("batch_size: chosen 64 on validation; on test accuracy against it (margin ±0.50 "
            "points, Holm over 2 comparisons): 32 undecided (-0.40 points, 95% interval -2.19 "
            "to +1.39; needs about ") in text
    assert "512 undecided (-1.80 points, 95% interval -3.59 to -0.01; needs about " in text
    assert " best" not in text.replace("best-", "")  # no value is called best
    assert "tied" not in text and "overfit" not in text.lower().replace("overfitting", "")
    rise = next(line for line in lines if line.startswith("Rise of validation loss"))
    assert "batch_size=32 0.130 (0.130 to 0.130) (lowest at epoch 3 of 8)" in rise
    gap = next(line for line in lines if line.startswith("Gap at the last epoch"))
    assert "eval-mode loss on 6,000 training images" in gap
    assert "Dropout" not in text and "Batch norm" not in text  # the sweep varies neither
    assert "-1.90 points (below it at 95%)" in text  # a CNN sweep: set against the reference


def test_summary_of_a_search_compares_at_common_rungs(tmp_path):
    lines = summarize(load_results(study_sweep(tmp_path / "study")))
    text = "\n".join(lines)
    assert lines[0] == ("20 trials: 8 completed, 8 early-stopped, 2 diverged, 1 errored, "
                        "1 pending.")
    assert "8 trials stopped by ASHA at a rung." in text
    assert re.search(r"At epoch 6 \(8 trials reached it; validation accuracy up to that "
                     r"epoch, mean and trials per value\): model: ", text)
    assert re.search(r"lr Spearman ρ [+-]0\.\d\d \(p = 0\.\d\d", text)
    assert "Kruskal-Wallis p = " in text
    assert "Per axis, means pool" not in text  # unequal lengths are never pooled
    assert ("Batch norm: no two configurations here differ in batch norm alone") in text
    assert 'things missing from these results: see "What is missing" below.' in text


def test_summary_compares_a_cnn_with_the_reference(tmp_path):
    reference = REFERENCE["test_accuracy"]
    spec = {"name": "one", "trial": {"epochs": 1}}
    row = trial("a", [epoch(1, 0.3, 0.25, 0.93)], test_accuracy=reference + 0.004,
                test_loss=0.27, epochs=1)
    lines = summarize(load_results(write_sweep(tmp_path / "one", spec, [row])))
    assert any("+0.40 points (not distinguishable from it at 95%), test loss -0.008" in line
               for line in lines)
    assert ("Against published results: +0.5 points against 2-conv CNNs (0.92-0.93); -1.4 "
            "points against ResNet-18 (0.949); -2.4 points against WRN-28-10 (0.959); -2.8 "
            "points against WRN-28-10 + random erasing (0.963).") in lines
    assert lines[0] == "1 trial: 1 completed."
    assert any(line.startswith("One seed per configuration: there is no estimate") for line
               in lines)


def test_an_mlp_sweep_is_not_set_against_the_cnn_reference(tmp_path):
    spec = {"name": "mlp", "trial": {"model": "mlp", "epochs": 1}}
    row = trial("a", [epoch(1, 0.3, 0.25, 0.88)], test_accuracy=0.88, test_loss=0.33,
                model="mlp", epochs=1)
    text = "\n".join(summarize(load_results(write_sweep(tmp_path / "m", spec, [row]))))
    assert "reference" not in text and "published" not in text


# ---- partial and broken results ---------------------------------------------------------------

def test_missing_results_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as caught:
        build_report([str(tmp_path / "nope")], tmp_path / "report.html")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'nope'}: results directory not found; pass the")
    assert "\n" not in message


def test_truncated_trials_table_is_a_user_error(tmp_path):
    uri = batch_size_sweep(tmp_path / "batch")
    table = Path(uri) / exports.TRIALS_FILE
    table.write_bytes(table.read_bytes()[:200])
    with pytest.raises(UserError) as caught:
        build_report([uri], tmp_path / "report.html")
    message = str(caught.value)
    assert message.startswith(f"{uri}/trials.parquet: unreadable (")
    assert message.endswith("re-export it by resuming the sweep") and "\n" not in message
    assert not (tmp_path / "report.html").exists()


def test_directory_without_trials_table_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty/trials\.parquet: not found; pass the results "):
        build_report([str(tmp_path / "empty")], tmp_path / "report.html")


def test_report_without_epochs_says_what_is_missing(tmp_path):
    uri = batch_size_sweep(tmp_path / "batch")
    (Path(uri) / exports.EPOCHS_FILE).unlink()
    page = build_report([uri], tmp_path / "out" / "report.html").read_text()
    assert ("epochs.parquet is missing or unreadable: no learning curves, no overfitting over "
            "epochs") in page
    assert "No epoch history (epochs.parquet is missing or empty)." in page
    assert "no trial that learned has training and validation losses to compare" in page
    assert "Learning curves" in page and "All trials" in page
    assert len(page_specs(page)) >= 3  # test results, cost, best trial still drawn


def test_report_lists_unplanned_unfinished_and_historyless_trials(tmp_path):
    uri = study_sweep(tmp_path / "study")
    trials = exports.read_table(uri, exports.TRIALS_FILE)
    exports.write_table(uri, exports.TRIALS_FILE, trials.iloc[:10].to_dict("records"))
    assert "The spec plans 16 trials; trials.parquet holds 10." in load_results(uri).missing

    full = load_results(study_sweep(tmp_path / "again"))
    assert "2 trial(s) have no epochs recorded: s92 (errored), s93 (pending)." in full.missing
    assert "1 trial(s) unfinished (running, pending or interrupted): s93." in full.missing


def test_report_without_spec_guesses_the_axes(tmp_path):
    uri = batch_size_sweep(tmp_path / "batch")
    (Path(uri) / exports.SPEC_FILE).unlink()
    loaded = load_results(uri)
    assert [a.name for a in loaded.axes] == ["batch_size"]
    assert loaded.missing[0].startswith("spec.yaml is missing: the varied axes are guessed")


def test_a_search_whose_spec_is_lost_still_gets_its_page(tmp_path):
    uri = study_sweep(tmp_path / "study")  # ASHA-stopped trials, then spec.yaml lost
    (Path(uri) / exports.SPEC_FILE).unlink()
    page = build_report([uri], tmp_path / "study.html").read_text()
    assert "spec.yaml is missing" in page and "stopped by ASHA" in page


def test_report_of_a_sweep_with_no_trials_yet(tmp_path):
    spec = {"name": "fresh", "axes": {"lr": [0.001, 0.01]}}
    uri = write_sweep(tmp_path / "fresh", spec, [])
    page = build_report([uri], tmp_path / "fresh.html").read_text()
    assert "0 trials: none yet" in page
    assert "The spec plans 2 trials; trials.parquet holds 0." in page


# ---- the page ---------------------------------------------------------------------------------

def test_diverged_and_failed_trials_are_listed_and_never_reach_vega_as_nan(tmp_path):
    page = build_report([study_sweep(tmp_path / "study")], tmp_path / "study.html").read_text()
    specs = page_specs(page)  # strict parse: no NaN or Infinity anywhere
    for status in ("diverged", "errored", "pending", "early-stopped"):
        assert f'class="status {status.replace("-", "_")}">{status}</span>' in page
    assert "Not drawn (no finite epochs): s92 (errored), s93 (pending)." in page
    assert "Left out, on their own scale under Failed runs: s90 (diverged), s91 (diverged)." \
        in page
    assert "CUDA out of memory &lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in page
    assert "</script><b>" not in page
    titles = json.dumps(specs)
    for title in ("Parallel coordinates", "Parameter importance", "Where ASHA stopped",
                  "Test confusion matrix", "Per-class test accuracy", "Generalisation gap",
                  "Best epoch vs last epoch", "Training loss of the failed runs"):
        assert title in titles
    assert "Cost by lr" not in titles  # the learning rate does not change the cost
    assert all(name in titles for name in CLASS_NAMES)
    assert page.count("<script>") == 3  # error capture, the Vega runtime once, the embeds


def test_long_runs_get_an_epoch_axis_too(tmp_path):
    spec = {"name": "long", "trial": {"epochs": 30}, "axes": {"lr": [0.001, 0.01]}}
    rows = [trial(f"l{i}", [epoch(n, 1 / n, 1.2 / n, 0.8 + n / 300) for n in range(1, 31)],
                  test_accuracy=0.88 + i / 100, test_loss=0.3, lr=lr, epochs=30)
            for i, lr in enumerate((0.001, 0.01))]
    page = build_report([write_sweep(tmp_path / "long", spec, rows)], tmp_path / "long.html")
    assert "Validation accuracy" in page.read_text()


def test_page_is_self_contained(tmp_path):
    page = build_report([batch_size_sweep(tmp_path / "b")], tmp_path / "r.html").read_text()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', page)
    assert "window.vegaEmbed" in page and "vegaLite" in page


def test_several_sweeps_get_one_page_each_and_an_index(tmp_path):
    first = batch_size_sweep(tmp_path / "a" / "batch")
    second = batch_size_sweep(tmp_path / "b" / "batch")  # same folder name: suffixed
    third = study_sweep(tmp_path / "study")
    index = build_report([first, second, third], tmp_path / "out" / "study.html")
    assert index == tmp_path / "out" / "study.html"
    pages = sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".html")
    assert pages == ["study-batch-2.html", "study-batch.html", "study-study.html", "study.html"]
    text = index.read_text()
    for name in ("study-batch.html", "study-batch-2.html", "study-study.html"):
        assert f'<a href="{name}">' in text
        assert (tmp_path / "out" / name.replace(".html", ".findings.json")).exists()
    assert "batch_size=64" in text and "1.90 points (2 seeds)" in text  # detectable at 80%
    assert "The original study, claim by claim" in text
    assert '<a href="study.html">← all sweeps</a>' in (tmp_path / "out" /
                                                       "study-batch.html").read_text()


def test_all_finds_every_sweep_in_a_storage_uri(tmp_path):
    """--all over a storage URI (file:// here, s3:// or gs:// on a cluster) finds each sweep."""
    batch_size_sweep(tmp_path / "store" / "batch")
    study_sweep(tmp_path / "store" / "study")
    (tmp_path / "store" / "not-a-sweep").mkdir()
    done = run_cli("report", "--all", f"file://{tmp_path / 'store'}",
                   "-o", str(tmp_path / "out" / "all.html"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "all-batch.findings.json", "all-batch.html", "all-study.findings.json", "all-study.html",
        "all.findings.json", "all.html"]
    empty = run_cli("report", "--all", str(tmp_path / "out"), "-o", str(tmp_path / "x.html"))
    assert empty.returncode == 2 and "no sweep results found" in empty.stderr


def test_report_never_overwrites_a_file_it_did_not_write(tmp_path):
    uri = batch_size_sweep(tmp_path / "batch")
    before = (Path(uri) / exports.TRIALS_FILE).read_bytes()
    with pytest.raises(UserError, match="not an .html path"):
        build_report([uri], Path(uri) / exports.TRIALS_FILE)
    assert (Path(uri) / exports.TRIALS_FILE).read_bytes() == before
    notes = tmp_path / "notes.html"
    notes.write_text("<p>my notes</p>")
    with pytest.raises(UserError, match="notes.html: exists and is not a report this command "
                                        "wrote; delete it or pass another --output"):
        build_report([uri], notes)
    assert notes.read_text() == "<p>my notes</p>"
    # several sweeps: every page is checked before any is written
    (tmp_path / "study-batch.findings.json").write_text("{}")
    with pytest.raises(UserError, match="study-batch.findings.json: exists"):
        build_report([uri, study_sweep(tmp_path / "study")], tmp_path / "study.html")
    assert not (tmp_path / "study.html").exists() and not (tmp_path / "study-batch.html").exists()
    # its own report it writes again
    first = build_report([uri], tmp_path / "again.html")
    assert build_report([uri], first) == first


def test_output_must_be_a_file(tmp_path):
    with pytest.raises(UserError, match="is a directory; pass an .html file path"):
        build_report([batch_size_sweep(tmp_path / "b")], tmp_path)


def test_report_never_imports_ray(tmp_path):
    uri = batch_size_sweep(tmp_path / "b")
    code = ("import sys; from pathlib import Path; from fmnist_ray.report import build_report; "
            f"build_report([{uri!r}], Path({str(tmp_path / 'r.html')!r})); "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@needs_chromium
def test_every_chart_renders_offline_in_chromium(tmp_path):
    page = build_report([study_sweep(tmp_path / "study")], tmp_path / "study.html")
    expected = assert_every_chart_rendered(render_in_chromium(page, tmp_path))
    assert expected == len(page_specs(page.read_text())) >= 12


@needs_chromium
def test_the_study_index_and_its_claims_chart_render_in_chromium(tmp_path):
    index = build_report([batch_size_sweep(tmp_path / "batch"), study_sweep(tmp_path / "study")],
                         tmp_path / "out" / "study.html")
    specs = page_specs(index.read_text())
    assert len(specs) == 1 and "vconcat" in specs[0]  # the claims chart
    assert assert_every_chart_rendered(render_in_chromium(index, tmp_path)) == 1


# ---- on the results of a real sweep -----------------------------------------------------------

@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory) -> str:
    """A real two-seed smoke sweep on tiny IDX files of random pixels and random labels
    (nothing to learn: every trial ends at chance), about 30 s on 2 cores."""
    base = tmp_path_factory.mktemp("smoke")
    rng = np.random.default_rng(0)
    data = base / "data"
    data.mkdir()
    for key, shape in (("train_images", (600, 28, 28)), ("train_labels", (600,)),
                       ("test_images", (200, 28, 28)), ("test_labels", (200,))):
        high = 10 if key.endswith("labels") else 256
        write_idx(data / FILES[key].name, rng.integers(0, high, shape))
    cli = shutil.which("fmnist-ray", path=str(Path(sys.executable).parent))
    command = [cli, "sweep", str(ROOT / "sweeps" / "smoke.yaml"), "--storage", str(base / "runs"),
               "--quiet", "--data-dir", str(data), "--set", "trial.epochs=2", "--set", "seeds=2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RAY_DEDUP_LOGS": "0"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return str(base / "runs" / "smoke")


@pytest.mark.slow
def test_report_of_a_real_sweep(smoke_results, tmp_path):
    spec = yaml.safe_load((Path(smoke_results) / exports.SPEC_FILE).read_text())
    assert spec["axes"] == {"lr": [0.001, 0.003]}
    loaded = load_results(smoke_results)
    assert loaded.missing == []
    lines = summarize(loaded)
    # Random labels cannot be learned: through Ray, every trial ends `failed_to_learn`.
    assert lines[0] == "4 trials: 4 failed-to-learn."
    assert ("lr: no value has a completed trial; 0.001 failed to learn on 2 of 2 seeds "
            "(validation at chance); 0.003 failed to learn on 2 of 2 seeds") in "\n".join(lines)
    page = build_report([smoke_results], tmp_path / "smoke.html").read_text()
    assert "Sweep smoke" in page and "Training loss of the failed runs" in page
    assert "No trial learned, so none is chosen." in page


@pytest.mark.slow
@needs_chromium
def test_real_sweep_report_renders_in_chromium(smoke_results, tmp_path):
    page = build_report([smoke_results], tmp_path / "smoke.html")
    assert assert_every_chart_rendered(render_in_chromium(page, tmp_path)) == len(
        page_specs(page.read_text()))

"""Fault injection on a real local Ray: nothing already finished is lost or run twice."""

import json
import os
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest

from .conftest import CLI, REPO, run_cli

SLOW = """
name: killme
trial: {model: mlp, hidden_sizes: [64], epochs: 6, batch_size: 8}
axes:
  lr: [0.001, 0.002, 0.003]
max_concurrent_trials: 1
"""


def _starts(experiment, trial_id) -> int:
    """How many times a trial started from scratch: epoch 1 lines in Ray's own result log."""
    log = next(experiment.glob(f"*{trial_id}*/result.json")).read_text().splitlines()
    return sum(json.loads(line)["epoch"] == 1 for line in log)


def _wait_for_completed_trial(experiment, process, timeout=180.0) -> pd.DataFrame:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sweep ended before it could be killed"
        try:
            trials = pd.read_parquet(experiment / "trials.parquet")
            if (trials["status"] == "completed").any():
                return trials
        except (FileNotFoundError, OSError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError("no trial completed in time")


@pytest.mark.slow  # two runs of 3 x 6 long epochs
def test_sigkilled_sweep_resumes_without_losing_or_repeating_work(tmp_path, synthetic_dir):
    spec = tmp_path / "killme.yaml"
    spec.write_text(SLOW)
    experiment = tmp_path / "out" / "killme"
    process = subprocess.Popen(
        [*CLI, "sweep", str(spec), "--storage", str(tmp_path / "out"), "--quiet",
         "--data-dir", str(synthetic_dir)], cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    before = _wait_for_completed_trial(experiment, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = before.loc[before["status"] == "completed", "trial_id"].tolist()

    result = run_cli("resume", str(experiment), "--quiet", "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    trials = pd.read_parquet(experiment / "trials.parquet")
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    assert len(trials) == 3 and set(trials["status"]) == {"completed"}
    assert trials["epochs_run"].tolist() == [6, 6, 6]
    assert len(epochs) == 3 * 6 and not epochs.duplicated(["trial_id", "epoch"]).any()
    for trial_id in finished_before:
        assert _starts(experiment, trial_id) == 1


def test_resume_refuses_a_changed_search_space(tmp_path, smoke_copy, synthetic_dir):
    spec = tmp_path / "smoke.yaml"
    spec.write_text((REPO / "sweeps" / "smoke.yaml").read_text().replace(
        "[0.001, 0.003]", "[0.001, 0.003, 0.01]"))
    again = run_cli("sweep", str(spec), "--storage", str(smoke_copy), "--quiet", "--resume",
                    "--data-dir", str(synthetic_dir))
    assert again.returncode == 2
    assert "the spec changed since this sweep started (axes)" in again.stderr
    assert "fmnist-ray resume" in again.stderr


@pytest.mark.slow  # two runs
def test_resume_continues_from_the_checkpoint_before_a_deleted_newest_one(tmp_path,
                                                                         synthetic_dir):
    spec = tmp_path / "ckpt.yaml"
    spec.write_text("name: ckpt\ntrial: {model: mlp, hidden_sizes: [16], epochs: 6}\n"
                    "axes: {lr: [0.001]}\nmax_failures: 0\n")
    experiment = tmp_path / "ckpt"
    # The trial errors after epoch 4 (checkpoints 3 and 4 kept); then its newest is lost.
    first = run_cli("sweep", str(spec), "--storage", str(tmp_path), "--quiet",
                    "--data-dir", str(synthetic_dir), env={"FMNIST_RAY_FAULT": "error:lr=0.001@4"})
    assert first.returncode == 1
    trial_dir = next(experiment.glob("run_trial_*"))
    checkpoints = sorted(trial_dir.glob("checkpoint_*"))
    assert [c.name for c in checkpoints] == ["checkpoint_000002", "checkpoint_000003"]
    shutil.rmtree(checkpoints[-1])

    result = run_cli("resume", str(experiment), "--errored", "resume", "--quiet",
                     "--data-dir", str(synthetic_dir), env={"FMNIST_RAY_FAULT": ""})
    assert result.returncode == 0, result.stderr
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert trials["status"].tolist() == ["completed"] and trials["epochs_run"].tolist() == [6]
    lines = (trial_dir / "result.json").read_text().splitlines()
    log = [json.loads(line)["epoch"] for line in lines]
    assert log[-3:] == [4, 5, 6]  # epoch 4 redone from the epoch-3 checkpoint
    assert log.count(1) == 1


@pytest.mark.slow  # two runs of 3 x 6 long epochs
def test_ctrl_c_keeps_finished_trials_and_prints_the_resume_command(tmp_path, synthetic_dir):
    spec = tmp_path / "killme.yaml"
    spec.write_text(SLOW)
    experiment = tmp_path / "killme"
    process = subprocess.Popen(
        [*CLI, "sweep", str(spec), "--storage", str(tmp_path), "--quiet",
         "--data-dir", str(synthetic_dir)], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ})
    _wait_for_completed_trial(experiment, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"Resume with: fmnist-ray resume {experiment}" in out
    assert "sweep stopped after" in out and "sweep finished" not in out
    trials = pd.read_parquet(experiment / "trials.parquet")
    done = int((trials["status"] == "completed").sum())
    assert done >= 1

    resumed = run_cli("resume", str(experiment), "--quiet", "--data-dir", str(synthetic_dir))
    assert resumed.returncode == 0, resumed.stderr
    unfinished = sorted(trials.loc[trials["status"] != "completed", "trial_id"])
    assert resumed.stdout.splitlines()[0] == (
        f"resuming {experiment}: keeping {done} finished trial(s); running {len(unfinished)}: "
        f"{', '.join(unfinished)}")


def test_report_survives_truncated_and_missing_exports(tmp_path, smoke_copy):
    experiment = smoke_copy / "smoke"
    exported = pd.read_parquet(experiment / "trials.parquet")
    trials_file = experiment / "trials.parquet"
    trials_file.write_bytes(trials_file.read_bytes()[:100])  # truncated mid-write
    (experiment / "epochs.parquet").unlink()

    page = tmp_path / "smoke.html"
    report = run_cli("report", str(experiment), "-o", str(page))
    assert report.returncode == 0, report.stderr
    text = page.read_text()
    assert "rebuilt from Ray&#x27;s own result files of 2 trial(s)" in text or \
        "rebuilt from Ray's own result files of 2 trial(s)" in text
    assert "epochs.parquet is missing or unreadable: rebuilt" in text
    for trial_id in exported["trial_id"]:
        assert trial_id in text

    (experiment / "spec.yaml").unlink()
    for log in experiment.glob("*/result.json"):
        log.unlink()
    broken = run_cli("report", str(experiment), "-o", str(page))
    assert broken.returncode == 2
    assert broken.stderr.count("\n") == 1 and "trials.parquet" in broken.stderr

"""Faults around a sweep on a real local Ray: no dead ends, one driver, a full disk, a Ctrl-C
at any moment of start-up."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import CLI, REPO, run_cli

SWEEP = """
name: {name}
trial: {{model: mlp, hidden_sizes: {hidden}, epochs: {epochs}, batch_size: 64}}
axes:
  lr: [0.001, 0.003]
max_concurrent_trials: 1
"""


def _start(tmp_path, synthetic_dir, name, hidden="[32]", epochs=3, storage=None, cli=CLI):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(SWEEP.format(name=name, hidden=hidden, epochs=epochs))
    storage = storage or tmp_path / "out"
    # Ctrl-C's default action in the child even where this run inherited SIGINT ignored.
    process = subprocess.Popen(
        [*cli, "sweep", str(spec), "--storage", str(storage), "--quiet", "--data-dir",
         str(synthetic_dir)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return process, Path(storage) / name


def _wait_for(condition, process, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _all_completed(experiment: Path, count: int) -> None:
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert len(trials) == count and set(trials["status"]) == {"completed"}, trials


def test_a_sweep_killed_before_ray_saved_its_state_can_be_continued(tmp_path, synthetic_dir):
    process, experiment = _start(tmp_path, synthetic_dir, "early")
    _wait_for(lambda: (experiment / "spec.yaml").exists(), process)
    process.kill()
    process.communicate()
    assert not list(experiment.glob("experiment_state-*")), "Ray saved its state already"

    result = run_cli("resume", str(experiment), "--quiet", "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    _all_completed(experiment, 2)


def _lock_holder(experiment: Path) -> dict:
    try:
        return json.loads((experiment / ".driver.lock").read_text() or "{}")
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_resume_beside_a_live_sweep_is_refused_and_the_sweep_finishes(tmp_path, synthetic_dir):
    process, experiment = _start(tmp_path, synthetic_dir, "live", epochs=500)
    _wait_for(lambda: _lock_holder(experiment).get("pid") == process.pid
              and list(experiment.glob("experiment_state-*")), process)

    result = run_cli("resume", str(experiment), "--quiet", "--data-dir", str(synthetic_dir))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert f"this sweep is running already (process {process.pid} on" in result.stderr
    second = run_cli("sweep", str(tmp_path / "live.yaml"), "--storage", str(tmp_path / "out"),
                     "--quiet", "--data-dir", str(synthetic_dir))
    assert second.returncode == 2 and "running already" in second.stderr
    assert process.poll() is None, "the sweep ended before the second driver was tried"

    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    _all_completed(experiment, 2)


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs (root only), made bigger by `grow()`; unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip("needs permission to mount a tmpfs")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=400m", str(mount)], check=True)

    yield mount, grow
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_storage_that_fills_up_ends_the_sweep_with_one_line_and_resume_completes_it(
        tmp_path, synthetic_dir, small_disk):
    disk, grow = small_disk
    # Checkpoints of 1024x1024 MLPs (about 22 MB each) fill 40 MiB within the first trial.
    process, experiment = _start(tmp_path, synthetic_dir, "full", hidden="[1024, 1024]",
                                 epochs=4, storage=disk)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err + out
    assert f"{experiment}: no space left on the device" in err
    assert f"fmnist-ray resume {experiment} --errored resume" in err
    assert not list(experiment.glob("*.tmp-*"))

    grow()
    result = run_cli("resume", str(experiment), "--errored", "resume", "--quiet",
                     "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    _all_completed(experiment, 2)
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert sorted(epochs.groupby("trial_id").size()) == [4, 4]



def _stopped_at_start_up(process, experiment: Path) -> None:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in out + err, err
    # The command's own answer; on a loaded machine the Ctrl-C can land just after Ray Tune has
    # taken SIGINT over, and Tune's stop ends in the summary's answer: both name the resume.
    answers = (f"stopped (Ctrl-C); finished trials are kept; resume with: fmnist-ray resume "
               f"{experiment}",
               f"stopped before every trial finished; finished trials are kept. Resume with: "
               f"fmnist-ray resume {experiment}")
    assert any(answer in out for answer in answers), out


def test_ctrl_c_right_after_the_spec_is_written_exits_130_and_resume_completes(
        tmp_path, synthetic_dir):
    process, experiment = _start(tmp_path, synthetic_dir, "early_ctrl_c")
    _wait_for(lambda: (experiment / "spec.yaml").exists(), process)
    process.send_signal(signal.SIGINT)
    _stopped_at_start_up(process, experiment)

    result = run_cli("resume", str(experiment), "--quiet", "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    _all_completed(experiment, 2)


# `fmnist-ray` where the Ctrl-C lands in Ray's first `ray.put` (the trials' shared data) and
# the KeyboardInterrupt is dropped there, as code that checks for signals and ignores the error
# does: the sweep used to run to its end and exit 0.
SWALLOWED_CTRL_C = """
import signal, sys
import ray
from fmnist_ray.cli.app import app
put = ray.put
def put_dropping_a_ctrl_c(*args, **kwargs):
    ray.put = put
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        pass
    return put(*args, **kwargs)
ray.put = put_dropping_a_ctrl_c
sys.argv[0] = "fmnist-ray"
app()
"""


def test_a_ctrl_c_swallowed_during_start_up_still_stops_the_sweep(tmp_path, synthetic_dir):
    process, experiment = _start(tmp_path, synthetic_dir, "swallowed",
                                 cli=[sys.executable, "-c", SWALLOWED_CTRL_C])
    _stopped_at_start_up(process, experiment)
    assert not (experiment / "trials.parquet").exists(), "a trial ran after the Ctrl-C"

    result = run_cli("resume", str(experiment), "--quiet", "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    _all_completed(experiment, 2)

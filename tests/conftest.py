"""Shared fixtures: tiny synthetic Fashion-MNIST files that the real loader reads, and one
smoke sweep on a real local Ray that the tests which only read (or damage a copy of) a
finished sweep share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmnist_ray.training.data import DEBIAN_DIR, FILES, write_idx

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "fmnist_ray.cli.app"]


def synthetic_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: each class lights a different 7x28 band, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = int(label) * 2
        images[i, row:row + 7, :] = 200 + rng.integers(0, 55)
    return images, labels


def write_dataset(directory: Path, n_train: int = 1200, n_test: int = 300) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_split(n_train, seed=1)
    test_x, test_y = synthetic_split(n_test, seed=2)
    for key, array in (("train_images", train_x), ("train_labels", train_y),
                       ("test_images", test_x), ("test_labels", test_y)):
        write_idx(directory / FILES[key].name, array)
    return directory


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture
def fresh_copy(tmp_path, synthetic_dir) -> Path:
    """A private copy of the synthetic dataset that a test may damage."""
    target = tmp_path / "data"
    target.mkdir()
    for spec in FILES.values():
        (target / spec.name).write_bytes((synthetic_dir / spec.name).read_bytes())
    return target


def run_cli(*args: str, timeout: float = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """Run `fmnist-ray ARGS` in a child process, as a user would."""
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory, synthetic_dir) -> tuple[subprocess.CompletedProcess, Path]:
    """`fmnist-ray sweep sweeps/smoke.yaml` on the synthetic data, run once for the session:
    the finished run and its storage folder (holding `smoke/`). Read it; damage a copy."""
    storage = tmp_path_factory.mktemp("smoke-storage")
    return run_cli("sweep", "sweeps/smoke.yaml", "--storage", str(storage), "--data-dir",
                   str(synthetic_dir)), storage


@pytest.fixture
def smoke_copy(tmp_path, smoke_sweep) -> Path:
    """A private copy of the session's smoke sweep storage that a test may change."""
    result, storage = smoke_sweep
    assert result.returncode == 0, result.stderr
    return shutil.copytree(storage, tmp_path / "storage", symlinks=True)


REAL_DATA_MISSING = not all((DEBIAN_DIR / f.name).is_file() for f in FILES.values())
# Tests that need the installed dataset; they are skipped, with the reason shown, without it.
real_data = pytest.mark.realdata


# Slow tests in modules that do not mark their own, with their time on 2 cores (AMD EPYC).
SLOW = {
    "tests/test_faults.py::test_resume_beside_a_live_sweep_is_refused_and_the_sweep_finishes":
        "67 s",
    "tests/test_faults.py::"
    "test_storage_that_fills_up_ends_the_sweep_with_one_line_and_resume_completes_it": "37 s",
    "tests/test_cluster.py::test_sweep_with_address_runs_trials_on_two_nodes": "34 s",
    "tests/test_cluster.py::test_a_trial_on_a_removed_node_moves_and_finishes": "43 s",
    "tests/test_cluster.py::test_node_local_storage_on_a_multi_node_cluster_is_refused": "28 s",
    "tests/test_cluster.py::test_sweep_submitted_as_ray_job_is_readable_by_report": "26 s",
    "tests/test_cluster.py::"
    "test_without_address_a_sweep_starts_its_own_ray_beside_a_running_cluster": "16 s",
}


def pytest_collection_modifyitems(config, items) -> None:
    skip = pytest.mark.skip(reason=f"no real dataset in {DEBIAN_DIR} "
                                   f"(apt-get install dataset-fashion-mnist)")
    for item in items:
        if item.nodeid.split("[")[0] in SLOW:
            item.add_marker(pytest.mark.slow)
        if REAL_DATA_MISSING and item.get_closest_marker("realdata"):
            item.add_marker(skip)

"""Shared fixtures: tiny synthetic Fashion-MNIST files that the real loader reads."""

from __future__ import annotations

import os
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


real_data = pytest.mark.skipif(
    not all((DEBIAN_DIR / f.name).is_file() for f in FILES.values()),
    reason=f"no real dataset in {DEBIAN_DIR} (apt-get install dataset-fashion-mnist)",
)

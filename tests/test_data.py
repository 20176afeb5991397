import gzip
import shutil

import numpy as np
import pytest

from fmnist_ray.errors import UserError
from fmnist_ray.training import data
from fmnist_ray.training.data import DEBIAN_DIR, FILES, load_fashion_mnist, read_idx, write_idx

from .conftest import real_data, run_cli


def test_loads_synthetic_files_with_a_fixed_validation_split(synthetic_dir):
    first = load_fashion_mnist(synthetic_dir)
    second = load_fashion_mnist(synthetic_dir)
    assert first.sizes == {"train": 1080, "val": 120, "test": 300}
    assert first.train_images.shape == (1080, 28, 28) and first.train_images.dtype == np.uint8
    assert np.array_equal(first.val_labels, second.val_labels)
    assert first.source == str(synthetic_dir)
    assert second.verified_copy is None  # only the official dataset is kept verified


def test_explicit_directory_with_a_missing_file_names_it(fresh_copy):
    (fresh_copy / FILES["test_labels"].name).unlink()
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz: file not found"):
        load_fashion_mnist(fresh_copy)


def test_truncated_gzip_is_reported(fresh_copy):
    path = fresh_copy / FILES["train_images"].name
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz: not a readable gzip"):
        load_fashion_mnist(fresh_copy)


def test_not_gzip_at_all_is_reported(fresh_copy):
    (fresh_copy / FILES["train_labels"].name).write_bytes(b"hello, not gzip")
    with pytest.raises(UserError, match="not a readable gzip file"):
        load_fashion_mnist(fresh_copy)


def test_content_shorter_than_its_header_declares(fresh_copy):
    path = fresh_copy / FILES["test_images"].name
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-784]))
    with pytest.raises(UserError, match="header declares 300 items.*truncated or corrupt"):
        load_fashion_mnist(fresh_copy)


def test_wrong_magic_number(fresh_copy):
    # Labels written where images belong: magic 2049 instead of 2051.
    write_idx(fresh_copy / FILES["train_images"].name, np.zeros(10, dtype=np.uint8))
    with pytest.raises(UserError, match="magic number is 2049, expected 2051"):
        load_fashion_mnist(fresh_copy)


def test_wrong_image_size(fresh_copy):
    write_idx(fresh_copy / FILES["test_images"].name, np.zeros((5, 32, 32), dtype=np.uint8))
    with pytest.raises(UserError, match="images are 32x32, expected 28x28"):
        load_fashion_mnist(fresh_copy)


def test_label_out_of_range(fresh_copy):
    write_idx(fresh_copy / FILES["test_labels"].name, np.full(300, 12, dtype=np.uint8))
    with pytest.raises(UserError, match="label 12 is outside 0-9"):
        load_fashion_mnist(fresh_copy)


def test_images_and_labels_must_match(fresh_copy):
    write_idx(fresh_copy / FILES["test_labels"].name, np.zeros(299, dtype=np.uint8))
    with pytest.raises(UserError, match="299 labels for 300 images"):
        load_fashion_mnist(fresh_copy)


def test_official_size_file_with_wrong_content_fails_the_checksum(tmp_path):
    path = tmp_path / FILES["train_labels"].name
    write_idx(path, np.zeros(60_000, dtype=np.uint8))
    with pytest.raises(UserError, match="checksum does not match the official"):
        read_idx(path, FILES["train_labels"])


def test_cli_truncated_file_gives_one_line_and_exit_code_2(fresh_copy):
    path = fresh_copy / FILES["train_images"].name
    path.write_bytes(path.read_bytes()[:1000])
    result = run_cli("data", "--data-dir", str(fresh_copy))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "train-images-idx3-ubyte.gz" in lines[0] and "Traceback" not in result.stderr


def test_cli_data_reports_where_and_sizes(synthetic_dir):
    result = run_cli("data", "--data-dir", str(synthetic_dir))
    assert result.returncode == 0, result.stderr
    assert str(synthetic_dir) in result.stdout.replace("\n", "")
    assert "train 1,080 / validation 120 / test 300" in result.stdout


@real_data
def test_real_dataset_verifies_and_splits_54k_6k_10k():
    data = load_fashion_mnist()
    assert data.sizes == {"train": 54_000, "val": 6_000, "test": 10_000}
    assert set(np.unique(data.test_labels)) == set(range(10))
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


@real_data
def test_the_official_files_are_verified_once_then_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    source = tmp_path / "fashion"
    source.mkdir()
    for spec in FILES.values():
        shutil.copy2(DEBIAN_DIR / spec.name, source / spec.name)
    first = load_fashion_mnist(source)
    second = load_fashion_mnist(source)
    assert first.verified_copy is None and second.verified_copy is not None
    for name in data.SPLITS:
        assert np.array_equal(getattr(first, name), getattr(second, name))
    # A source file that changes is verified again, never served from the cache.
    labels = read_idx(source / FILES["train_labels"].name, FILES["train_labels"]).copy()
    labels[0] = (labels[0] + 1) % 10
    write_idx(source / FILES["train_labels"].name, labels)
    with pytest.raises(UserError, match="checksum does not match the official"):
        load_fashion_mnist(source)

"""Where results live: one spelling of a storage root and of a sweep's folder."""

from pathlib import Path

import pytest

from fmnist_ray.errors import UserError
from fmnist_ray.results.storage import experiment_uri, normalize_storage, results_location


def test_a_storage_root_is_an_absolute_path_or_a_uri_without_its_trailing_slash(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_storage("results/") == str(tmp_path / "results")
    assert normalize_storage("~/runs") == str(Path.home() / "runs")
    assert normalize_storage("s3://bucket/runs/") == "s3://bucket/runs"
    assert experiment_uri("results/", "lr") == str(tmp_path / "results" / "lr")
    assert experiment_uri("gs://bucket/", "lr") == "gs://bucket/lr"


def test_a_results_folder_splits_into_its_storage_and_name():
    assert results_location("results/batch_size/") == (
        "results/batch_size", "results", "batch_size")
    assert results_location("batch_size") == ("batch_size", ".", "batch_size")
    assert results_location("s3://bucket/runs/lr") == ("s3://bucket/runs/lr",
                                                        "s3://bucket/runs", "lr")
    with pytest.raises(UserError, match="unknown storage scheme 'foo://'"):
        results_location("foo://bar/lr")

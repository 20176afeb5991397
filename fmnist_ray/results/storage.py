"""Where results live: a local directory or a URI such as `s3://bucket/dir` (no I/O here)."""

from __future__ import annotations

from pathlib import Path

from fmnist_ray.errors import UserError

# The URI schemes pyarrow's filesystems (and so Ray Tune's storage) can write to.
SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs", "file")


def is_uri(storage: str) -> bool:
    """Whether `storage` is a URI such as `s3://bucket/dir` rather than a local path."""
    return "://" in storage


def check_scheme(uri: str, label: str) -> None:
    """Refuse a URI whose scheme no storage backend knows (pyarrow would fail deep inside)."""
    scheme = uri.split("://", 1)[0]
    if is_uri(uri) and scheme not in SCHEMES:
        raise UserError(f"{label}: unknown storage scheme '{scheme}://'; use a local directory "
                        f"or a URI starting with {', '.join(f'{s}://' for s in SCHEMES[:3])} "
                        f"(or {', '.join(f'{s}://' for s in SCHEMES[3:])})")


def normalize_storage(storage: str) -> str:
    """A storage root spelt one way: a URI without its trailing `/`, a local directory as an
    absolute path (a resumed sweep may run from another working directory)."""
    if is_uri(storage):
        return storage.rstrip("/")
    return str(Path(storage).expanduser().resolve())


def results_location(results_dir: str) -> tuple[str, str, str]:
    """`results/batch_size/` -> (`results/batch_size`, `results`, `batch_size`): a sweep's
    folder as given less its trailing `/`, its storage (`.` for a bare name) and its name;
    the inverse of `experiment_uri`."""
    check_scheme(results_dir, results_dir)
    uri = results_dir.rstrip("/")
    storage, _, name = uri.rpartition("/")
    return uri, storage or ".", name


def experiment_uri(storage: str, name: str) -> str:
    """Where the sweep `name` keeps its results under `storage` (a directory or a URI)."""
    if is_uri(storage):
        check_scheme(storage, f"--storage {storage}")
        return f"{normalize_storage(storage)}/{name}"
    return str(Path(normalize_storage(storage)) / name)

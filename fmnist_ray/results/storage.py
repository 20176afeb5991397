"""Where results live: a local directory or a URI such as `s3://bucket/dir` (no I/O here)."""

from __future__ import annotations

from pathlib import Path


def is_uri(storage: str) -> bool:
    """Whether `storage` is a URI such as `s3://bucket/dir` rather than a local path."""
    return "://" in storage


def split_experiment_uri(uri: str) -> tuple[str, str]:
    """`results/batch_size` -> (`results`, `batch_size`): the storage (`.` for a bare name)
    and the sweep name, the inverse of `experiment_uri`."""
    storage, _, name = uri.rstrip("/").rpartition("/")
    return storage or ".", name


def experiment_uri(storage: str, name: str) -> str:
    """Where the sweep `name` keeps its results under `storage` (a directory or a URI)."""
    if is_uri(storage):
        return f"{storage.rstrip('/')}/{name}"
    return str(Path(storage).expanduser().resolve() / name)

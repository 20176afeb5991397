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


def split_experiment_uri(uri: str) -> tuple[str, str]:
    """`results/batch_size` -> (`results`, `batch_size`): the storage (`.` for a bare name)
    and the sweep name, the inverse of `experiment_uri`."""
    check_scheme(uri, uri)
    storage, _, name = uri.rstrip("/").rpartition("/")
    return storage or ".", name


def experiment_uri(storage: str, name: str) -> str:
    """Where the sweep `name` keeps its results under `storage` (a directory or a URI)."""
    if is_uri(storage):
        check_scheme(storage, f"--storage {storage}")
        return f"{storage.rstrip('/')}/{name}"
    return str(Path(storage).expanduser().resolve() / name)

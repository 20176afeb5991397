"""The trial store: every trial that ran to its end, kept by content key under the storage
root, so that no sweep trains a trial that one before it (or an earlier run of itself) finished.

Under `<storage>/trial-store/`:
- `entries/<key>.json`: one trial, written atomically; the truth, safe with sweeps running at once;
- `checkpoints/<key>.pt`: its final training state (the best epoch's weights inside);
- `index.json`: the entries gathered in one file at the end of each sweep, so a sweep reads the
  store with one read and one listing; entries it misses are read one by one.

Ray-free: the sweep layer hands in what its trials reported.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from fmnist_ray.config import TrialConfig
from fmnist_ray.results.exports import open_storage, write_bytes
from fmnist_ray.results.storage import is_uri, normalize_storage

STORE_DIR = "trial-store"
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class TrialKeys:
    """How trials are identified in one sweep: by their settings, on this data, trained by
    this version of the training numerics (`fmnist_ray.training.loop.NUMERICS_VERSION`)."""

    data_fingerprint: str
    numerics: int

    def key(self, config: TrialConfig) -> str:
        identity = {"config": config.model_dump(mode="json"), "data": self.data_fingerprint,
                    "numerics": self.numerics}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class StoredTrial:
    """A trial that ran to its end: what it reported each epoch, and its final state."""

    key: str
    sweep: str  # the name of the sweep that trained it
    trial_id: str
    config: dict[str, Any]
    results: list[dict[str, Any]]  # what the trial reported, one dict per epoch
    checkpoint: str | None  # its final state in the store (a path, or a URI on cloud storage)

    @property
    def reused_from(self) -> str:
        return f"{self.sweep}/{self.trial_id}"


class TrialStore:
    """The store of one storage root (a directory or a URI such as `s3://bucket/dir`)."""

    def __init__(self, storage: str):
        # A string only (the store is pickled with Ray's callbacks), and an absolute one: a
        # resumed sweep may run from another working directory.
        self.uri = f"{normalize_storage(storage)}/{STORE_DIR}"

    def load(self) -> dict[str, StoredTrial]:
        """Every stored trial by key: the index, plus the entries written since it was built."""
        fs, root = open_storage(self.uri)
        index = _read_json(fs, f"{root}/{INDEX_FILE}")
        found = {k: e for k, v in (index if isinstance(index, dict) else {}).items()
                 if (e := _entry(v)) is not None}
        try:
            names = fs.get_file_info(pafs.FileSelector(f"{root}/entries", allow_not_found=True))
        except OSError:
            return found
        for info in names:
            key = info.base_name.removesuffix(".json")
            if key in found or not info.base_name.endswith(".json"):
                continue
            if (entry := _entry(_read_json(fs, info.path))) is not None:
                found[key] = entry
        return found

    def put(self, key: str, sweep: str, trial_id: str, config: TrialConfig,
            results: list[dict[str, Any]], checkpoint: bytes | None) -> StoredTrial:
        """Record a finished trial: its checkpoint first, then the entry that vouches for it."""
        fs, root = open_storage(self.uri)
        where = None
        if checkpoint is not None:
            write_bytes(fs, f"{root}/checkpoints/{key}.pt", checkpoint)
            where = f"{self.uri}/checkpoints/{key}.pt"
        stored = StoredTrial(key, sweep, trial_id, config.model_dump(mode="json"), results,
                             where)
        write_bytes(fs, f"{root}/entries/{key}.json", json.dumps(asdict(stored)).encode())
        return stored

    def reindex(self) -> None:
        """Gather every entry into the index (under a lock where the storage is local)."""
        with self._lock():
            fs, root = open_storage(self.uri)
            entries = {k: asdict(v) for k, v in self.load().items()}
            if entries:
                write_bytes(fs, f"{root}/{INDEX_FILE}", json.dumps(entries).encode())

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        if is_uri(self.uri):  # no locks on object stores: entries stay the truth
            yield
            return
        path = Path(self.uri) / "index.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def _entry(raw: Any) -> StoredTrial | None:
    """A stored trial from its JSON, or None for one this version cannot read (it trains)."""
    try:
        return StoredTrial(**raw)
    except TypeError:
        return None


def _read_json(fs: pafs.FileSystem, path: str) -> Any:
    try:
        with fs.open_input_file(path) as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):  # missing, or half-written by a process that died
        return None

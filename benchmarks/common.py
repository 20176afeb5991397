"""Shared helpers for the benchmarks: data, sweeps from dict specs, their exports, a bare loop.

Every benchmark imports the project as installed (`fmnist_ray`) and never downloads: data comes
from the installed Fashion-MNIST files, or from a small subset of them written for `--quick`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from fmnist_ray.cluster import ray_session
from fmnist_ray.config import TrialConfig
from fmnist_ray.results import exports, ray_files
from fmnist_ray.spec.file import parse_spec
from fmnist_ray.sweep import SweepSummary, run_sweep
from fmnist_ray.training.data import (
    DEBIAN_DIR,
    FILES,
    PIXEL_MEAN,
    PIXEL_STD,
    FashionMNIST,
    load_fashion_mnist,
    read_idx,
    write_idx,
)
from fmnist_ray.training.loop import (
    build_optimizer,
    build_trial_model,
    resolve_device,
    resolve_memory_format,
    resolve_precision,
)

# --quick: a real-data subset small enough that a run takes seconds on 2 cores.
QUICK_TRAIN, QUICK_TEST = 3_000, 500


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="tiny settings on a data subset, only to check that the script works")
    p.add_argument("--data-dir", default=None,
                   help=f"the four Fashion-MNIST .gz files (default: {DEBIAN_DIR})")
    p.add_argument("--storage", default=None,
                   help="keep sweep results here (default: a temporary folder, removed)")
    p.add_argument("--json", dest="json_path", default=None,
                   help="also append the result as one JSON line to this file")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray")
    return p


@contextmanager
def scratch(storage: str | None = None) -> Iterator[Path]:
    """`storage` when given (kept), else a temporary folder removed at the end."""
    if storage:
        Path(storage).mkdir(parents=True, exist_ok=True)
        yield Path(storage).resolve()
        return
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as tmp:
        yield Path(tmp)


def prepare_data_dir(quick: bool, data_dir: str | None, work: Path) -> Path:
    """The IDX folder to read: the installed files, or for `--quick` a subset written to `work`."""
    source = Path(data_dir) if data_dir else DEBIAN_DIR
    if not quick:
        return source
    target = work / "data-quick"
    target.mkdir(parents=True, exist_ok=True)
    sizes = {"train": QUICK_TRAIN, "test": QUICK_TEST}
    for key, spec in FILES.items():
        array = read_idx(source / spec.name, spec)
        write_idx(target / spec.name, array[:sizes[key.split("_")[0]]])
    return target


def load_data(quick: bool, data_dir: str | None, work: Path) -> FashionMNIST:
    """The verified dataset (a subset for `--quick`), never downloaded."""
    return load_fashion_mnist(prepare_data_dir(quick, data_dir, work), download=False)


def dataset_bytes(data: FashionMNIST) -> int:
    arrays = (data.train_images, data.train_labels, data.val_images, data.val_labels,
              data.test_images, data.test_labels)
    return sum(a.nbytes for a in arrays)


def torchvision_root(idx_dir: Path, root: Path) -> Path:
    """`root/FashionMNIST/raw/*-ubyte`, the layout torchvision's FashionMNIST reads with
    `download=False`, decompressed from the project's `.gz` files."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for spec in FILES.values():
        with gzip.open(idx_dir / spec.name, "rb") as src, \
                open(raw / spec.name.removesuffix(".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    return root


@contextmanager
def local_ray(num_cpus: int | None = None) -> Iterator[None]:
    """A fresh embedded Ray, never someone else's: without an address `ray.init` joins the
    cluster a `ray start` on this machine last recorded in /tmp/ray/ray_current_cluster."""
    os.environ["RAY_ADDRESS"] = "local"
    with ray_session(num_cpus=num_cpus):
        yield


@dataclass
class SweepRun:
    """A finished sweep and its tidy export."""

    summary: SweepSummary
    trials: pd.DataFrame
    epochs: pd.DataFrame
    seconds: float  # wall time of run_sweep, Ray already started
    started_at: float  # time.time() when run_sweep was called, and when it returned
    ended_at: float


def run_spec(raw: dict[str, Any], data: FashionMNIST, storage: Path) -> SweepRun:
    """Validate a dict spec and run it on the Ray the caller started; fail on errored trials."""
    spec = parse_spec(raw, f"<{raw.get('name', 'benchmark')}>")
    started_at, began = time.time(), time.perf_counter()
    summary = run_sweep(spec, data, str(storage))
    seconds = time.perf_counter() - began
    if summary.errors:
        raise SystemExit(f"{spec.name}: errored trials: {summary.errors}")
    trials, epochs = read_exports(summary.experiment_uri)
    return SweepRun(summary, trials, epochs, seconds, started_at, started_at + seconds)


def read_exports(uri: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`trials.parquet` and `epochs.parquet` of a sweep."""
    return (exports.read_table(uri, exports.TRIALS_FILE),
            exports.read_table(uri, exports.EPOCHS_FILE))


def ray_epoch_records(uri: str) -> pd.DataFrame:
    """One row per reported epoch from Ray's own `result.json` files, with what epochs.parquet
    lacks: `timestamp` (wall clock, whole seconds), `time_this_iter_s` (the trial's time since
    its previous report, setup and checkpointing included) and `time_total_s`."""
    keys = ("epoch", "val_accuracy", "epoch_seconds", "eval_seconds", "timestamp",
            "time_this_iter_s", "time_total_s")
    rows = [{"trial_id": tid, **{k: r.get(k) for k in keys}}
            for tid, log in ray_files.read_ray_logs(uri).items() for r in log.records]
    return pd.DataFrame(rows).drop_duplicates(["trial_id", "epoch"], keep="last")


def bare_loop(config: TrialConfig, data: FashionMNIST, threads: int) -> list[float]:
    """Training images/s per epoch of a minimal hand-written loop, one process, no Ray.

    The same per-batch work as a trial (uint8 rows indexed, scaled and normalised, forward,
    cross-entropy, backward, step; the same memory format and precision) and nothing else: no
    metrics, evaluation or checkpoints.
    """
    torch.set_num_threads(threads)
    device = resolve_device(config.device)
    bf16 = resolve_precision(config.precision, device) == "bf16"
    torch.manual_seed(config.seed)
    channels_last = resolve_memory_format(config, device) == "channels_last"
    model = build_trial_model(config).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(config, model.parameters())
    images = torch.from_numpy(data.train_images.copy()).to(device)
    labels = torch.from_numpy(data.train_labels.astype("int64")).to(device)
    n = len(labels)
    rates = []
    for _ in range(config.epochs):
        tick = time.perf_counter()
        order = torch.randperm(n).to(device)
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            x = images[idx].unsqueeze(1).float().div_(255).sub_(PIXEL_MEAN).div_(PIXEL_STD)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rates.append(n / (time.perf_counter() - tick))
    return rates


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table; floats get 3 decimals, or none and thousands separators."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def emit(name: str, payload: dict[str, Any], json_path: str | None) -> None:
    """Print the result as one JSON line (the last line of output), and append it to a file."""
    line = json.dumps({"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                       **payload}, default=float)
    print(line)
    sys.stdout.flush()
    if json_path:
        with open(json_path, "a") as handle:
            handle.write(line + "\n")

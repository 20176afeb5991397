"""Sweeps browsed from the terminal: every sweep in a storage (`ls`), one sweep's trials and
its chosen configuration (`show`), the trial `export` writes. Ray-free: it reads the exports the
report reads, and chooses as the report does (`fmnist_ray.report.analysis.chosen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from fmnist_ray.errors import UserError
from fmnist_ray.report.analysis import Choice, chosen, reused_from
from fmnist_ray.report.axes import varied_axes
from fmnist_ray.report.front import pareto_front
from fmnist_ray.report.load import SweepResults, load_results
from fmnist_ray.results.exports import TRIALS_FILE, WHOLE_COLUMNS, find_sweeps, open_storage
from fmnist_ray.results.storage import is_uri

SHOWN = ("trial_id", "status", "epochs_run", "best_epoch", "best_val_accuracy", "best_val_loss",
         "test_accuracy", "test_loss", "seconds")


@dataclass
class SweepListing:
    """One line of `ls`: a sweep, how its trials ended, and its chosen trial."""

    name: str
    uri: str
    trials: int
    statuses: dict[str, int]
    metric: str
    best_value: float | None
    best_test_accuracy: float | None
    ran_at: str  # when its results were last written, UTC

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _modified(uri: str) -> str:
    fs, root = open_storage(uri)
    mtime = fs.get_file_info(f"{root}/{TRIALS_FILE}").mtime
    if mtime is None:
        return ""
    stamp = mtime if mtime.tzinfo else mtime.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def list_sweeps(storage: str) -> list[SweepListing]:
    """Every sweep under `storage`, newest first."""
    fs, root = open_storage(storage)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        raise UserError(f"{storage}: no such storage; pass the --storage your sweeps used "
                        f"(default ./results)")
    listings = []
    for uri in find_sweeps(storage):
        results = load_results(uri)
        column = results.metric
        choice = chosen(results)
        best = None if choice is None else choice.trial
        statuses = results.trials["status"].value_counts().to_dict()
        listings.append(SweepListing(
            name=results.name, uri=uri, trials=len(results.trials),
            statuses={str(k): int(v) for k, v in sorted(statuses.items())},
            metric=column,
            best_value=None if best is None else float(best[column]),
            best_test_accuracy=None if best is None or pd.isna(best["test_accuracy"])
            else float(best["test_accuracy"]),
            ran_at=_modified(uri)))
    return sorted(listings, key=lambda listing: listing.ran_at, reverse=True)


@dataclass
class SweepView:
    """What `show` prints: the sweep's trials (sorted, maybe cut) and its choice: the
    configuration (`chosen`: its label, the seeds its mean pools, that mean) and that
    configuration's best trial (`best`, its settings, its folder)."""

    name: str
    uri: str
    metric: str
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    chosen: dict[str, Any] | None
    best: dict[str, Any] | None
    best_settings: dict[str, Any]
    best_folder: str | None
    rule: str = ""  # how the choice was made, when not on the metric alone (a Pareto front)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _plain(value: Any, column: str = "") -> Any:
    """A cell as JSON: NaN as null, numpy scalars as Python ones, counts as integers."""
    value = value.item() if hasattr(value, "item") else value
    if value is None or (isinstance(value, float) and value != value):
        return None
    return int(value) if column in WHOLE_COLUMNS and isinstance(value, float) else value


def _trial_folder(uri: str, trial_id: str) -> str | None:
    fs, root = open_storage(uri)
    try:
        entries = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except OSError:
        return None
    folders = [e.base_name for e in entries
               if e.type == pafs.FileType.Directory and f"_{trial_id}_" in e.base_name]
    return f"{uri.rstrip('/')}/{folders[0]}" if folders else None


def show_sweep(uri: str, sort: str | None = None, top: int | None = None) -> SweepView:
    """One sweep's trials, sorted by `sort` (default: the metric it chose on, best first)."""
    results = load_results(uri)
    column, higher = results.metric, results.maximize
    axes = varied_axes(results.trials, results.spec)
    seeds = ["seed"] if results.trials["seed"].nunique() > 1 else []
    reused = [] if reused_from(results.trials).empty else ["reused_from"]
    columns = [c for c in (*SHOWN[:2], *axes, *seeds, *SHOWN[2:], *reused)
               if c in results.trials]
    key = sort or column
    if key not in results.trials:
        raise UserError(f"--sort {key}: not a column of {uri}/{TRIALS_FILE}; use one of "
                        f"{', '.join(columns)}")
    ascending = not higher if sort is None else key.endswith("loss") or key == "seconds"
    table = results.trials.sort_values(key, ascending=ascending, na_position="last")
    shown = table.head(top) if top else table
    choice = chosen(results)
    best = None if choice is None else choice.trial
    settings = {} if best is None else {k: _plain(best[k], k) for k in (*axes, *seeds)}
    return SweepView(
        name=results.name, uri=uri, metric=column, columns=columns,
        rows=[{c: _plain(r[c], c) for c in columns} for _, r in shown.iterrows()],
        total=len(table), chosen=None if choice is None else _choice(choice),
        best=None if best is None else {c: _plain(best[c], c) for c in columns},
        best_settings=settings,
        best_folder=None if best is None else _trial_folder(uri, str(best["trial_id"])),
        rule=f"from the Pareto front, {front.rule}" if (front := pareto_front(results)) else "")


def _choice(choice: Choice) -> dict[str, Any]:
    return {"config": choice.label, "seeds": choice.seeds, "mean": choice.mean,
            "trial_id": str(choice.trial["trial_id"]), "seed": _plain(choice.trial["seed"], "seed")}


def find_trial(uri: str, trial_id: str | None) -> tuple[SweepResults, pd.Series]:
    """A sweep's trial by id, or the one it chose (`fmnist_ray.report.analysis.chosen`)."""
    results = load_results(uri)
    if trial_id is None:
        choice = chosen(results)
        if choice is None:
            raise UserError(f"{uri}: no trial has learned yet (completed or early stopped with a "
                            f"validation score); wait for one, or pass --trial ID")
        return results, choice.trial
    found = results.trials[results.trials["trial_id"] == trial_id]
    if found.empty:
        ids = ", ".join(results.trials["trial_id"].astype(str).head(6))
        raise UserError(f"--trial {trial_id}: no such trial in {uri}; pick one of {ids}, ... "
                        f"(see `fmnist-ray show {uri}`)")
    return results, found.iloc[0]


def newest_checkpoint(uri: str, row: pd.Series) -> Path:
    """The newest checkpoint file of a trial (it carries the best epoch's weights)."""
    recorded = row.get("checkpoint")
    if isinstance(recorded, str) and Path(recorded).is_file():
        return Path(recorded)
    if is_uri(uri):
        raise UserError(f"{uri}: export reads local results; copy the sweep's folder here "
                        f"first (e.g. `aws s3 sync {uri} results/{Path(uri).name}`)")
    folder = _trial_folder(uri, str(row["trial_id"]))
    files = sorted(Path(folder).glob("checkpoint_*/state.pt")) if folder else []
    if not files:
        raise UserError(f"{uri}: trial {row['trial_id']} kept no checkpoint; export another "
                        f"with --trial ID (see `fmnist-ray show {uri}`)")
    return files[-1]

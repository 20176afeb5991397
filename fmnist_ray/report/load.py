"""Read one sweep's results (tidy export, or Ray's own files) and note what is missing.

Reads `trials.parquet`, `epochs.parquet` and `spec.yaml` from a local directory or a cloud URI,
rebuilds lost tables from Ray's result files where it can, and cleans inf to NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from fmnist_ray.config import SweepSpec, TrialConfig
from fmnist_ray.errors import UserError
from fmnist_ray.report.axes import (
    Axis,
    describe_axis,
    label_configs,
    label_schedules,
    varied_axes,
)
from fmnist_ray.results.exports import (
    CONFIRMATION,
    EPOCH_COLUMNS,
    EPOCHS_FILE,
    LATER_COLUMNS,
    NUMBER_COLUMNS,
    SETTINGS,
    SPEC_FILE,
    TEXT_COLUMNS,
    TRIALS_FILE,
    open_storage,
    read_table,
    settings_row,
)
from fmnist_ray.results.outcomes import Status, failed_to_learn
from fmnist_ray.results.ray_files import rebuild_from_ray_logs
from fmnist_ray.spec.file import read_stored_spec

# Columns every export has held: read as NaN / None, and noted, where one lacks them. A setting
# an export lacks was added after it was written: its trials ran as the setting's default does.
EXPECTED = tuple(c for c in (*NUMBER_COLUMNS, *TEXT_COLUMNS)
                 if c not in (*SETTINGS, *LATER_COLUMNS))


@dataclass
class SweepResults:
    """One sweep's results, read and cleaned (inf as NaN), plus notes on what is missing.

    `trials` gains a `config` column: the trial's axis values as a label, seeds pooled.
    A search's confirmation trials (fresh seeds of its choice) are kept apart in
    `confirmation`, with their epochs: every other figure is the search's own.
    """

    uri: str
    name: str
    trials: pd.DataFrame
    epochs: pd.DataFrame
    spec: SweepSpec | None = None
    axes: list[Axis] = field(default_factory=list)  # spec.axes, plus "variant"; never seed
    configs: list[str] = field(default_factory=list)  # config labels in axis order
    missing: list[str] = field(default_factory=list)
    confirmation: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def metric(self) -> str:
        """The trials column that ranks trials: the best epoch of the spec's metric."""
        return self.spec.best_column if self.spec is not None else "best_val_accuracy"

    @property
    def maximize(self) -> bool:
        return self.metric != "best_val_loss"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _read_optional(uri: str, fs: pafs.FileSystem, path: str, filename: str, missing: list[str],
                   consequence: str) -> pd.DataFrame | None:
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        missing.append(f"{filename} is missing: {consequence}.")
        return None
    try:
        return read_table(uri, filename)
    except UserError as exc:
        missing.append(f"{_one_line(exc)} ({consequence}).")
        return None


def load_results(uri: str) -> SweepResults:
    """Read a sweep results directory (`<storage>/<name>`); raise UserError if it is unusable."""
    fs, root = open_storage(uri)
    try:
        kind = fs.get_file_info(root).type
    except OSError as exc:
        raise UserError(f"{uri}: cannot read ({_one_line(exc)}); check the path and "
                        f"credentials") from None
    if kind == pafs.FileType.NotFound:
        raise UserError(f"{uri}: results directory not found; pass the folder a sweep wrote, "
                        f"<storage>/<name> (e.g. results/smoke)")
    if kind != pafs.FileType.Directory:
        raise UserError(f"{uri}: is a file, not a results directory; pass the folder that "
                        f"holds {TRIALS_FILE}")
    missing: list[str] = []
    spec = _read_spec(fs, f"{root}/{SPEC_FILE}", uri, missing)
    rebuilt: tuple[list[dict], list[dict]] | None = None

    def from_ray_logs() -> tuple[list[dict], list[dict]]:
        nonlocal rebuilt
        if rebuilt is None:
            rebuilt = rebuild_from_ray_logs(
                uri, spec.trial_config if spec else _trial_config_without_spec,
                asha=bool(spec and spec.scheduler.stops_early))
        return rebuilt

    try:
        trials = read_table(uri, TRIALS_FILE)
    except UserError as exc:
        if not from_ray_logs()[0]:
            raise UserError(_one_line(exc)) from None
        trials = pd.DataFrame(from_ray_logs()[0])
        missing.append(f"{_one_line(exc).split(': ', 1)[-1].split(';')[0].capitalize()}: "
                       f"{TRIALS_FILE} was rebuilt from Ray's own result files of "
                       f"{len(trials)} trial(s).")
    if trials.empty:  # exported before any trial started: a table with no columns
        trials = pd.DataFrame({c: pd.Series(dtype=object) for c in ("trial_id", "status")})
    absent = [c for c in ("trial_id", "status") if c not in trials.columns]
    if absent:
        raise UserError(f"{uri}/{TRIALS_FILE}: not a sweep trials table (no column "
                        f"{', '.join(absent)}); pass a directory written by fmnist-ray sweep")
    lacking = [c for c in EXPECTED if c not in trials.columns]
    if lacking and len(trials):
        missing.append(f"{TRIALS_FILE} has no column {', '.join(lacking)}: those figures are "
                       f"left out.")
    epochs = _read_optional(uri, fs, f"{root}/{EPOCHS_FILE}", EPOCHS_FILE, [],
                            "no learning curves, no overfitting over epochs, no cost per epoch")
    if epochs is None:
        if from_ray_logs()[1]:
            epochs = pd.DataFrame(from_ray_logs()[1])
            missing.append(f"{EPOCHS_FILE} is missing or unreadable: rebuilt from Ray's own "
                           f"result files.")
        else:
            missing.append(f"{EPOCHS_FILE} is missing or unreadable: no learning curves, no "
                           f"overfitting over epochs, no cost per epoch.")
    trials = _clean_trials(trials)
    confirming = trials["role"] == CONFIRMATION
    confirmation, trials = trials[confirming].copy(), trials[~confirming].reset_index(drop=True)
    population = spec is not None and spec.is_population
    axes = [] if population else [describe_axis(trials, name, spec)
                                  for name in varied_axes(trials, spec)]
    epochs = _clean_epochs(epochs)
    results = SweepResults(uri=uri, name=spec.name if spec else Path(root).name, trials=trials,
                           epochs=epochs[~epochs["trial_id"].isin(confirmation["trial_id"])]
                           .reset_index(drop=True),
                           spec=spec, axes=axes, missing=missing,
                           confirmation=confirmation.reset_index(drop=True))
    if population:  # each trial is its own schedule of settings, never one configuration
        results.configs = label_schedules(trials, results.confirmation)
    else:
        results.configs = label_configs(trials, axes)
        label_configs(results.confirmation, axes)
    results.missing += _gaps(results)
    return results


def _trial_config_without_spec(params: dict) -> TrialConfig:
    """Best effort for a sweep whose spec.yaml is lost: Ray's params plus the defaults."""
    known = {k: v for k, v in params.items() if k in TrialConfig.model_fields}
    variant = params.get("variant") or {}
    known.update({k: v for k, v in variant.items() if k in TrialConfig.model_fields})
    try:
        return TrialConfig(**known)
    except ValueError:
        return TrialConfig()


def _read_spec(fs: pafs.FileSystem, path: str, uri: str, missing: list[str]) -> SweepSpec | None:
    consequence = "the varied axes are guessed from the trials and the scheduler is unknown"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        missing.append(f"{SPEC_FILE} is missing: {consequence}.")
        return None
    try:
        return read_stored_spec(uri)
    except UserError as exc:
        missing.append(f"{SPEC_FILE} is not a valid spec ({_one_line(exc)[:200]}): "
                       f"{consequence}.")
        return None


def _clean_trials(trials: pd.DataFrame) -> pd.DataFrame:
    trials = trials.copy()
    defaults = settings_row(TrialConfig())
    for column in SETTINGS:
        if column not in trials:
            trials[column] = defaults[column]
    for column in NUMBER_COLUMNS:
        if column not in trials:
            trials[column] = np.nan
        trials[column] = pd.to_numeric(trials[column], errors="coerce").astype(float)
        trials[column] = trials[column].where(np.isfinite(trials[column]))
    for column in TEXT_COLUMNS:
        if column not in trials:
            trials[column] = None
        trials[column] = trials[column].astype(object).where(trials[column].notna(), None)
    # A trial that never had a finite validation epoch reports best epoch 0, accuracy -1.
    unset = ~(trials["best_epoch"] >= 1)
    trials.loc[unset, ["best_epoch", "best_val_accuracy", "best_val_loss"]] = np.nan
    trials["trial_id"] = trials["trial_id"].astype(str)
    trials["status"] = trials["status"].fillna("unknown").astype(str)
    # Exports from before `failed_to_learn` existed: a run at chance is one, whatever it says.
    stuck = ((trials["status"] == Status.COMPLETED)
             & trials["best_val_accuracy"].map(failed_to_learn))
    trials.loc[stuck, "status"] = Status.FAILED_TO_LEARN.value
    return trials.reset_index(drop=True)


def _clean_epochs(epochs: pd.DataFrame | None) -> pd.DataFrame:
    columns = ["trial_id", *EPOCH_COLUMNS, "pbt_settings"]  # a PBT trial's settings, as JSON
    if epochs is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    epochs = epochs.reindex(columns=columns).copy()
    epochs["trial_id"] = epochs["trial_id"].astype(str)
    for column in EPOCH_COLUMNS:
        values = pd.to_numeric(epochs[column], errors="coerce").astype(float)
        epochs[column] = values.where(np.isfinite(values))
    return epochs.sort_values(["trial_id", "epoch"]).reset_index(drop=True)


def _gaps(results: SweepResults) -> list[str]:
    """What the results lack: planned trials not exported, unfinished trials, empty histories."""
    notes, trials, spec = [], results.trials, results.spec
    if spec is not None:
        planned = spec.num_samples if spec.search == "optuna" else len(spec.grid_points())
        if len(trials) < planned:
            notes.append(f"The spec plans {planned} trials; {TRIALS_FILE} holds {len(trials)}.")
    unfinished = trials[trials["status"].isin([Status.RUNNING, Status.PENDING, Status.INTERRUPTED])]
    if len(unfinished):
        notes.append(f"{len(unfinished)} trial(s) unfinished (running, pending or interrupted): "
                     f"{', '.join(unfinished['trial_id'])}.")
    if results.epochs.empty:
        return notes
    without = trials[~trials["trial_id"].isin(set(results.epochs["trial_id"]))]
    if len(without):
        listed = ", ".join(f"{t} ({s})" for t, s in zip(without["trial_id"], without["status"],
                                                          strict=True))
        notes.append(f"{len(without)} trial(s) have no epochs recorded: {listed}.")
    return notes


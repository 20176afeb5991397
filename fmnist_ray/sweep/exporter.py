"""The live export: a Tune callback that keeps `trials.parquet` and `epochs.parquet` current
while a sweep runs, shows progress, and records each trial that ran to its end in the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray import tune

from fmnist_ray.config import SweepSpec
from fmnist_ray.errors import UserError
from fmnist_ray.results import exports, ray_files
from fmnist_ray.results.outcomes import RAN_TO_END, Status
from fmnist_ray.sweep import interrupts
from fmnist_ray.sweep.store import TrialKeys, TrialStore
from fmnist_ray.sweep.trainable import CHECKPOINT_FILE, REPORTED

# Live progress displays by experiment URI. Ray pickles callbacks into tuner.pkl and a resumed
# sweep gets them back from there, so the exporter looks its display up instead of holding it.
DISPLAYS: dict[str, Callable[[list[dict[str, Any]]], None]] = {}


class ResultsExporter(tune.Callback):
    """Keeps `trials.parquet` and `epochs.parquet` current while the sweep runs and at its end."""

    # Class defaults for exporters pickled by earlier versions (restored on resume).
    store: TrialStore | None = None
    keys: TrialKeys | None = None
    kept: list[dict[str, Any]] = []
    role: str | None = None

    def __init__(self, spec: SweepSpec, experiment_uri: str, every_seconds: float = 5.0,
                 store: TrialStore | None = None, keys: TrialKeys | None = None,
                 kept: list[dict[str, Any]] = (), role: str | None = None):
        self.spec = spec
        self.kept = list(kept)  # the sweep's trials from before: their rows as they were
        self.role = role  # of this run's trials: CONFIRMATION, or None
        self.uri = experiment_uri
        self.every_seconds = every_seconds
        self.store = store
        self.keys = keys
        self.epochs: dict[tuple[str, int], dict[str, Any]] = {}
        self.last_write = 0.0

    @property
    def _newest(self) -> dict[str, dict[str, Any]]:
        """Each trial's newest result (an attribute created on first use: exporters pickled
        by earlier versions, restored on resume, lack it)."""
        if "_newest_results" not in self.__dict__:
            self._newest_results: dict[str, dict[str, Any]] = {}
        return self._newest_results

    @property
    def _reported(self) -> dict[str, dict[int, dict[str, Any]]]:
        """What each trial reported, by epoch, as the store keeps it."""
        if "_reported_results" not in self.__dict__:
            self._reported_results: dict[str, dict[int, dict[str, Any]]] = {}
        return self._reported_results

    def setup(self, **info):
        """Pick up what an earlier run of this sweep recorded, so a resume loses no epoch.
        Tune calls this once its SIGINT handler is in place: a Ctrl-C pressed before is raised
        here if start-up swallowed it."""
        interrupts.check()
        try:
            for row in exports.read_table(self.uri, exports.EPOCHS_FILE).to_dict("records"):
                self.epochs.setdefault((row["trial_id"], int(row["epoch"])), row)
        except UserError:
            pass  # a new sweep, or an export that was never written
        for trial_id, log in ray_files.read_ray_logs(self.uri).items():
            for record in log.records:
                self.epochs[(trial_id, int(record["epoch"]))] = exports.epoch_row(trial_id, record)
                self._keep_reported(trial_id, record)

    def _keep_reported(self, trial_id: str, result: dict[str, Any]) -> None:
        self._reported.setdefault(trial_id, {})[int(result["epoch"])] = {
            k: result.get(k) for k in REPORTED}

    def _trial_rows(self, trials) -> list[dict[str, Any]]:
        rows = []
        for trial in trials:
            config = self.spec.trial_config(trial.config)
            history = sorted((r for (tid, _), r in self.epochs.items() if tid == trial.trial_id),
                             key=lambda r: r["epoch"])
            # Tune calls back before it updates `trial.last_result`: the newest is kept here.
            last = self._newest.get(trial.trial_id) or trial.last_result or {}
            error = error_summary(trial) if trial.status == "ERROR" else None
            variant = trial.config.get("variant", {}).get("name")
            status = exports.trial_status(trial.status, last, config.epochs)
            checkpoint = trial.checkpoint
            where = (f"{checkpoint.path}/{CHECKPOINT_FILE}" if checkpoint is not None
                     else last.get("reused_checkpoint"))
            rows.append(exports.trial_row(
                trial.trial_id, config, variant, status, history, last, error, where,
                key=last.get("trial_key") or (self.keys.key(config) if self.keys else None),
                reused_from=last.get("reused_from"), role=self.role))
        return rows

    def write(self, trials) -> list[dict[str, Any]]:
        rows = self._trial_rows(trials)
        exports.write_table(self.uri, exports.TRIALS_FILE, [*self.kept, *rows])
        # Only this sweep's trials: Ray starts over (new trial ids) when its saved state was
        # damaged.
        known = {trial.trial_id for trial in trials} | {row["trial_id"] for row in self.kept}
        exports.write_table(self.uri, exports.EPOCHS_FILE,
                            sorted((r for r in self.epochs.values() if r["trial_id"] in known),
                                   key=lambda r: (r["trial_id"], r["epoch"])))
        self.last_write = time.monotonic()
        return rows

    def _record(self, trial, row: dict[str, Any]) -> None:
        """Keep a trial that ran to its end (and was not itself reused) in the store."""
        config = self.spec.trial_config(trial.config)
        # Tune calls back before it marks the trial terminated.
        ended = exports.trial_status("TERMINATED", self._newest.get(trial.trial_id) or {},
                                     config.epochs)
        if (self.store is None or row["trial_key"] is None or row["reused_from"]
                or ended not in RAN_TO_END):
            return
        payload = None
        if trial.checkpoint is not None:
            checkpoint = trial.checkpoint
            with checkpoint.filesystem.open_input_file(
                    f"{checkpoint.path}/{CHECKPOINT_FILE}") as handle:
                payload = handle.read()
        reported = self._reported.get(trial.trial_id, {})
        self.store.put(row["trial_key"], self.spec.name, trial.trial_id, config,
                       [reported[epoch] for epoch in sorted(reported)], payload)

    def _show(self, trials) -> None:
        display = DISPLAYS.get(self.uri)
        if display is not None:
            display(self._trial_rows(trials))

    def on_trial_start(self, iteration, trials, trial, **info):
        self._show(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # A trial retried from a checkpoint reports some epochs again: keep the newest.
        self.epochs[(trial.trial_id, result["epoch"])] = exports.epoch_row(trial.trial_id, result)
        self._newest[trial.trial_id] = result
        self._keep_reported(trial.trial_id, result)
        if time.monotonic() - self.last_write > self.every_seconds:
            self.write(trials)
        self._show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        rows = self.write(trials)
        self._record(trial, next(r for r in rows if r["trial_id"] == trial.trial_id))
        self._show(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.write(trials)
        self._show(trials)

    def on_experiment_end(self, trials, **info):
        self.write(trials)
        if self.store is not None:
            self.store.reindex()
        self._show(trials)


def error_summary(trial) -> str:
    """The last meaningful line of a trial's error, e.g. `RuntimeError: out of memory`."""
    error = trial.get_error()
    lines = [line.strip() for line in str(error or "unknown error").splitlines() if line.strip()]
    where = f" (traceback: {trial.path}/error.txt)" if trial.path else ""
    return (lines[-1] if lines else "unknown error") + where


__all__ = ["DISPLAYS", "ResultsExporter", "Status", "error_summary"]

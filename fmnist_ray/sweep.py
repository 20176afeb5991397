"""The thin Ray Tune layer: a validated `SweepSpec` in, a finished sweep with a tidy export out.

Data is loaded once on the driver and shared through the object store (`tune.with_parameters`);
each trial restores its checkpoint, calls the Ray-free `train_trial`, and reports every epoch.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import yaml
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from fmnist_ray import results
from fmnist_ray.cluster import check_shared_storage, current_node_id, node_sizes
from fmnist_ray.config import Range, SweepSpec
from fmnist_ray.data import FashionMNIST
from fmnist_ray.driver_lock import driver_lock
from fmnist_ray.errors import UserError
from fmnist_ray.models import count_parameters
from fmnist_ray.preflight import check_resources, check_storage, check_sweep_folder
from fmnist_ray.spec_file import parse_spec_text, spec_to_yaml
from fmnist_ray.train import EpochMetrics, TrainState, build_trial_model, train_trial

CHECKPOINT_FILE = "state.pt"
FAULT_ENV = "FMNIST_RAY_FAULT"
# Live progress displays by experiment URI. Ray pickles callbacks into tuner.pkl and a resumed
# sweep gets them back from there, so the exporter looks its display up instead of holding it.
_DISPLAYS: dict[str, Callable[[list[dict[str, Any]]], None]] = {}


def _dimension(values: list[Any] | Range, searched: bool):
    """A Tune search dimension: grids stay grids unless a searcher (Optuna) must sample them."""
    if isinstance(values, list):
        return tune.choice(values) if searched else tune.grid_search(values)
    if values.kind == "choice":
        return tune.choice(values.choice)
    if values.kind == "uniform":
        return tune.uniform(*values.uniform)
    if values.kind == "loguniform":
        return tune.loguniform(*values.loguniform)
    low, high = values.randint
    return tune.randint(low, high + 1)  # Tune's upper bound is exclusive; ours is inclusive


def build_param_space(spec: SweepSpec) -> dict[str, Any]:
    searched = spec.search == "optuna"
    space = {key: _dimension(values, searched) for key, values in spec.axes.items()}
    if spec.variants:
        space["variant"] = _dimension([v.value for v in spec.variants], searched)
    if spec.seeds > 1:
        space["seed"] = tune.grid_search([spec.trial.seed + i for i in range(spec.seeds)])
    return space


def _report_metrics(metrics: EpochMetrics, state: TrainState, params: int) -> dict[str, Any]:
    best = state.best
    scored = best.epoch > 0  # a run that diverged in its first epoch has no best epoch
    return {
        **asdict(metrics),
        "best_epoch": best.epoch if scored else None,
        "best_val_accuracy": best.val_accuracy if scored else None,
        "best_val_loss": best.val_loss if scored else None,
        "test_accuracy": best.test_accuracy,
        "test_loss": best.test_loss,
        "test_confusion": json.dumps(best.confusion) if best.confusion else None,
        "params": params,
        "node_id": current_node_id(),
    }


def _inject_fault(config_values: dict[str, Any], epoch: int) -> None:
    """Fail on purpose for fault-injection tests: `FMNIST_RAY_FAULT=KIND:KEY=VALUE[@EPOCH]`.

    KIND is `error` (raise after every epoch from EPOCH on, so retries fail too), `error_once`
    (raise after EPOCH, the first time only) or `crash_once` (kill the trial's worker process
    after EPOCH, the first time only), for trials whose setting KEY equals VALUE; EPOCH
    defaults to 1.
    """
    fault = os.environ.get(FAULT_ENV, "")
    kind, _, target = fault.partition(":")
    match, _, at_epoch = target.partition("@")
    key, _, value = match.partition("=")
    first = int(at_epoch or 1)
    if not kind or str(config_values.get(key)) != value or epoch < first:
        return
    if kind != "error" and epoch != first:
        return
    if kind.endswith("_once"):
        marker = Path(tune.get_context().get_trial_dir()) / ".fault-injected"
        if marker.exists():
            return
        marker.touch()
    if kind == "crash_once":
        os._exit(1)  # the worker dies as if killed: no exception, no cleanup
    raise RuntimeError(f"injected fault ({FAULT_ENV}={fault})")


def run_trial(params: dict[str, Any], spec: SweepSpec, data: FashionMNIST) -> None:
    """Ray Tune entry point: restore, train, report each epoch, checkpoint every N epochs."""
    config = spec.trial_config(params)
    start = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start = newest_valid_state(Path(directory))
    params = count_parameters(build_trial_model(config))

    def on_epoch(metrics: EpochMetrics, state: TrainState) -> None:
        report = _report_metrics(metrics, state, params)
        last = metrics.epoch == config.epochs or metrics.diverged
        if metrics.epoch % spec.checkpoint_every and not last:
            tune.report(report)
        else:
            with tempfile.TemporaryDirectory() as directory:
                state.save(Path(directory) / CHECKPOINT_FILE)
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))
        _inject_fault(config.model_dump(), metrics.epoch)

    train_trial(config, data, on_epoch=on_epoch, start=start, threads=spec.resources.cpu)


def newest_valid_state(checkpoint_dir: Path) -> TrainState | None:
    """The state in `checkpoint_dir`, or, if it is missing or unreadable, in the newest older
    checkpoint of the same trial: a lost or damaged checkpoint costs epochs, not the trial."""
    candidates = [checkpoint_dir] + sorted(
        (p for p in checkpoint_dir.parent.glob("checkpoint_*") if p.name < checkpoint_dir.name),
        reverse=True)
    for candidate in candidates:
        try:
            return TrainState.load(candidate / CHECKPOINT_FILE)
        except Exception as exc:  # missing, truncated or foreign file: try the one before
            print(f"checkpoint {candidate} unusable ({type(exc).__name__}); trying an older one")
    print(f"no usable checkpoint in {checkpoint_dir.parent}; the trial starts over")
    return None


def restore_lost_checkpoint_dirs(uri: str) -> list[Path]:
    """Recreate, empty, the newest checkpoint folder of each trial if it is gone, so that Ray
    lets the trial start and `newest_valid_state` falls back to an older checkpoint.

    Ray restores a trial from the last checkpoint its `result.json` names and refuses to start
    it if that folder no longer exists.
    """
    if "://" in uri:
        return []
    recreated = []
    for log in Path(uri).glob("*/result.json"):
        names = re.findall(r'"checkpoint_dir_name": "(checkpoint_\d+)"', log.read_text())
        folder = log.parent / max(names) if names else None
        if folder is not None and not folder.exists():
            folder.mkdir()
            recreated.append(folder)
    return recreated


class ResultsExporter(tune.Callback):
    """Keeps `trials.parquet` and `epochs.parquet` current while the sweep runs and at its end."""

    def __init__(self, spec: SweepSpec, experiment_uri: str, every_seconds: float = 5.0):
        self.spec = spec
        self.uri = experiment_uri
        self.every_seconds = every_seconds
        self.epochs: dict[tuple[str, int], dict[str, Any]] = {}
        self.last_write = 0.0

    @property
    def _newest(self) -> dict[str, dict[str, Any]]:
        """Each trial's newest result (an attribute created on first use: exporters pickled
        by earlier versions, restored on resume, lack it)."""
        if "_newest_results" not in self.__dict__:
            self._newest_results: dict[str, dict[str, Any]] = {}
        return self._newest_results

    def setup(self, **info):
        """Pick up what an earlier run of this sweep recorded, so a resume loses no epoch."""
        try:
            for row in results.read_table(self.uri, results.EPOCHS_FILE).to_dict("records"):
                self.epochs.setdefault((row["trial_id"], int(row["epoch"])), row)
        except UserError:
            pass  # a new sweep, or an export that was never written
        for trial_id, log in results.read_ray_logs(self.uri).items():
            for record in log.records:
                self.epochs[(trial_id, int(record["epoch"]))] = results.epoch_row(trial_id, record)

    def _trial_rows(self, trials) -> list[dict[str, Any]]:
        rows = []
        for trial in trials:
            config = self.spec.trial_config(trial.config)
            history = sorted((r for (tid, _), r in self.epochs.items() if tid == trial.trial_id),
                             key=lambda r: r["epoch"])
            # Tune calls back before it updates `trial.last_result`: the newest is kept here.
            last = self._newest.get(trial.trial_id) or trial.last_result or {}
            error = None
            if trial.status == "ERROR":
                error = error_summary(trial)
            variant = trial.config.get("variant", {}).get("name")
            status = results.trial_status(trial.status, last, config.epochs)
            checkpoint = trial.checkpoint
            rows.append(results.trial_row(
                trial.trial_id, config, variant, status, history, last, error,
                f"{checkpoint.path}/{CHECKPOINT_FILE}" if checkpoint is not None else None))
        return rows

    def write(self, trials) -> None:
        results.write_table(self.uri, results.TRIALS_FILE, self._trial_rows(trials))
        # Only this sweep's trials: Ray starts over (new trial ids) when its saved state was
        # damaged, and the old ids' epochs would have no trial row.
        known = {trial.trial_id for trial in trials}
        results.write_table(self.uri, results.EPOCHS_FILE,
                            sorted((r for r in self.epochs.values() if r["trial_id"] in known),
                                   key=lambda r: (r["trial_id"], r["epoch"])))
        self.last_write = time.monotonic()

    def _show(self, trials) -> None:
        display = _DISPLAYS.get(self.uri)
        if display is not None:
            display(self._trial_rows(trials))

    def on_trial_start(self, iteration, trials, trial, **info):
        self._show(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # A trial retried from a checkpoint reports some epochs again: keep the newest.
        self.epochs[(trial.trial_id, result["epoch"])] = results.epoch_row(trial.trial_id, result)
        self._newest[trial.trial_id] = result
        if time.monotonic() - self.last_write > self.every_seconds:
            self.write(trials)
        self._show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.write(trials)
        self._show(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.write(trials)
        self._show(trials)

    def on_experiment_end(self, trials, **info):
        self.write(trials)
        self._show(trials)


def error_summary(trial) -> str:
    """The last meaningful line of a trial's error, e.g. `RuntimeError: out of memory`."""
    error = trial.get_error()
    lines = [line.strip() for line in str(error or "unknown error").splitlines() if line.strip()]
    where = f" (traceback: {trial.path}/error.txt)" if trial.path else ""
    return (lines[-1] if lines else "unknown error") + where


def _trainable(spec: SweepSpec, data: FashionMNIST):
    return tune.with_resources(
        tune.with_parameters(run_trial, spec=spec, data=data),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )


def start_points(spec: SweepSpec) -> list[dict[str, Any]] | None:
    """`start_with` as Optuna's points_to_evaluate: variants named become their settings."""
    return [spec.start_point(point) for point in spec.start_with] or None


def build_tuner(spec: SweepSpec, data: FashionMNIST, storage: str, name: str,
                exporter: ResultsExporter) -> tune.Tuner:
    searcher = None
    if spec.search == "optuna":
        searcher = OptunaSearch(seed=spec.trial.seed, points_to_evaluate=start_points(spec))
        if spec.max_concurrent_trials:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent_trials)
    scheduler = None
    if spec.scheduler.type == "asha":
        scheduler = ASHAScheduler(time_attr="epoch", max_t=spec.max_t,
                                  grace_period=spec.scheduler.grace_period,
                                  reduction_factor=spec.scheduler.reduction_factor)
    storage_path = storage if "://" in storage else str(Path(storage).expanduser().resolve())
    return tune.Tuner(
        _trainable(spec, data),
        param_space=build_param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.resolved_mode, num_samples=spec.num_samples,
            search_alg=searcher, scheduler=scheduler,
            max_concurrent_trials=None if searcher else spec.max_concurrent_trials,
            reuse_actors=True,
            time_budget_s=spec.time_budget_minutes and spec.time_budget_minutes * 60,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[exporter, JsonLoggerCallback(), CSVLoggerCallback(),
                       TBXLoggerCallback()],
            verbose=0,  # progress is the caller's, through on_update
        ),
    )


@dataclass
class SweepSummary:
    """What a finished sweep did: where its results are and how each trial ended."""

    experiment_uri: str
    seconds: float
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (trial id, error line)
    best: dict[str, Any] | None = None

    @property
    def interrupted(self) -> bool:
        """Trials left unfinished: the sweep was stopped (Ctrl-C) before the end."""
        return any(s in self.statuses for s in ("pending", "running", "paused", "interrupted"))


def unfinished_trial_ids(uri: str) -> set[str]:
    """Trials Ray's last saved state holds as unfinished: the sweep was interrupted (Ctrl-C).

    Ray snapshots its state when the loop ends, before it stops the trials still running, so
    the snapshot, not the trials' final status, says which ones a resume will continue.
    """
    if "://" in uri:
        fs, root = results.open_storage(uri)
        selector = pafs.FileSelector(root)
        names = sorted(i.path for i in fs.get_file_info(selector)
                       if i.base_name.startswith("experiment_state-"))
        text = results.read_text(uri, names[-1].rsplit("/", 1)[-1]) if names else ""
    else:
        states = sorted(Path(uri).glob("experiment_state-*.json"))
        text = states[-1].read_text() if states else ""
    if not text:
        return set()
    unfinished = set()
    for trial_state, _ in json.loads(text).get("trial_data", []):
        trial = json.loads(trial_state)
        if trial.get("status") not in ("TERMINATED", "ERROR"):
            unfinished.add(trial["trial_id"])
    return unfinished


def best_trial(rows: list[dict[str, Any]], spec: SweepSpec) -> dict[str, Any] | None:
    """The trial whose best epoch scored best on the spec's metric (errored trials excluded)."""
    column = "best_val_loss" if spec.metric.endswith("loss") else "best_val_accuracy"
    scored = [r for r in rows if r["status"] != "errored" and r["test_accuracy"] is not None]
    if not scored:
        return None
    sign = -1 if spec.resolved_mode == "min" else 1
    return max(scored, key=lambda r: sign * r[column])


STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EROFS: "the storage became read-only",
                  errno.EACCES: "permission denied on the storage"}


def _storage_fault(exc: BaseException) -> str | None:
    """What went wrong with the storage, if `exc` (or what caused it, on any node) is a full,
    read-only or forbidden disk; None for any other failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return STORAGE_ERRNOS[exc.errno]
        if isinstance(exc, OSError) and "No space left on device" in str(exc):
            return STORAGE_ERRNOS[errno.ENOSPC]  # pyarrow's wording, errno not carried
        exc = exc.__cause__ or exc.__context__
    return None


def stored_spec_differences(spec: SweepSpec, uri: str) -> list[str]:
    """The spec keys whose values differ from those the sweep at `uri` was started with."""
    try:
        # Parsed again so that settings added since (with their defaults) don't count.
        stored_spec = parse_spec_text(results.read_text(uri, results.SPEC_FILE),
                                 f"{uri}/{results.SPEC_FILE}")
    except UserError:
        return []
    stored = yaml.safe_load(spec_to_yaml(stored_spec))
    current = yaml.safe_load(spec_to_yaml(spec))
    keys = sorted(set(stored) | set(current))
    return [k for k in keys if k != "description" and stored.get(k) != current.get(k)]


def run_sweep(spec: SweepSpec, data: FashionMNIST, storage: str,
              on_update: Callable[[list[dict[str, Any]]], None] | None = None,
              resume: bool = False, errored: str = "keep") -> SweepSummary:
    """Run the sweep on the Ray the caller connected to; results go to `<storage>/<spec.name>/`.

    With `resume`, continue the sweep already there: finished trials are kept, unfinished ones
    continue from their checkpoints, and errored ones are kept, `resume`d or `restart`ed.
    """
    uri = results.experiment_uri(storage, spec.name)
    check_storage(storage, spec.name, create=True)
    check_shared_storage(storage)
    check_resources(spec.resources, node_sizes(), "this Ray cluster")
    with driver_lock(uri):
        return _run_locked(spec, data, storage, uri, on_update, resume, errored)


def _run_locked(spec: SweepSpec, data: FashionMNIST, storage: str, uri: str,
                on_update: Callable[[list[dict[str, Any]]], None] | None, resume: bool,
                errored: str) -> SweepSummary:
    resume = check_sweep_folder(uri, resume, holding_lock=True)
    if resume:
        restore_lost_checkpoint_dirs(uri)
        changed = stored_spec_differences(spec, uri)
        if changed:
            raise UserError(f"{uri}: the spec changed since this sweep started "
                            f"({', '.join(changed)}); Ray cannot change a sweep on resume: "
                            f"use `fmnist-ray resume {uri}` to go on with the stored spec, "
                            f"or --name NEW for a new sweep")
    else:
        results.write_text(uri, results.SPEC_FILE, spec_to_yaml(spec))
    # Ray's new console output ignores verbose=0 for its banners; the legacy engine honours it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ray's JSON/CSV result files (report falls back on them) and TensorBoard event files, as
    # listed in build_tuner's callbacks, not Ray's defaults on top.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # A failed trial's traceback goes to its error.txt; the summary names it in one line.
    for noisy in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    # Optuna: variants are dict-valued choices (fine in memory; it warns about storage) and it
    # announces its in-memory study.
    logging.getLogger("optuna").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Choices for a categorical distribution")
    if on_update is not None:
        _DISPLAYS[uri] = on_update
    began = time.monotonic()
    try:
        if resume:
            tuner = tune.Tuner.restore(
                uri, trainable=_trainable(spec, data), param_space=build_param_space(spec),
                resume_unfinished=True, resume_errored=errored == "resume",
                restart_errored=errored == "restart")
        else:
            tuner = build_tuner(spec, data, storage, spec.name, ResultsExporter(spec, uri))
        tuner.fit()
    except Exception as exc:
        storage_fault = _storage_fault(exc)
        if storage_fault is None:
            raise
        raise UserError(f"{uri}: {storage_fault} while the sweep wrote its results; the "
                        f"results written so far are kept; free space there (or fix its "
                        f"permissions), then continue with `fmnist-ray resume {uri} --errored "
                        f"resume`") from None
    finally:
        _DISPLAYS.pop(uri, None)
    trials = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
              for row in results.read_table(uri, results.TRIALS_FILE).to_dict("records")]
    unfinished = unfinished_trial_ids(uri)
    if unfinished:
        for row in trials:
            if row["trial_id"] in unfinished:
                row["status"] = "interrupted"
        results.write_table(uri, results.TRIALS_FILE, trials)
    summary = SweepSummary(uri, time.monotonic() - began)
    for row in trials:
        summary.statuses[row["status"]] = summary.statuses.get(row["status"], 0) + 1
        if row["status"] == "errored":
            summary.errors.append((row["trial_id"], row["error"]))
    summary.best = best_trial(trials, spec)
    return summary

"""Run, resume or extend a sweep on the Ray the caller connected to, and sum up how it went."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray import tune

from fmnist_ray.cluster import check_shared_storage, node_sizes, started_here
from fmnist_ray.config import SweepSpec
from fmnist_ray.errors import UserError
from fmnist_ray.report.analysis import chosen
from fmnist_ray.report.front import front_line, pareto_front
from fmnist_ray.report.load import load_results
from fmnist_ray.results import exports, ray_files
from fmnist_ray.results.driver_lock import driver_lock
from fmnist_ray.results.outcomes import ACTIVE, Status
from fmnist_ray.results.preflight import check_resources, check_sweep_folder
from fmnist_ray.spec.file import spec_to_yaml
from fmnist_ray.sweep import interrupts
from fmnist_ray.sweep.confirm import confirmation_points, confirmation_spec
from fmnist_ray.sweep.exporter import DISPLAYS, ResultsExporter
from fmnist_ray.sweep.extension import Extension
from fmnist_ray.sweep.preparation import Prepared, RunMode, prepare_run
from fmnist_ray.sweep.store import TrialKeys, TrialStore
from fmnist_ray.sweep.trainable import trainable
from fmnist_ray.sweep.tuner import build_param_space, build_tuner, trials_on_idle_workers
from fmnist_ray.training.data import FashionMNIST, fingerprint
from fmnist_ray.training.loop import NUMERICS_VERSION


@dataclass
class SweepSummary:
    """What a finished sweep did: where its results are and how each trial ended."""

    experiment_uri: str
    seconds: float
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (trial id, error line)
    best: dict[str, Any] | None = None  # the chosen trial's row, as the report chooses it
    best_config: str | None = None  # its configuration, e.g. `variant=adam`
    best_config_seeds: int = 0  # the trials that configuration's mean pools
    best_config_mean: float | None = None  # its mean validation metric over them
    reused: int = 0  # trials whose stored results were reused instead of trained
    kept: int = 0  # an extended sweep's trials from before, kept as they were
    confirmed: int = 0  # fresh-seed trials of a search's choice run after it (confirm_seeds)
    unstarted: int = 0  # planned trials a Ctrl-C kept from starting (a searcher's next points)
    front: list[str] = field(default_factory=list)  # a multi-objective search's front, in words

    @property
    def interrupted(self) -> bool:
        """Trials left unfinished or unstarted: the sweep was stopped (Ctrl-C) before the end."""
        return self.unstarted > 0 or any(s in self.statuses
                                         for s in (*ACTIVE, Status.INTERRUPTED))


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


def run_sweep(spec: SweepSpec, data: FashionMNIST, storage: str,
              on_update: Callable[[list[dict[str, Any]]], None] | None = None,
              mode: RunMode = RunMode.NEW, errored: str = "keep", reuse: bool = True,
              prepared: Prepared | None = None) -> SweepSummary:
    """Run the sweep on the Ray the caller connected to; results go to `<storage>/<spec.name>/`.

    `RunMode.RESUME` continues the sweep already there: finished trials are kept, unfinished
    ones continue from their checkpoints, and errored ones are kept, `resume`d or `restart`ed.
    `RunMode.EXTEND` grows it to `spec`: only trials not run before train. Every trial that ran
    to its end under `storage` before, in any sweep, is reused unless `reuse` is off.
    `prepared`: what `prepare_run` found before Ray started (checked here when not given).
    """
    prepared = prepared or prepare_run(spec, storage, mode)
    check_shared_storage(storage)
    check_resources(spec.resources, node_sizes(), "this Ray cluster")
    with driver_lock(prepared.uri):
        if mode == RunMode.NEW and exports.saved_state(prepared.uri).started:
            # Checked before the lock was taken: another driver may have written it since.
            check_sweep_folder(prepared.uri, resume=False, holding_lock=True)
        return _run_locked(spec, data, storage, prepared, on_update, errored, reuse)


def _quiet_ray() -> None:
    # Ray's new console output ignores verbose=0 for its banners; the legacy engine honours it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Only the result files build_tuner lists, not Ray's default loggers on top.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # A failed trial's traceback goes to its error.txt; the summary names it in one line.
    for noisy in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    # Optuna: variants are dict-valued choices (fine in memory; it warns about storage) and it
    # announces its in-memory study.
    logging.getLogger("optuna").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Choices for a categorical distribution")


def _run_locked(spec: SweepSpec, data: FashionMNIST, storage: str, prepared: Prepared,
                on_update: Callable[[list[dict[str, Any]]], None] | None, errored: str,
                reuse: bool) -> SweepSummary:
    uri, resume, extension = prepared.uri, prepared.restore, prepared.extension
    if resume:
        ray_files.restore_lost_checkpoint_dirs(uri)
    elif extension is None:
        exports.write_text(uri, exports.SPEC_FILE, spec_to_yaml(spec))
    # (a grown spec.yaml is written once Ray has saved the extension's run, below)
    if extension is not None and not extension.adds:  # nothing to add: nothing runs
        return _summarize(uri, 0.0, set(exports.read_table(uri, exports.TRIALS_FILE)["trial_id"]))
    _quiet_ray()
    store = TrialStore(storage)
    # A PBT trial's result is not its final settings': such trials are neither kept nor reused.
    keys = None if spec.is_population else TrialKeys(fingerprint(data), NUMERICS_VERSION)
    run_trial = trainable(spec, data, store.load() if reuse else None, keys)
    if on_update is not None:
        DISPLAYS[uri] = on_update
    # An extension's run trains only the new trials; the rows of those already run are kept
    # as they are.
    kept = exports.read_table(uri, exports.TRIALS_FILE).to_dict("records") if extension else []
    began = time.monotonic()
    try:
        if resume:
            _fit(_restore(uri, spec, run_trial, errored))
        elif extension is None or extension.trials:  # else it adds confirmations only
            exporter = ResultsExporter(spec, uri, store=store, keys=keys, kept=kept)
            tuner = build_tuner(spec, run_trial, storage, [exporter], extension)
            if extension:  # only now: a resume from here on restores the grown run
                exports.write_text(uri, exports.SPEC_FILE, spec_to_yaml(spec))
            _fit(tuner)
        else:
            exports.write_text(uri, exports.SPEC_FILE, spec_to_yaml(spec))
        confirmed, unstarted = 0, _unstarted(spec, uri, began)
        if not ray_files.unfinished_trial_ids(uri) and not unstarted:
            confirmed = _confirm(spec, uri, store, keys, run_trial, storage)
    except Exception as exc:
        storage_fault = _storage_fault(exc)
        if storage_fault is None:
            raise
        raise UserError(f"{uri}: {storage_fault} while the sweep wrote its results; the "
                        f"results written so far are kept; free space there (or fix its "
                        f"permissions), then continue with `fmnist-ray resume {uri} --errored "
                        f"resume`") from None
    finally:
        DISPLAYS.pop(uri, None)
    summary = _summarize(uri, time.monotonic() - began, {row["trial_id"] for row in kept})
    summary.confirmed, summary.unstarted = confirmed, unstarted
    return summary


def _unstarted(spec: SweepSpec, uri: str, began: float) -> int:
    """Planned trials that never started: a Ctrl-C that Tune took before its searcher
    suggested them leaves no trace in Ray's state but this count (0 once a time budget ended
    the search)."""
    budget = spec.time_budget_minutes
    if budget and time.monotonic() - began >= budget * 60:
        return 0
    trials = exports.read_table(uri, exports.TRIALS_FILE)
    own = (trials["role"] != exports.CONFIRMATION).sum() if "role" in trials else len(trials)
    return max(0, spec.trial_count() - int(own))


def _restore(uri: str, spec: SweepSpec, run_trial, errored: str) -> tune.Tuner:
    """Ray's run saved at `uri`, to continue. A sweep's own run gets its search space again
    (Tune rebuilds the grid from it where the generator's saved state was lost, as on a full
    disk); an extension's or a confirmation's run, whose points came whole from a searcher,
    has none, and Tune refuses one with other keys: it keeps the saved one."""
    options = {"trainable": run_trial, "resume_unfinished": True,
               "resume_errored": errored == "resume", "restart_errored": errored == "restart"}
    try:
        return tune.Tuner.restore(uri, param_space=build_param_space(spec), **options)
    except ValueError as exc:
        if "param_space" not in str(exc):
            raise
        return tune.Tuner.restore(uri, **options)


def _fit(tuner: tune.Tuner) -> None:
    interrupts.check()  # a Ctrl-C that start-up swallowed stops the sweep here
    with trials_on_idle_workers() if started_here() else contextlib.nullcontext():
        tuner.fit()


def _confirm(spec: SweepSpec, uri: str, store: TrialStore, keys: TrialKeys, run_trial,
             storage: str) -> int:
    """After a search: train its choice with the fresh seeds `confirm_seeds` asks for and
    that have not run yet, in a Tune run of their own (the search's rows are kept); how many
    it ran."""
    points = confirmation_points(spec, uri)
    if not points:
        return 0
    kept = exports.read_table(uri, exports.TRIALS_FILE).to_dict("records")
    exporter = ResultsExporter(spec, uri, store=store, keys=keys, kept=kept,
                               role=exports.CONFIRMATION)
    tuner = build_tuner(confirmation_spec(spec), run_trial, storage, [exporter],
                        Extension(points=points))
    _fit(tuner)
    return len(points)


def _summarize(uri: str, seconds: float, kept: set[str] = frozenset()) -> SweepSummary:
    trials = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
              for row in exports.read_table(uri, exports.TRIALS_FILE).to_dict("records")]
    unfinished = ray_files.unfinished_trial_ids(uri)
    if unfinished:
        for row in trials:
            if row["trial_id"] in unfinished:
                row["status"] = Status.INTERRUPTED
        exports.write_table(uri, exports.TRIALS_FILE, trials)
    summary = SweepSummary(uri, seconds, kept=len(kept))
    for row in trials:
        summary.statuses[row["status"]] = summary.statuses.get(row["status"], 0) + 1
        if row["status"] == Status.ERRORED:
            summary.errors.append((row["trial_id"], row["error"]))
        summary.reused += bool(row.get("reused_from")) and row["trial_id"] not in kept
    results = load_results(uri)
    front = pareto_front(results)
    if front is not None:
        summary.front = [front_line(front, member) for _, member in front.members.iterrows()]
    choice = chosen(results)
    if choice is not None:
        summary.best = {k: (None if isinstance(v, float) and v != v else v)
                        for k, v in choice.trial.to_dict().items()}
        summary.best_config, summary.best_config_seeds = choice.label, choice.seeds
        summary.best_config_mean = choice.mean
    return summary

"""What runs inside each Ray Tune trial: reuse a stored result, or restore, train, report each
epoch and checkpoint; plus the fault injection the reliability tests use."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ray import tune

from fmnist_ray.cluster import current_node_id
from fmnist_ray.config import SCHEDULE_KEY, SweepSpec, TrialConfig
from fmnist_ray.sweep.store import StoredTrial, TrialKeys
from fmnist_ray.training.data import FashionMNIST
from fmnist_ray.training.loop import EpochMetrics, TrainState, build_trial_model, train_trial
from fmnist_ray.training.models import count_parameters
from fmnist_ray.training.population import adopt_settings, train_schedule

CHECKPOINT_FILE = "state.pt"
# Beside a PBT trial's state: the settings each epoch of its weights' lineage trained with.
SCHEDULE_FILE = "schedule.json"
FAULT_ENV = "FMNIST_RAY_FAULT"
# What a trial reports each epoch (Ray adds its own keys): what the store keeps and replays.
REPORTED = (*(f.name for f in fields(EpochMetrics)), "best_epoch", "best_val_accuracy",
            "best_val_loss", "test_accuracy", "test_loss", "test_confusion", "params", "node_id",
            "seconds", "pbt_settings", "pbt_schedule")


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
        # What the trial has cost so far: a multi-objective search's `seconds`.
        "seconds": sum(m.epoch_seconds + m.eval_seconds for m in state.history),
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


def replay(stored: StoredTrial) -> None:
    """Report a stored trial's epochs again, as if it had just trained: no training at all."""
    for result in stored.results:
        tune.report({**result, "trial_key": stored.key, "reused_from": stored.reused_from,
                     "reused_checkpoint": stored.checkpoint})


def run_trial(params: dict[str, Any], spec: SweepSpec, data: FashionMNIST,
              stored: dict[str, StoredTrial] | None = None,
              keys: TrialKeys | None = None) -> None:
    """Ray Tune entry point: reuse the stored result of this very trial if there is one;
    otherwise restore, train, report each epoch, checkpoint every N epochs. A PBT trial
    records the settings of each epoch of its weights' lineage; a confirmation of one replays
    that schedule from scratch."""
    if SCHEDULE_KEY in params:
        _replay_schedule(params, spec, data)
        return
    config = spec.trial_config(params)
    key = keys.key(config) if keys else None
    if stored and key in stored:
        replay(stored[key])
        return
    start, lineage = None, []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start = newest_valid_state(Path(directory))
            lineage = _read_schedule(Path(directory))
    if start is not None and spec.is_population:  # another trial's state, perhaps
        start = adopt_settings(start, config)
        lineage = lineage[:start.epoch]
    mutable = {k: config.model_dump()[k] for k in spec.scheduler.mutate}
    on_epoch = _reporter(spec, config, key, _Lineage(params, lineage, lambda epoch: mutable)
                         if spec.is_population else None)
    train_trial(config, data, on_epoch=on_epoch, start=start, threads=spec.resources.cpu)


@dataclass
class _Lineage:
    """A PBT trial's schedule: the settings each epoch of its weights' lineage trained with,
    reported with every epoch and kept beside every checkpoint."""

    point: dict[str, Any]  # the search-space point it runs now
    epochs: list[dict[str, Any]]
    settings_at: Callable[[int], dict[str, Any]]
    source: str | None = None  # the trial a confirmation replays

    def record(self, epoch: int) -> dict[str, Any]:
        del self.epochs[epoch - 1:]
        self.epochs.append(self.settings_at(epoch))
        return {"pbt_settings": json.dumps(self.epochs[-1]),
                "pbt_schedule": json.dumps({"point": self.point, "epochs": self.epochs,
                                        "source": self.source})}


def _reporter(spec: SweepSpec, config: TrialConfig, key: str | None,
              lineage: _Lineage | None) -> Callable[[EpochMetrics, TrainState], None]:
    """What reports each epoch to Tune and checkpoints, with the lineage's settings (PBT)."""
    params = count_parameters(build_trial_model(config))

    def on_epoch(metrics: EpochMetrics, state: TrainState) -> None:
        # The key as this trial computed it: the driver's may be older (a resumed sweep's).
        report = {**_report_metrics(metrics, state, params), "trial_key": key}
        if lineage is not None:
            report.update(lineage.record(metrics.epoch))
        last = metrics.epoch == config.epochs or metrics.diverged
        if metrics.epoch % spec.checkpoint_every and not last:
            tune.report(report)
        else:
            with tempfile.TemporaryDirectory() as directory:
                state.save(Path(directory) / CHECKPOINT_FILE)
                if lineage is not None:
                    (Path(directory) / SCHEDULE_FILE).write_text(json.dumps(lineage.epochs))
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))
        _inject_fault(config.model_dump(), metrics.epoch)

    return on_epoch


def _read_schedule(directory: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((directory / SCHEDULE_FILE).read_text())
    except (OSError, ValueError):
        return []


def _replay_schedule(params: dict[str, Any], spec: SweepSpec, data: FashionMNIST) -> None:
    """A confirmation of a PBT trial: its schedule of settings from scratch, with the seed in
    `params`, reported like a PBT trial (its lineage is the schedule)."""
    schedule = params[SCHEDULE_KEY]
    point = {k: v for k, v in params.items() if k != SCHEDULE_KEY}
    epochs = schedule["epochs"]

    def config_for(settings: dict[str, Any]) -> TrialConfig:
        return spec.trial_config({**point, **settings})

    lineage = _Lineage(point, [], lambda epoch: epochs[epoch - 1], schedule.get("source"))
    on_epoch = _reporter(spec, config_for(epochs[0]), None, lineage)
    train_schedule(config_for, epochs, data, on_epoch=on_epoch, threads=spec.resources.cpu)


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


def trainable(spec: SweepSpec, data: FashionMNIST, stored: dict[str, StoredTrial] | None,
              keys: TrialKeys | None):
    """`run_trial` with the data and the stored trials shared through Ray's object store."""
    return tune.with_resources(
        tune.with_parameters(run_trial, spec=spec, data=data, stored=stored, keys=keys),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )

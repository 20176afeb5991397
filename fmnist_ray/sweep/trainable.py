"""What runs inside each Ray Tune trial: reuse a stored result, or restore, train, report each
epoch and checkpoint; plus the fault injection the reliability tests use."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ray import tune

from fmnist_ray.cluster import current_node_id
from fmnist_ray.config import SweepSpec
from fmnist_ray.sweep.store import StoredTrial, TrialKeys
from fmnist_ray.training.data import FashionMNIST
from fmnist_ray.training.loop import EpochMetrics, TrainState, build_trial_model, train_trial
from fmnist_ray.training.models import count_parameters

CHECKPOINT_FILE = "state.pt"
FAULT_ENV = "FMNIST_RAY_FAULT"
# What a trial reports each epoch (Ray adds its own keys): what the store keeps and replays.
REPORTED = (*(f.name for f in fields(EpochMetrics)), "best_epoch", "best_val_accuracy",
            "best_val_loss", "test_accuracy", "test_loss", "test_confusion", "params", "node_id")


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


def replay(stored: StoredTrial) -> None:
    """Report a stored trial's epochs again, as if it had just trained: no training at all."""
    for result in stored.results:
        tune.report({**result, "trial_key": stored.key, "reused_from": stored.reused_from,
                     "reused_checkpoint": stored.checkpoint})


def run_trial(params: dict[str, Any], spec: SweepSpec, data: FashionMNIST,
              stored: dict[str, StoredTrial] | None = None,
              keys: TrialKeys | None = None) -> None:
    """Ray Tune entry point: reuse the stored result of this very trial if there is one;
    otherwise restore, train, report each epoch, checkpoint every N epochs."""
    config = spec.trial_config(params)
    key = keys.key(config) if keys else None
    if stored and key in stored:
        replay(stored[key])
        return
    start = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start = newest_valid_state(Path(directory))
    params = count_parameters(build_trial_model(config))

    def on_epoch(metrics: EpochMetrics, state: TrainState) -> None:
        # The key as this trial computed it: the driver's may be older (a resumed sweep's).
        report = {**_report_metrics(metrics, state, params), "trial_key": key}
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


def trainable(spec: SweepSpec, data: FashionMNIST, stored: dict[str, StoredTrial] | None,
              keys: TrialKeys):
    """`run_trial` with the data and the stored trials shared through Ray's object store."""
    return tune.with_resources(
        tune.with_parameters(run_trial, spec=spec, data=data, stored=stored, keys=keys),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )

"""Growing a sweep (`--extend`): which spec changes only add trials, and the points of the
trials already run, for a searcher to go on from. Ray-free."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fmnist_ray.config import SweepSpec
from fmnist_ray.errors import UserError
from fmnist_ray.results import exports, ray_files
from fmnist_ray.spec.file import read_stored_spec
from fmnist_ray.sweep.confirm import confirmation_points

# Changing these changes what the existing trials are or how they are judged.
FIXED = ("metric", "mode", "search", "scheduler", "trial")


def _changed(stored: SweepSpec, grown: SweepSpec, keys: tuple[str, ...]) -> list[str]:
    """`key (old -> new)` for each key that differs; nested settings by their own key."""
    old = stored.model_dump(mode="json", exclude_none=True)
    new = grown.model_dump(mode="json", exclude_none=True)
    changes = []
    for key in keys:
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            changes += [f"{key}.{k} ({_text(before.get(k))} -> {_text(after.get(k))})"
                        for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        elif before != after:
            changes.append(f"{key} ({_text(before)} -> {_text(after)})")
    return changes


def _text(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _configs(spec: SweepSpec) -> dict[str, dict[str, Any]]:
    """The settings of every trial of a grid, by their JSON text."""
    found = {}
    for point in spec.grid_points():
        config = spec.trial_config(point).model_dump(mode="json")
        found[json.dumps(config, sort_keys=True)] = point
    return found


def _shown(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v['name'] if k == 'variant' else v}" for k, v in point.items())


def extension_problems(stored: SweepSpec, grown: SweepSpec) -> list[str]:
    """What keeps `grown` from being `stored` plus new trials: one phrase per problem."""
    problems = [f"{change} changed" for change in _changed(stored, grown, FIXED)]
    if problems:
        return problems
    if grown.search == "random" or (grown.search == "grid" and grown.sampled_keys):
        return ["random search draws new points, not the earlier ones (use search: optuna)"]
    if grown.search == "optuna":
        problems += [f"{change} changed (the search space of the trials already run)"
                     for change in _changed(stored, grown, ("axes", "variants"))]
        if grown.num_samples < stored.num_samples:
            problems.append(f"num_samples went down ({stored.num_samples} -> "
                            f"{grown.num_samples})")
        return problems
    grown_configs = _configs(grown)
    lost = [point for text, point in _configs(stored).items() if text not in grown_configs]
    if lost:
        problems.append(f"axes/variants/seeds: {len(lost)} trial(s) already run would no longer "
                        f"be in the sweep (e.g. {_shown(lost[0])})")
    return problems


@dataclass(frozen=True)
class Extension:
    """What growing a sweep adds: the new grid points, or the samples a searcher draws after
    it is told the earlier trials' points and results. The trials already run are kept as
    they are (same ids, same rows); only these train."""

    points: list[dict[str, Any]] = field(default_factory=list)  # a grid's new points
    samples: int = 0  # a search's new samples
    earlier: list[dict[str, Any]] = field(default_factory=list)  # the search's points so far
    rewards: list[float] = field(default_factory=list)  # their results, as Tune reported them
    confirmations: int = 0  # fresh seeds of a search's choice still to run (confirm_seeds)

    @property
    def trials(self) -> int:
        """The new trials of the sweep itself (confirmations aside)."""
        return len(self.points) + self.samples

    @property
    def adds(self) -> int:
        return self.trials + self.confirmations


def new_grid_points(stored: SweepSpec, grown: SweepSpec) -> list[dict[str, Any]]:
    """The points of `grown`'s grid that `stored`'s did not run, in grid order."""
    def text(spec: SweepSpec, point: dict[str, Any]) -> str:
        return json.dumps(spec.trial_config(point).model_dump(mode="json"), sort_keys=True)

    ran = Counter(text(stored, point) for point in stored.grid_points())
    new = []
    for point in grown.grid_points():
        key = text(grown, point)
        if ran[key]:
            ran[key] -= 1
        else:
            new.append(point)
    return new


def check_extension(grown: SweepSpec, uri: str) -> Extension:
    """What growing the sweep at `uri` to `grown` adds; refused in one line when the change is
    not an extension (or there is no sweep there to extend)."""
    if not exports.saved_state(uri).spec:
        raise UserError(f"{uri}: no sweep to extend there; check --storage and --name, or run "
                        f"without --extend to start it")
    if ray_files.unfinished_trial_ids(uri):
        raise UserError(f"{uri}: this sweep stopped before all its trials finished; finish it "
                        f"first with `fmnist-ray resume {uri}` (its unfinished trials go on from "
                        f"their checkpoints), then extend it")
    problems = extension_problems(read_stored_spec(uri), grown)
    if problems:
        raise UserError(f"{uri}: cannot extend this sweep: {'; '.join(problems)}; an extension "
                        f"may only add seeds, axis values, variants or samples: pass --name NEW "
                        f"to start a new sweep instead")
    stored = read_stored_spec(uri)
    confirmations = len(confirmation_points(grown, uri))
    whole = grown.is_population or grown.objectives  # a population, a front: run as one
    if whole and grown.trial_count() != stored.trial_count():
        what = "a PBT population trains together" if grown.is_population else \
            "a multi-objective search is told its results as one study"
        raise UserError(f"{uri}: cannot add trials to this sweep: {what}; extend it only with "
                        f"--set confirm_seeds=N, or pass --name NEW to start a larger sweep")
    if whole:
        return Extension(confirmations=confirmations)
    if grown.search != "optuna":
        return Extension(points=new_grid_points(stored, grown), confirmations=confirmations)
    earlier, rewards = earlier_results(uri, grown.metric)
    return Extension(samples=grown.num_samples - stored.num_samples, earlier=earlier,
                     rewards=rewards, confirmations=confirmations)


def earlier_results(uri: str, metric: str) -> tuple[list[dict[str, Any]], list[float]]:
    """The search-space points of the sweep's trials so far, in the order they ran, with the
    `metric` each last reported (what Tune tells a searcher); trials without one are left
    out."""
    try:
        ids = list(exports.read_table(uri, exports.TRIALS_FILE)["trial_id"])
    except UserError:
        return [], []
    logs = ray_files.read_ray_logs(uri)
    points, rewards = [], []
    # trials.parquet lists the trials in the order Tune created them.
    for trial_id in ids:
        log = logs.get(trial_id)
        if log is None or log.params is None or not log.records:
            continue
        reward = log.records[-1].get(metric)
        if isinstance(reward, int | float) and math.isfinite(reward):
            points.append(log.params)
            rewards.append(float(reward))
    return points, rewards

"""A multi-objective search's Pareto front: the trials no other trial beats on every
objective at once, and the one chosen from it (the most accurate within `choose_within`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fmnist_ray.config import OBJECTIVES
from fmnist_ray.report.load import SweepResults
from fmnist_ray.results.outcomes import Status


@dataclass
class Front:
    """The front over the completed trials, best metric first, and the choice from it."""

    objectives: dict[str, str]  # objective -> max | min
    trials: pd.DataFrame  # the completed trials with every objective, `on_front` marked
    chosen: pd.Series | None  # None when no member is within the limits
    rule: str  # how the chosen member was picked, in words
    limits: dict[str, float] = field(default_factory=dict)  # objective -> at most this

    @property
    def members(self) -> pd.DataFrame:
        return self.trials[self.trials["on_front"]]

    def to_json(self) -> dict:
        columns = ["trial_id", "config", *(OBJECTIVES[o] for o in self.objectives),
                   "test_accuracy", "test_loss"]
        return {"objectives": self.objectives,
                "columns": {o: OBJECTIVES[o] for o in self.objectives},
                "trials": len(self.trials), "rule": self.rule,
                "chosen": None if self.chosen is None else self.chosen["trial_id"],
                "members": self.members[columns].to_dict("records")}


def dominated(scores: np.ndarray) -> np.ndarray:
    """Per row of `scores` (higher is better in every column): whether another row is at
    least as good in every column and better in one."""
    at_least = (scores[None, :, :] >= scores[:, None, :]).all(axis=2)
    better = (scores[None, :, :] > scores[:, None, :]).any(axis=2)
    return (at_least & better).any(axis=1)


def pareto_front(results: SweepResults) -> Front | None:
    """The front of a sweep with `objectives`; None for a sweep of one metric."""
    spec = results.spec
    if spec is None or not spec.objectives:
        return None
    columns = [OBJECTIVES[o] for o in spec.objectives]
    trials = results.trials[results.trials["status"] == Status.COMPLETED]
    trials = trials.dropna(subset=columns).copy()
    signs = np.array([1.0 if mode == "max" else -1.0 for mode in spec.objectives.values()])
    scores = trials[columns].to_numpy(dtype=float) * signs
    trials["on_front"] = ~dominated(scores) if len(trials) else []
    metric = OBJECTIVES[spec.metric]
    trials = trials.sort_values(metric, ascending=spec.resolved_mode == "min")
    limits = {OBJECTIVES[o]: limit for o, limit in spec.choose_within.items()}
    within = trials[trials["on_front"]]
    for column, limit in limits.items():
        within = within[within[column] <= limit]
    words = " and ".join(f"{o} at most {limit:g}" for o, limit in spec.choose_within.items())
    rule = (f"the member with the best {spec.metric}" + (f" among those with {words}"
                                                         if words else ""))
    return Front(dict(spec.objectives), trials, None if within.empty else within.iloc[0], rule,
                 dict(spec.choose_within))


def front_line(front: Front, member: pd.Series) -> str:
    """One member of the front in words: its trial, configuration and objectives."""
    figures = ", ".join(f"{o} {member[OBJECTIVES[o]]:{_FORMATS[o]}}" for o in front.objectives)
    chosen = front.chosen is not None and member["trial_id"] == front.chosen["trial_id"]
    return (f"{member['trial_id']} ({member['config']}): {figures}"
            + (" (chosen: " + front.rule + ")" if chosen else ""))


_FORMATS = {"val_accuracy": ".4f", "val_loss": ".4f", "seconds": ".1f", "params": ",.0f"}

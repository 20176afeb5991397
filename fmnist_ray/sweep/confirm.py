"""Confirming a search's choice: its configuration trained again, after the search, with fresh
seeds at full length, so the result a report gives is not the search's own (optimistic)
figure for its winner. Ray-free: the points to run, from the results on disk."""

from __future__ import annotations

from typing import Any

from fmnist_ray.config import SCHEDULE_KEY, Scheduler, SweepSpec
from fmnist_ray.report.analysis import chosen
from fmnist_ray.report.load import load_results
from fmnist_ray.results import ray_files
from fmnist_ray.results.exports import read_schedule

# Confirmation seeds start here (plus trial.seed): far from any seed a sweep itself runs.
FRESH_SEEDS = 10_000


def confirmation_points(spec: SweepSpec, uri: str) -> list[dict[str, Any]]:
    """The search-space points still to run to confirm the search's choice with
    `spec.confirm_seeds` fresh seeds (none for a grid, without confirm_seeds, or before any
    trial learned)."""
    if not spec.confirm_seeds or not spec.is_search:
        return []
    results = load_results(uri)
    choice = chosen(results)
    if choice is None:
        return []
    # The sweep's own trials of the choice (its best trial may be a confirmation already).
    own = results.trials[results.trials["config"] == choice.config]
    if spec.is_population:  # the PBT trial's schedule of settings, replayed from scratch
        schedule = read_schedule(own.iloc[0])
        if schedule is None:
            return []
        params = {**schedule["point"], SCHEDULE_KEY: {"epochs": schedule["epochs"],
                                                      "source": own.iloc[0]["trial_id"]}}
    else:
        logs = ray_files.read_ray_logs(uri)
        params = next((logs[t].params for t in own["trial_id"]
                       if t in logs and logs[t].params is not None), None)
    if params is None:
        return []
    ran = results.confirmation
    ran = set(ran.loc[ran["config"] == choice.config, "seed"]) if len(ran) else set()
    seeds = [spec.trial.seed + FRESH_SEEDS + k for k in range(spec.confirm_seeds)]
    return [{**params, "seed": seed} for seed in seeds if seed not in ran]


def confirmation_spec(spec: SweepSpec) -> SweepSpec:
    """How confirmation trials run: every one to full length (no ASHA, no time budget)."""
    return spec.model_copy(update={"search": "grid", "scheduler": Scheduler(),
                                   "time_budget_minutes": None})

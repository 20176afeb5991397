"""The settings a sweep varied: which they are, how to show them, and each trial's label."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fmnist_ray.config import SweepSpec
from fmnist_ray.report.formatting import format_value
from fmnist_ray.results.exports import read_schedule


@dataclass
class Axis:
    """A setting the sweep varied, and how to show it."""

    name: str
    order: list[str]  # its value labels, numeric values ascending
    continuous: bool = False  # sampled from a range: a scatter, not one group per value
    log: bool = False


def varied_axes(trials: pd.DataFrame, spec: SweepSpec | None) -> list[str]:
    """The spec's axes plus `variant`; without a spec, the settings whose values differ.

    Seeds are never an axis: results are pooled over them.
    """
    if spec is not None:
        names = [*(["variant"] if spec.variants else []), *spec.axes]  # the bundle first
        return [a for a in names if a in trials and a != "seed"]
    candidates = ("variant", "model", "hidden_sizes", "width", "dropout", "optimizer", "lr",
                  "momentum", "weight_decay", "batch_size", "epochs", "normalize", "precision")
    return [c for c in candidates if c in trials and trials[c].astype(str).nunique() > 1]


def describe_axis(trials: pd.DataFrame, name: str, spec: SweepSpec | None) -> Axis:
    """How to show one axis: its value labels in natural order, and whether it is continuous."""
    values = trials[name].dropna()
    axis_spec = spec.axes.get(name) if spec else None
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if spec is not None and name in spec.sampled_keys:
        continuous = axis_spec.kind in ("uniform", "loguniform") or (
            numeric and values.nunique() > 8)
        log = axis_spec.kind == "loguniform"
    else:  # listed values are categories, however many; unknown axes go by their count
        continuous = numeric and axis_spec is None and values.nunique() > 8
        log = continuous and values.min() > 0 and values.max() / values.min() >= 100
    distinct = values.unique().tolist()
    if spec is not None and name == "variant":
        names = [v.name for v in spec.variants]
        distinct.sort(key=lambda v: names.index(v) if v in names else len(names))
    elif numeric:
        distinct.sort()
    else:
        distinct.sort(key=str)
    return Axis(name, [format_value(v) for v in distinct], bool(continuous), bool(log))


def label_configs(trials: pd.DataFrame, axes: list[Axis]) -> list[str]:
    """Give each trial a `config` label (its axis values, seed aside); return their order."""
    if not axes:
        trials["config"] = "all trials"
        return ["all trials"] if len(trials) else []
    parts = {a.name: trials[a.name].map(format_value) for a in axes}
    if len(axes) == 1:
        trials["config"] = parts[axes[0].name]
    else:
        trials["config"] = [", ".join(f"{a.name}={parts[a.name][i]}" for a in axes)
                            for i in trials.index]
    ranks = pd.DataFrame({a.name: parts[a.name].map({v: i for i, v in enumerate(a.order)})
                          for a in axes})
    ranks["config"] = trials["config"]
    return ranks.sort_values([a.name for a in axes])["config"].unique().tolist()


def schedule_label(trial_id: str) -> str:
    """The configuration label of a PBT trial: its schedule of settings, named by trial."""
    return f"schedule of {trial_id}"


def label_schedules(trials: pd.DataFrame, confirmation: pd.DataFrame) -> list[str]:
    """PBT: give each trial its own `config` label (its settings changed as it trained), and
    each confirmation the label of the trial whose schedule it replays; return their order."""
    trials["config"] = trials["trial_id"].map(schedule_label)
    sources = [(read_schedule(row) or {}).get("source") for _, row in confirmation.iterrows()]
    confirmation["config"] = [schedule_label(s) if s else "unknown schedule" for s in sources]
    return trials["config"].tolist()

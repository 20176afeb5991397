"""The page's section on a PBT sweep: the settings schedule of the trial chosen on
validation, beside every trial's settings per epoch, and the schedule's confirmation."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd

from fmnist_ray.report.analysis import Choice
from fmnist_ray.report.charts.common import HEIGHT, WIDTH, Section, epoch_x
from fmnist_ray.report.load import SweepResults
from fmnist_ray.results.exports import read_schedule


def settings_per_epoch(results: SweepResults) -> pd.DataFrame:
    """One row per trial, epoch and changed setting: what each epoch trained with (long)."""
    rows = []
    for _, row in results.epochs.dropna(subset=["pbt_settings"]).iterrows():
        for key, value in json.loads(row["pbt_settings"]).items():
            rows.append({"trial_id": row["trial_id"], "epoch": row["epoch"], "setting": key,
                         "value": float(value)})
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "setting", "value"])


def schedule_frame(schedule: dict) -> pd.DataFrame:
    """A schedule's settings per epoch of its lineage (long)."""
    return pd.DataFrame([{"epoch": epoch, "setting": key, "value": float(value)}
                         for epoch, settings in enumerate(schedule["epochs"], start=1)
                         for key, value in settings.items()],
                        columns=["epoch", "setting", "value"])


def schedule_chart(results: SweepResults, schedule: dict, mutated: list[str]):
    """Per changed setting: every trial's value per epoch (grey, as each trained) and the
    chosen schedule (red, the lineage of its final weights)."""
    population, chosen = settings_per_epoch(results), schedule_frame(schedule)
    charts = []
    for key in mutated:
        values = pd.concat([population.loc[population["setting"] == key, "value"],
                            chosen.loc[chosen["setting"] == key, "value"]])
        log = values.min() > 0 and values.max() / values.min() >= 8
        y = alt.Y("value:Q", title=key, scale=alt.Scale(type="log") if log
                  else alt.Scale(zero=False, padding=8))
        x = epoch_x(chosen["epoch"])
        grey = alt.Chart(population[population["setting"] == key]).mark_line(
            interpolate="step-after", color="#9e9e9e", opacity=0.5, point=True).encode(
            x=x, y=y, detail="trial_id:N",
            tooltip=["trial_id:N", "epoch:Q", alt.Tooltip("value:Q", title=key, format=".4g")])
        red = alt.Chart(chosen[chosen["setting"] == key]).mark_line(
            interpolate="step-after", color="#d62728", strokeWidth=3, point=True).encode(
            x=x, y=y, tooltip=["epoch:Q", alt.Tooltip("value:Q", title=key, format=".4g")])
        charts.append(alt.layer(grey, red).properties(width=WIDTH, height=HEIGHT,
                                                      title=f"{key} per epoch"))
    return alt.hconcat(*charts) if charts else None


def population_section(results: SweepResults, choice: Choice | None) -> Section:
    """Empty unless the sweep is a PBT sweep with a chosen trial."""
    spec = results.spec
    if spec is None or not spec.is_population or choice is None:
        return Section("Population based training")
    own = results.trials[results.trials["config"] == choice.config].iloc[0]  # the PBT trial
    schedule = read_schedule(own)
    options = spec.scheduler
    notes = [f"PBT trained {len(results.trials)} trials side by side; every "
             f"{options.perturbation_interval} epochs the worst {options.quantile:.0%} took the "
             f"weights of one of the best {options.quantile:.0%} and changed "
             f"{', '.join(options.mutate)} (a listed value moves to a neighbour, a range's "
             f"value by x0.8 or x1.2, or either is drawn again). A trial is therefore a "
             f"schedule of settings, not one configuration: the page compares trials, never "
             f"setting values."]
    if schedule is None:
        notes.append("The chosen trial recorded no schedule of settings.")
        return Section("Population based training", notes)
    changes = sum(a != b for a, b in zip(schedule["epochs"], schedule["epochs"][1:],
                                                   strict=False))
    notes.append(f"The trial chosen on validation, {choice.config}, trained its final weights "
                 f"through {changes} change(s) of settings (red); grey: every trial's "
                 f"settings as it trained (a trial that took another's weights continues that "
                 f"trial's lineage).")
    if choice.confirmed:
        notes.append(f"That schedule, trained again from scratch with {choice.seeds} fresh "
                     f"seed(s): mean validation accuracy {choice.mean:.4f} (the result; its "
                     f"test accuracy with its interval is in the summary); the PBT trial's own "
                     f"{own['best_val_accuracy']:.4f} won a population and is optimistic.")
    else:
        notes.append("The schedule has not been trained again from scratch: its figures are "
                     "the population's winner's own, optimistic (set confirm_seeds).")
    section = Section("Population based training", notes)
    chart = schedule_chart(results, schedule, list(options.mutate))
    if chart is not None:
        section.charts.append((chart, "Step lines: the setting each epoch trained with."))
    return section

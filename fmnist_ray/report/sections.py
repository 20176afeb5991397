"""Which sections a sweep's page gets, in reading order, and the table of all trials."""

from __future__ import annotations

import html
import re

import pandas as pd

from fmnist_ray.report.analysis import chosen
from fmnist_ray.report.charts.best_trial import best_trial_section
from fmnist_ray.report.charts.common import Section, in_config_order
from fmnist_ray.report.charts.cost import cost_section
from fmnist_ray.report.charts.curves import learning_section
from fmnist_ray.report.charts.failures import failures_section
from fmnist_ray.report.charts.front import front_section
from fmnist_ray.report.charts.metrics import test_results_section
from fmnist_ray.report.charts.overfitting import overfitting_section
from fmnist_ray.report.charts.population import population_section
from fmnist_ray.report.charts.search import asha_section, search_section
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.formatting import format_number, format_value
from fmnist_ray.report.load import SweepResults

MAX_CURVES = 12  # more configurations than this make unreadable line charts: show the best


def sweep_sections(results: SweepResults, found: SweepFindings, best: pd.Series | None,
                   class_names) -> list[Section]:
    """The report's sections, in reading order; a section with nothing to show is left out."""
    if results.trials.empty:
        return [Section("All trials", ["No trial has been exported yet."])]
    per_trial = found.overfitting
    top = results.configs
    if len(top) > MAX_CURVES:
        ranked = results.trials.groupby("config")[results.metric].mean()
        ranked = ranked.sort_values(ascending=not results.maximize).dropna()
        top = [c for c in results.configs if c in set(ranked.index[:MAX_CURVES])]
    metric = results.spec.metric if results.spec else "val_accuracy"
    sections = [test_results_section(results, found), front_section(found.front, metric),
                population_section(results, chosen(results)), learning_section(results, top),
                overfitting_section(results, top, per_trial), failures_section(results, found)]
    if len(results.axes) >= 2:
        sections.append(search_section(results, found))
    asha = results.spec is not None and results.spec.scheduler.stops_early
    if asha or (results.trials["status"] == "early_stopped").any():
        sections.append(asha_section(results))
    sections += [cost_section(results, found), best_trial_section(results, best, class_names)]
    table = Section("All trials", ["Every trial, failed and diverged ones included; ★ marks "
                                   "the trial chosen on validation. Last gap: validation minus "
                                   "training loss at the last epoch (eval-mode training loss "
                                   "where the sweep measured it)."])
    table.html = _trial_table(results, per_trial, best)
    return [s for s in sections if s.charts or s.notes] + [table]


def _trial_table(results: SweepResults, per_trial: pd.DataFrame,
                 best: pd.Series | None) -> str:
    """Every trial, whatever its status, with the error of those that failed."""
    gaps = per_trial.set_index("trial_id")["gap"]
    axes = [a.name for a in results.axes]
    head = ["trial", "status", *axes, "seed", "epochs", "best epoch", "best val acc",
            "last gap", "test acc", "test loss", "params", "seconds", "error"]
    trials = in_config_order(results.trials, results.configs, "seed")
    body = []
    for _, t in trials.iterrows():
        star = best is not None and t["trial_id"] == best["trial_id"]
        cells = [t["trial_id"] + (" ★" if star else ""),
                 f'<span class="status {re.sub(r"[^a-z_]", "", t["status"])}">'
                 f'{html.escape(t["status"].replace("_", "-"))}</span>',
                 *[format_value(t[a]) for a in axes], format_value(t["seed"]),
                 f"{format_value(t['epochs_run'])}/{format_value(t['epochs'])}",
                 format_number(t["best_epoch"], ".0f"),
                 format_number(t["best_val_accuracy"], ".4f"),
                 format_number(gaps.get(t["trial_id"]), ".3f"),
                 format_number(t["test_accuracy"], ".4f"), format_number(t["test_loss"], ".4f"),
                 format_number(t["params"], ",.0f"), format_number(t["seconds"], ".1f")]
        cells = [c if i == 1 else html.escape(c) for i, c in enumerate(cells)]
        error = t["error"] if isinstance(t["error"], str) else ""
        cells.append(f'<span class="error" title="{html.escape(error)}">'
                     f"{html.escape(error[:160])}</span>")
        row = "".join(f"<td>{c}</td>" for c in cells)
        body.append(f'<tr class="{"best" if star else ""}">{row}</tr>')
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (f'<div class="table"><table><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')

"""What every report chart shares: status colours, sizes, epoch axes, and the Section holder.

Chart builders take tidy frames with NaN/inf rows already dropped (Vega cannot draw them); every
chart colours trial status the same way, so diverged or early-stopped runs stand out rather
than vanish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import altair as alt
import pandas as pd

from fmnist_ray.report.analysis import FAILED
from fmnist_ray.report.axes import Axis
from fmnist_ray.report.differences import VERDICTS
from fmnist_ray.report.formatting import format_value
from fmnist_ray.report.load import SweepResults
from fmnist_ray.results.outcomes import Status

STATUSES = (Status.COMPLETED, Status.EARLY_STOPPED, Status.FAILED_TO_LEARN, Status.DIVERGED,
            Status.ERRORED, Status.RUNNING, Status.PENDING, Status.INTERRUPTED)
STATUS_COLORS = ("#4c78a8", "#f58518", "#9d755d", "#e45756", "#7f7f7f", "#72b7b2", "#bab0ac",
                 "#b279a2")
# How a value compares with the one chosen on validation (VERDICTS), the same in every chart.
VERDICT_COLORS = ("#2ca02c", "#9467bd", "#d62728", "#4c78a8", "#b8860b")
# An ordered setting's values (batch sizes, learning rates), low to high: dark blue through
# teal, green, olive and orange to dark red. Hue and lightness both step, so neighbours stay
# apart (at least 33 CIELAB units for any count picked by `ordinal_colors`); viridis on six
# values left the three smallest nearly the same blue.
ORDINAL_COLORS = ("#1b3a8c", "#1f78b4", "#17a3a3", "#33a02c", "#9a9a00", "#f08c00", "#d7301f",
                  "#8c0d3f")
# A study claim's verdict (`verdicts`), on the index page's badges and its chart alike.
CLAIM_COLORS = {"reproduced": "#2ca02c", "contradicted": "#d62728", "undecided": "#b8860b",
                "not-testable": "#888888"}
WIDTH = 380
HEIGHT = 230


@dataclass
class Section:
    """A heading, sentences under it, and its charts with a caption each."""

    title: str
    notes: list[str] = field(default_factory=list)
    charts: list[tuple[alt.TopLevelMixin, str]] = field(default_factory=list)
    html: str = ""  # extra markup after the charts (the trial table)


def epoch_x(epochs: pd.Series, field: str = "epoch") -> alt.X:
    """An epoch axis with whole-number ticks (Vega's tickMinStep alone still draws 1.5)."""
    last = int(epochs.max()) if epochs.notna().any() else 1
    if last > 20:  # long runs: Vega's own ticks, whole numbers only
        return alt.X(f"{field}:Q", title="epoch", axis=alt.Axis(format="d", tickMinStep=1))
    return alt.X(f"{field}:Q", title="epoch", axis=alt.Axis(
        values=list(range(0, last + 1)), format="d", tickMinStep=1))


def padded_scale() -> alt.Scale:
    return alt.Scale(zero=False, padding=8)  # padding keeps dots at the extremes inside


def status_color(present: pd.Series) -> alt.Color:
    """Trial status in the same colour everywhere; the legend lists the statuses present."""
    colors = dict(zip(STATUSES, STATUS_COLORS, strict=True))
    shown = [s for s in STATUSES if s in set(present)]
    shown += sorted(set(present) - set(shown))
    return alt.Color("status:N", title="status", scale=alt.Scale(
        domain=shown, range=[colors.get(s, "#bbbbbb") for s in shown]))


def verdict_color(present: pd.Series) -> alt.Color:
    """A value's verdict against the chosen one; the legend lists the verdicts drawn."""
    colors = dict(zip(VERDICTS, VERDICT_COLORS, strict=True))
    shown = [v for v in VERDICTS if v in set(present)]
    return alt.Color("verdict:N", title="against the choice", scale=alt.Scale(
        domain=shown, range=[colors[v] for v in shown]))


def claim_class(verdict: str) -> str:
    """A claim verdict without its details: "undecided (needs about 9 seeds)" -> "undecided"."""
    return verdict.split(" (")[0].replace(" ", "-")


def ordinal_colors(n: int) -> list[str]:
    """`n` colours in value order, spread evenly over ORDINAL_COLORS (ends included)."""
    last = len(ORDINAL_COLORS) - 1
    return [ORDINAL_COLORS[round(i * last / (n - 1))] if n > 1 else ORDINAL_COLORS[0]
            for i in range(n)]


def config_color(order: list[str], title: str, ordered: bool = False) -> alt.Color:
    """One colour per configuration: for an ordered setting (batch size, learning rate) steps
    in value order that neighbours can tell apart, distinct hues otherwise."""
    if ordered and len(order) <= len(ORDINAL_COLORS):
        scheme = alt.Scale(domain=order, range=ordinal_colors(len(order)))
    elif ordered:  # more values than clear steps: distinct hues, still in value order
        scheme = alt.Scale(domain=order, scheme="category20")
    else:
        scheme = alt.Scale(domain=order, scheme="tableau10" if len(order) <= 10
                           else "category20")
    return alt.Color("config:N", title=title, sort=order, scale=scheme,
                     legend=alt.Legend(labelLimit=320, symbolLimit=40, symbolOpacity=1,
                                       symbolType="stroke", symbolStrokeWidth=3))


def ordered_axis(results: SweepResults) -> bool:
    """One numeric setting varied (batch size, learning rate): its values have an order."""
    return len(results.axes) == 1 and results.axes[0].name != "variant" and pd.api.types.\
        is_numeric_dtype(results.trials[results.axes[0].name])


def trial_labels(trials: pd.DataFrame) -> pd.Series:
    seeds = trials["seed"].nunique() > 1
    label = trials["trial_id"] + " · " + trials["config"]
    return label + (" · seed " + trials["seed"].map(format_value) if seeds else "")


def not_drawn_caption(results: SweepResults, column: str) -> str:
    """A caption naming trials whose `column` is NaN/inf at some epoch: lines cannot show it."""
    epochs, trials = results.epochs, results.trials
    trials = trials[~trials["status"].isin(FAILED)]  # named by failed_caption instead
    finite = set(epochs.loc[epochs[column].notna(), "trial_id"])
    gaps = set(epochs.loc[epochs[column].isna(), "trial_id"])
    status = dict(zip(trials["trial_id"], trials["status"], strict=True))
    absent = [t for t in trials["trial_id"] if t not in finite]
    partial = [t for t in trials["trial_id"] if t in finite and t in gaps]
    return "".join(f" {what}: " + ", ".join(f"{t} ({status[t]})" for t in ids) + "."
                   for what, ids in (("Not drawn (no finite epochs)", absent),
                                     ("NaN/inf epochs left out", partial)) if ids)


def chart_axes(results: SweepResults) -> list[Axis]:
    """The varied axes, or the single pseudo-axis `configuration` when nothing was varied."""
    return results.axes or [Axis("config", results.configs)]


def in_config_order(frame: pd.DataFrame, configs: list[str], then: str) -> pd.DataFrame:
    rank = frame["config"].map({c: i for i, c in enumerate(configs)})
    return frame.assign(_rank=rank).sort_values(["_rank", then]).drop(columns="_rank")

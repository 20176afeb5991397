"""The page's section on a multi-objective search: its trials against two objectives, the
Pareto front drawn through its members, and the member chosen for export."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fmnist_ray.config import OBJECTIVES
from fmnist_ray.report.charts.common import HEIGHT, WIDTH, Section
from fmnist_ray.report.front import Front, front_line

TITLES = {"val_accuracy": "best validation accuracy", "val_loss": "best validation loss",
          "seconds": "seconds per trial (training and evaluation)", "params": "parameters"}


def front_chart(front: Front, metric: str) -> alt.LayerChart | None:
    """The metric against the first other objective: every completed trial, the front as a
    step line through its members, the chosen member ringed, the limit as a rule."""
    other = next(o for o in front.objectives if o != metric)
    x_column, y_column = OBJECTIVES[other], OBJECTIVES[metric]
    frame = front.trials.assign(
        front=front.trials["on_front"].map({True: "on the front", False: "dominated"}))
    frame = frame[["trial_id", "config", x_column, y_column, "test_accuracy", "front"]]
    if frame.empty:
        return None
    log = frame[x_column].min() > 0 and frame[x_column].max() / frame[x_column].min() >= 10
    x = alt.X(f"{x_column}:Q", title=TITLES[other],
              scale=alt.Scale(type="log") if log else alt.Scale(zero=False, padding=12))
    y = alt.Y(f"{y_column}:Q", title=TITLES[metric], scale=alt.Scale(zero=False, padding=12))
    points = alt.Chart(frame).mark_point(filled=True, size=90).encode(
        x=x, y=y, color=alt.Color("front:N", title="", legend=alt.Legend(orient="bottom"),
                                  scale=alt.Scale(domain=["on the front", "dominated"],
                                                  range=["#d62728", "#9e9e9e"])),
        tooltip=["trial_id:N", "config:N", alt.Tooltip(f"{x_column}:Q", format=",.1f"),
                 alt.Tooltip(f"{y_column}:Q", format=".4f"),
                 alt.Tooltip("test_accuracy:Q", format=".4f")])
    members = frame[frame["front"] == "on the front"].sort_values(x_column)
    line = alt.Chart(members).mark_line(interpolate="step-after", color="#d62728",
                                        opacity=0.6).encode(x=x, y=y)
    layers = [line, points]
    if front.chosen is not None:
        ring = pd.DataFrame([{x_column: front.chosen[x_column], y_column: front.chosen[y_column],
                              "trial_id": front.chosen["trial_id"]}])
        layers.append(alt.Chart(ring).mark_point(shape="circle", size=400, strokeWidth=2,
                                                 color="black").encode(x=x, y=y))
        layers.append(alt.Chart(ring).mark_text(align="right", dx=-14, dy=-10).encode(
            x=x, y=y, text=alt.value("chosen")))
    limit = front.limits.get(other)
    if limit is not None:
        rule = pd.DataFrame([{x_column: limit}])
        layers.append(alt.Chart(rule).mark_rule(strokeDash=[4, 4], color="#555").encode(x=x))
    return alt.layer(*layers).properties(
        width=WIDTH + 120, height=HEIGHT + 40,
        title=f"{metric} against {other}: the Pareto front")


def front_section(front: Front | None, metric: str) -> Section:
    """The front in a chart and in words; empty for a sweep of one metric."""
    if front is None:
        return Section("Pareto front")
    members = front.members
    aims = " and ".join(f"{o} ({m})" for o, m in front.objectives.items())
    notes = [f"The search optimised {aims} together. {len(members)} of the "
             f"{len(front.trials)} completed trials are on the Pareto front: no other trial is "
             f"at least as good on every objective and better on one. The model chosen for "
             f"`show` and `export` is {front.rule}"
             + (f": trial {front.chosen['trial_id']}." if front.chosen is not None
                else "; no member is within those limits, so none is chosen."),
             "Seconds are as measured in this sweep, on its machine, with its trials running "
             "side by side: compare them within this sweep only."
             if "seconds" in front.objectives else ""]
    section = Section("Pareto front", [n for n in notes if n])
    chart = front_chart(front, metric)
    if chart is not None:
        section.charts.append((chart, "Red: the front (the step line joins its members); grey: "
                                      "dominated trials; ringed: the chosen member; dashed: its "
                                      "limit (choose_within)."))
    section.notes.append("Members: " + "; ".join(front_line(front, m)
                                                 for _, m in members.iterrows()) + ".")
    return section

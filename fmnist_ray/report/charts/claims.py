"""The study index's chart: each claim's deciding figure with its 95% interval, against its
margin, one row per claim and one panel per unit (accuracy points, loss)."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from fmnist_ray.report.charts.common import CLAIM_COLORS, WIDTH, claim_class

ROW = 34  # pixels per claim row
LABELS = 330  # pixels for the claim texts left of each panel, the same in every panel


def claim_rows(verdicts: list[dict]) -> pd.DataFrame:
    """One row per claim the index can draw (its `shown` figure has a finite interval)."""
    rows = []
    for v in verdicts:
        shown = v.get("shown")
        if not shown or not all(math.isfinite(x) for x in shown["interval"]):
            continue
        low, high = shown["interval"]
        margin = shown["margin"] if math.isfinite(shown["margin"]) else math.nan
        rows.append({"claim": v["claim"], "verdict": v["verdict"],
                     "class": claim_class(v["verdict"]), "what": shown["what"],
                     "unit": shown["unit"], "estimate": shown["estimate"], "low": low,
                     "high": high, "margin_low": -margin, "margin_high": margin,
                     "margin": margin, "reference": shown["reference"]})
    return pd.DataFrame(rows)


def _panel(rows: pd.DataFrame, order: list[str], color: alt.Color) -> alt.LayerChart:
    unit = rows["unit"].iloc[0]
    points = unit.endswith("points")
    title = (f"difference in {unit} (0: no difference, or the study's figure)" if points
             else "difference in loss (0: no gap left, or the study's figure)")
    y = alt.Y("claim:N", sort=order, title=None,
              axis=alt.Axis(labelLimit=LABELS, minExtent=LABELS, labelFontSize=12))
    fmt = ".2f" if points else ".3f"
    tooltip = [alt.Tooltip("claim:N"), alt.Tooltip("verdict:N"),
               alt.Tooltip("what:N", title="drawn"),
               alt.Tooltip("estimate:Q", format=fmt, title=f"estimate ({unit})"),
               alt.Tooltip("low:Q", format=fmt, title="95% interval from"),
               alt.Tooltip("high:Q", format=fmt, title="95% interval to"),
               alt.Tooltip("margin:Q", format=fmt, title="margin (±)")]
    scale = alt.Scale(zero=True, nice=True)
    x = {f: alt.X(f"{f}:Q", title=title, scale=scale) for f in ("estimate", "low", "margin_low",
                                                               "zero")}
    base = alt.Chart(rows)
    band = base.transform_filter("isValid(datum.margin)").mark_bar(
        color="#2ca02c", opacity=0.14, height={"band": 0.7}).encode(
        y=y, x=x["margin_low"], x2="margin_high:Q", tooltip=tooltip)
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(
        color="#555", strokeDash=[4, 3]).encode(x=x["zero"])
    interval = base.mark_rule(strokeWidth=3).encode(y=y, x=x["low"], x2="high:Q", color=color,
                                                    tooltip=tooltip)
    point = base.mark_point(filled=True, size=110, opacity=1).encode(
        y=y, x=x["estimate"], color=color, tooltip=tooltip)
    return alt.layer(band, zero, interval, point).properties(
        width=WIDTH, height=ROW * len(rows), title=unit)


def claims_chart(verdicts: list[dict]) -> tuple[alt.TopLevelMixin, str] | None:
    """The chart and its caption; None when no claim has an interval to draw."""
    rows = claim_rows(verdicts)
    if rows.empty:
        return None
    order = [v["claim"] for v in verdicts]
    drawn = [c for c in CLAIM_COLORS if c in set(rows["class"])]
    color = alt.Color("class:N", title="verdict", scale=alt.Scale(
        domain=drawn, range=[CLAIM_COLORS[c] for c in drawn]))
    units = list(dict.fromkeys(rows["unit"]))  # accuracy first, as the claims come
    panels = [_panel(rows[rows["unit"] == u], order, color) for u in units]
    chart = (alt.vconcat(*panels, spacing=22).resolve_scale(color="shared", x="independent")
             .properties(title="Each claim: the figure its verdict turns on, with its 95% "
                               "interval"))
    left = [v["claim"] for v in verdicts if v["claim"] not in set(rows["claim"])]
    caption = ("Dot: the estimate; bar: its 95% interval; green band: ± the margin around no "
               "difference (for a claim about the study's own figure, around that figure). "
               "A claim resting on several comparisons shows the one that decides it (hover "
               "for which): the weakest benefit of a reproduced claim, the one that "
               "contradicts, or the one an undecided claim needs most seeds for; a claim that "
               "a gap closes shows the gap left.")
    if left:
        caption += (" Not drawn (not testable here, or no interval): "
                    + "; ".join(c.rstrip(".") for c in left) + ".")
    return chart, caption

"""The report's charts, read from their Vega-Lite specs: what each draws, its legends, colours."""

from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest

from fmnist_ray.report import build_report, load_results
from fmnist_ray.report.charts.claims import claims_chart
from fmnist_ray.report.charts.common import CLAIM_COLORS, ORDINAL_COLORS, ordinal_colors
from fmnist_ray.report.charts.overfitting import epoch_markers
from fmnist_ray.report.findings import sweep_findings
from fmnist_ray.report.verdicts import study_verdicts

from .test_findings import grid, overfitting_history
from .test_report import page_specs


def layers_of(spec: dict, mark: str) -> list[dict]:
    """Every layer of a vconcat-of-layers spec drawn with `mark`."""
    found = []
    for panel in spec["vconcat"]:
        for layer in panel["layer"]:
            kind = layer["mark"] if isinstance(layer["mark"], str) else layer["mark"]["type"]
            if kind == mark:
                found.append(layer)
    return found


def rows_of(spec: dict, layer: dict) -> list[dict]:
    return spec["datasets"][layer["data"]["name"]]


def batch_verdicts(tmp_path) -> list[dict]:
    """The study's claims judged on a batch grid only: the batch claims are decided (one
    contradicted, one reproduced), the architecture claims not testable."""
    effects = {16: 0.870, 32: 0.880, 64: 0.881, 128: 0.8805, 512: 0.865}
    histories = {size: (lambda seed, s=size: overfitting_history(s not in (32, 64), seed))
                 for size in effects}
    loaded = load_results(grid(tmp_path / "b", effects, seeds=4, histories=histories))
    return study_verdicts([loaded], [sweep_findings(loaded)])


def test_the_index_chart_draws_each_testable_claim_against_its_margin(tmp_path):
    verdicts = batch_verdicts(tmp_path)
    testable = {v["claim"]: v for v in verdicts if v["verdict"] != "not testable"}
    assert set(testable) == {"Batch size 32-64 is best.",
                             "Batch size 32-64 cures overfitting."}
    chart, caption = claims_chart(verdicts)
    spec = chart.to_dict()
    # one panel per unit: accuracy points for "is best", loss for the gap left
    assert [p["title"] for p in spec["vconcat"]] == ["test accuracy, points", "loss"]
    points = [row for layer in layers_of(spec, "point") for row in rows_of(spec, layer)]
    assert sorted(r["claim"] for r in points) == sorted(testable)  # one mark per claim
    for row in points:
        shown = testable[row["claim"]]["shown"]
        assert row["verdict"] == testable[row["claim"]]["verdict"]
        assert row["low"] <= row["estimate"] <= row["high"]
        assert [row["low"], row["high"]] == shown["interval"]
        assert row["margin_low"] == -shown["margin"] < 0 < row["margin_high"] == shown["margin"]
    best = next(r for r in points if r["claim"] == "Batch size 32-64 is best.")
    assert best["unit"] == "test accuracy, points" and best["margin"] == 0.5
    assert best["what"] == "32 minus 128"  # the comparison that contradicts it
    gap = next(r for r in points if r["claim"] == "Batch size 32-64 cures overfitting.")
    assert gap["what"] == "the gap left" and gap["margin"] == 0.02
    # each row has its interval bar and its margin band, on the same rows as its dot
    for kind, x, x2 in (("rule", "low", "high"), ("bar", "margin_low", "margin_high")):
        drawn = [layer for layer in layers_of(spec, kind) if layer["encoding"].get("y")]
        assert len(drawn) == 2
        for layer in drawn:
            assert layer["encoding"]["x"]["field"] == x and layer["encoding"]["x2"]["field"] == x2
            assert layer["encoding"]["y"]["field"] == "claim"
    # the legend lists the verdicts drawn, in the index's colours; the tooltip names the verdict
    scale = layers_of(spec, "point")[0]["encoding"]["color"]["scale"]
    assert scale["domain"] == ["reproduced", "contradicted"]
    assert scale["range"] == [CLAIM_COLORS["reproduced"], CLAIM_COLORS["contradicted"]]
    tooltip = layers_of(spec, "point")[0]["encoding"]["tooltip"]
    assert {"field": "verdict", "type": "nominal"} in tooltip
    # not-testable claims are named under the chart
    assert "Not drawn (not testable here, or no interval): Dropout cures overfitting; " in caption
    for v in verdicts:
        assert (v["claim"].rstrip(".") in caption) == (v["claim"] not in testable)


def test_no_testable_claim_draws_no_chart():
    assert claims_chart([{"claim": "A CNN beats an MLP.", "verdict": "not testable",
                          "shown": None}]) is None


def lab(color: str) -> tuple[float, float, float]:
    """CIELAB (D65) of a #rrggbb colour."""
    srgb = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92 for c in srgb]
    xyz = ((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047,
           0.2126 * r + 0.7152 * g + 0.0722 * b,
           (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883)
    fx, fy, fz = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def config_scales(spec) -> list[dict]:
    """Every colour scale keyed on the configuration, anywhere in a spec."""
    if isinstance(spec, list):
        return [s for item in spec for s in config_scales(item)]
    if not isinstance(spec, dict):
        return []
    color = spec.get("color")
    own = [color["scale"]] if isinstance(color, dict) and color.get("field") == "config" else []
    return own + [s for value in spec.values() for s in config_scales(value)]


@pytest.mark.parametrize("count", range(2, len(ORDINAL_COLORS) + 1))
def test_neighbouring_ordinal_colours_are_clearly_apart(count):
    colors = ordinal_colors(count)
    assert len(set(colors)) == count and colors[0] == ORDINAL_COLORS[0]
    for a, b in itertools.pairwise(colors):
        assert math.dist(lab(a), lab(b)) >= 30, (a, b)  # CIELAB ΔE: about 2 is just visible


def test_curves_over_an_ordered_setting_step_through_the_ordinal_colours(tmp_path):
    sizes = [16, 32, 64, 128, 256, 512]
    uri = grid(tmp_path / "b", dict.fromkeys(sizes, 0.88))
    page = build_report([uri], tmp_path / "b.html").read_text()
    scales = config_scales(page_specs(page))
    assert scales  # the learning curves and the gap over epochs
    for scale in scales:
        assert scale == {"domain": [str(s) for s in sizes], "range": ordinal_colors(6)}


def test_epoch_markers_sit_on_their_trials_rows_and_the_legend_lists_what_is_drawn():
    frame = pd.DataFrame({"trial": ["a · 16", "b · 32"], "status": ["completed"] * 2,
                          "best_epoch": [3.0, 5.0], "turn_epoch": [math.nan, math.nan],
                          "last_epoch": [8.0, 5.0]})
    spec = epoch_markers(frame).to_dict()
    span, marks = spec["layer"]
    assert "yOffset" not in marks["encoding"]  # on the row's centre, where its span is drawn
    assert marks["encoding"]["y"] == span["encoding"]["y"]
    assert marks["encoding"]["y"]["sort"] == ["a · 16", "b · 32"]
    drawn = ["best validation epoch (weights tested)", "last epoch trained"]  # no turn epoch
    for channel in ("shape", "color"):
        assert marks["encoding"][channel]["scale"]["domain"] == drawn
    sizes = {row["marker"]: row["px"] for row in spec["datasets"][marks["data"]["name"]]}
    assert marks["encoding"]["size"] == {"field": "px", "scale": None, "type": "quantitative"}
    assert sizes["last epoch trained"] > sizes["best validation epoch (weights tested)"]
    assert marks["encoding"]["order"]["field"] == "z"  # the larger square drawn underneath

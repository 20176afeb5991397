"""One sweep's self-contained HTML page, with the Vega runtime inlined once.

Each chart is embedded in its own element; the page needs no network to render.
"""

from __future__ import annotations

import functools
import html
import json
import re
from datetime import datetime, timezone

import altair as alt
import pandas as pd

from fmnist_ray.report.charts.common import STATUS_COLORS, STATUSES
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.sections import sweep_sections

EMBED_OPTIONS = {"renderer": "svg",
                 "actions": {"export": True, "source": False, "compiled": False, "editor": False}}
STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0 auto; max-width: 1360px; padding: 24px 32px 64px; }
h1 { margin: 0 0 4px; font-size: 28px; } h2 { margin: 36px 0 8px; border-bottom: 1px solid #ddd;
     padding-bottom: 4px; } .meta { color: #666; font-size: 13px; margin: 0; }
nav { font-size: 13px; margin: 10px 0 0; } nav a { margin-right: 14px; color: #1f5fa8; }
.summary { background: #f6f8fb; border: 1px solid #dde3ec; border-radius: 6px;
           padding: 10px 24px; } .summary li { margin: 4px 0; }
.missing { background: #fff6e5; border: 1px solid #f0d199; border-radius: 6px;
           padding: 8px 24px; }
.charts { display: flex; flex-wrap: wrap; gap: 18px 28px; }
figure { margin: 8px 0; } figcaption { color: #555; font-size: 13px; max-width: 860px; }
.table { overflow-x: auto; } table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 9px; border-bottom: 1px solid #e4e4e4; text-align: right;
         white-space: nowrap; } th { background: #f2f2f2; position: sticky; top: 0; }
td:first-child, th:first-child, td:last-child, th:last-child { text-align: left; }
tr.best td { background: #eef6e9; }
table.index td, table.index th { white-space: normal; text-align: left; vertical-align: top; }
table.index td.num { text-align: right; white-space: nowrap; }
.status { padding: 1px 7px; border-radius: 9px; color: #fff; font-size: 12px; }
.error { color: #a33; white-space: normal; display: inline-block; max-width: 420px;
         text-align: left; }
"""
STATUS_STYLE = "".join(f".status.{s} {{ background: {c}; }}\n"
                       for s, c in zip(STATUSES, STATUS_COLORS, strict=True))
# Written into the page before the Vega runtime: it records script errors and Vega's console
# warnings in #render-problems, and each chart that renders adds a `.chart-rendered` marker to
# #render-status, so a headless browser's DOM dump shows whether every chart drew.
CAPTURE_JS = """
(function () {
  function record(kind, parts) {
    var item = document.createElement("li");
    item.textContent = kind + ": " + Array.prototype.map.call(parts, function (p) {
      return (p && p.stack) || String(p); }).join(" ");
    document.getElementById("render-problems").appendChild(item);
  }
  ["error", "warn"].forEach(function (kind) {
    var original = console[kind];
    console[kind] = function () { record(kind, arguments); original.apply(console, arguments); };
  });
  window.addEventListener("error", function (e) { record("error", [e.message]); });
  window.addEventListener("unhandledrejection", function (e) { record("error", [e.reason]); });
})();
"""
EMBED_JS = """
(function () {
  var specs = JSON.parse(document.getElementById("chart-specs").textContent);
  var options = JSON.parse(document.getElementById("embed-options").textContent);
  var status = document.getElementById("render-status");
  Promise.all(specs.map(function (spec, i) {
    return vegaEmbed("#chart-" + i, spec, options).then(function () {
      var mark = document.createElement("span");
      mark.className = "chart-rendered";
      mark.setAttribute("data-chart", String(i));
      status.appendChild(mark);
    }).catch(function (err) { console.error("chart " + i + ": " + err); });
  })).then(function () { status.setAttribute("data-done", "true"); });
})();
"""


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script, for the Vega-Lite version Altair writes."""
    import vl_convert

    version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # "v6.4.1" -> "v6_4"
    return vl_convert.javascript_bundle(vl_version=version)


def _script_json(value) -> str:
    """JSON safe inside <script>: strict (no NaN/Infinity) and with `</` escaped."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


# Marks the files `report` writes: it overwrites those, and refuses to overwrite anything else.
GENERATOR = "fmnist-ray report"


def html_head(title: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="generator" content="{GENERATOR}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}{STATUS_STYLE}</style>\n"
            f"</head>\n")


def figure(chart: alt.TopLevelMixin, caption: str, specs: list[dict]) -> str:
    """A chart's <figure>, its spec appended to `specs` (the page's chart-N numbering)."""
    with alt.data_transformers.disable_max_rows():
        specs.append(chart.to_dict())
    text = f"<figcaption>{html.escape(caption.strip())}</figcaption>" if caption else ""
    return f'<figure><div class="chart" id="chart-{len(specs) - 1}"></div>{text}</figure>'


def render_status(expected: int) -> str:
    """The render-status marker and the console capture, first thing in the <body>."""
    return (f'<div id="render-status" data-expected="{expected}" data-done="false" hidden>'
            f'</div>\n<ul id="render-problems" hidden></ul>\n<script>{CAPTURE_JS}</script>\n')


def chart_runtime(specs: list[dict]) -> str:
    """The charts' specs, the inlined Vega runtime and the script that embeds them, last
    thing in the <body>."""
    return ("<noscript>The charts need JavaScript.</noscript>\n"
            f'<script type="application/json" id="chart-specs">{_script_json(specs)}</script>\n'
            f'<script type="application/json" id="embed-options">{_script_json(EMBED_OPTIONS)}'
            f"</script>\n<script>{vega_bundle()}</script>\n<script>{EMBED_JS}</script>\n")


def render_page(results: SweepResults, summary: list[str], found: SweepFindings,
                best: pd.Series | None, class_names, index: str | None = None) -> str:
    """One sweep's self-contained page: header, summary, what is missing, charts, trials."""
    sections = sweep_sections(results, found, best, class_names)
    specs, parts = [], []
    for section in sections:
        anchor = re.sub(r"[^a-z0-9]+", "-", section.title.lower()).strip("-")
        parts.append(f'<h2 id="{anchor}">{html.escape(section.title)}</h2>')
        parts += [f"<p>{html.escape(n)}</p>" for n in section.notes]
        figures = []
        for chart, caption in section.charts:
            figures.append(figure(chart, caption, specs))
        if figures:
            parts.append(f'<div class="charts">{"".join(figures)}</div>')
        parts.append(section.html)
    spec = results.spec
    about = [f"results: {results.uri}"]
    if spec is not None:
        about += [f"search: {spec.search}", f"scheduler: {spec.scheduler.type}",
                  f"metric: {spec.metric}", f"seeds: {spec.seeds}"]
    about.append("written " + datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    nav = "".join(f'<a href="#{re.sub(r"[^a-z0-9]+", "-", s.title.lower()).strip("-")}">'
                  f"{html.escape(s.title)}</a>" for s in sections)
    if index:
        nav = f'<a href="{html.escape(index)}">← all sweeps</a>' + nav
    missing = ("".join(f"<li>{html.escape(m)}</li>" for m in results.missing)
               or "<li>Nothing: every planned trial is exported with its epochs.</li>")
    return (html_head(f"Sweep {results.name}") + "<body>\n" + render_status(len(specs))
            + f"<h1>Sweep {html.escape(results.name)}</h1>\n"
            + (f"<p>{html.escape(spec.description)}</p>\n" if spec and spec.description else "")
            + f'<p class="meta">{html.escape(" · ".join(about))}</p>\n<nav>{nav}</nav>\n'
            '<h2 id="summary">Summary</h2>\n<ul class="summary">'
            + "".join(f"<li>{html.escape(line)}</li>" for line in summary) + "</ul>\n"
            f'<h3>What is missing</h3>\n<ul class="missing">{missing}</ul>\n'
            + "\n".join(parts) + "\n" + chart_runtime(specs) + "</body>\n</html>\n")

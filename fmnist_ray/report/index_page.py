"""The study's index page: the verdict on each claim of the original study, then one row per
sweep with its finding, linking its page."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

from fmnist_ray.report.analysis import status_counts
from fmnist_ray.report.charts.claims import claims_chart
from fmnist_ray.report.charts.common import CLAIM_COLORS, claim_class
from fmnist_ray.report.findings import SweepFindings
from fmnist_ray.report.formatting import points
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.page import chart_runtime, figure, html_head, render_status
from fmnist_ray.report.verdicts import headline

VERDICT_STYLE = """
.verdict { padding: 1px 8px; border-radius: 9px; color: #fff; font-size: 12px;
           white-space: nowrap; }
""" + "".join(f".verdict.{c} {{ background: {color}; }}\n" for c, color in CLAIM_COLORS.items())


def _finding(found: SweepFindings) -> str:
    """The sweep's one-line finding: its first axis, else its last common rung."""
    if found.axes:
        return found.axes[0].sentence
    if found.rungs and found.rungs[-1].sentences:
        return found.rungs[-1].sentences[0]
    return "Nothing compared yet."


def index_rows(sweeps: list[SweepResults], found: list[SweepFindings],
               pages: list[Path]) -> list[dict]:
    """Each sweep's headline for the index, with the file name of its page."""
    rows = []
    for sweep, sweep_found, page in zip(sweeps, found, pages, strict=True):
        chosen, noise = sweep_found.chosen, sweep_found.noise
        n = chosen.trials if chosen else 2
        rows.append({
            "page": page.name, "name": sweep.name, "uri": sweep.uri,
            "description": sweep.spec.description if sweep.spec else "",
            "statuses": status_counts(sweep.trials),
            "chosen": chosen.label if chosen else "none yet",
            "test": (f"{chosen.test_accuracy:.4f} ({chosen.interval[0]:.4f}-"
                     f"{chosen.interval[1]:.4f})" if chosen else ""),
            "resolution": (f"{points(sweep_found.detectable())} points ({n} seeds)"
                           if noise.known and not sweep_found.search else "no seed replicates"),
            "finding": _finding(sweep_found), "missing": len(sweep.missing)})
    return rows


def render_index(rows: list[dict], verdicts: list[dict], reference: dict,
                 found: list[SweepFindings] | None = None) -> str:
    """The index page: the study's verdicts, the headline result, and a row per sweep."""
    pages = {r["name"]: r["page"] for r in rows}
    claims = []
    for v in verdicts:
        sweeps = [s.strip() for s in (v["sweep"] or "").replace(" and ", ",").split(",")
                  if s.strip()]
        links = ", ".join(f'<a href="{html.escape(pages[s])}">{html.escape(s)}</a>'
                          if s in pages else html.escape(s) for s in sweeps)
        css = claim_class(v["verdict"])
        claims.append(f"<tr><td>{html.escape(v['claim'])}</td>"
                      f'<td><span class="verdict {css}">{html.escape(v["verdict"])}</span></td>'
                      f"<td>{html.escape(v['evidence'])}</td><td>{links}</td></tr>")
    specs: list[dict] = []
    drawn = claims_chart(verdicts)
    chart = f'<div class="charts">{figure(*drawn, specs)}</div>\n' if drawn else ""
    top = headline(found) if found else None
    best = f"<p><b>{html.escape(top['text'])}</b></p>\n" if top else ""
    head = ("sweep", "description", "trials", "chosen on validation",
            "its test accuracy (95% interval)", "detectable at 80% power", "finding",
            "missing")
    body = []
    for r in rows:
        cells = [f'<a href="{html.escape(r["page"])}">{html.escape(r["name"])}</a><br>'
                 f'<span class="meta">{html.escape(r["uri"])}</span>',
                 html.escape(r["description"]), html.escape(r["statuses"]),
                 html.escape(r["chosen"]), html.escape(r["test"]),
                 html.escape(r["resolution"]), html.escape(r["finding"]),
                 str(r["missing"]) if r["missing"] else "nothing"]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (html_head("Fashion-MNIST study").replace("</style>", VERDICT_STYLE + "</style>")
            + "<body>\n" + render_status(len(specs))
            + "<h1>Fashion-MNIST study: what the sweeps show</h1>\n"
            f'<p class="meta">{len(rows)} sweeps · the original study: '
            f'{html.escape(reference["model"])} best at test accuracy '
            f'{reference["test_accuracy"]}, test loss {reference["test_loss"]} · every choice is '
            f"made on validation metrics; test metrics are reported for what was chosen · "
            f"written {written}</p>\n{best}"
            '<h2 id="verdicts">The original study, claim by claim</h2>\n'
            '<div class="table"><table class="index"><thead><tr><th>claim</th><th>verdict</th>'
            "<th>evidence (95%, seed noise from the sweep)</th><th>sweep</th></tr></thead>"
            f'<tbody>{"".join(claims)}</tbody></table></div>\n{chart}'
            '<h2 id="sweeps">The sweeps</h2>\n'
            f'<div class="table"><table class="index"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>\n{chart_runtime(specs)}'
            "</body>\n</html>\n")

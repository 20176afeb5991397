"""The index page of a multi-sweep report: one row per sweep, linking its page."""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from fmnist_ray.report.analysis import config_name, config_table, status_counts
from fmnist_ray.report.formatting import format_number
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.page import html_head


def render_index(rows: list[dict], reference: dict) -> str:
    """The index page of a multi-sweep report: one row per sweep, linking its page."""
    head = ("sweep", "description", "trials", "best configuration", "mean test acc",
            "vs reference", "gaps")
    body = []
    for r in rows:
        acc = r["test_accuracy"]
        delta = "" if pd.isna(acc) else f"{(acc - reference['test_accuracy']) * 100:+.1f} pts"
        cells = [f'<a href="{html.escape(r["page"])}">{html.escape(r["name"])}</a><br>'
                 f'<span class="meta">{html.escape(r["uri"])}</span>',
                 html.escape(r["description"]), html.escape(r["statuses"]),
                 html.escape(r["best"])]
        numbers = [format_number(acc, ".4f"), delta, str(r["missing"])]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                    + "".join(f'<td class="num">{n}</td>' for n in numbers) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (html_head("Fashion-MNIST sweeps") + "<body>\n<h1>Fashion-MNIST sweeps</h1>\n"
            f'<p class="meta">{len(rows)} sweeps · reference: {html.escape(reference["model"])},'
            f' test accuracy {reference["test_accuracy"]}, test loss {reference["test_loss"]} · '
            f"written {written}</p>\n"
            f'<div class="table"><table class="index"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>\n</body>\n</html>\n')


def index_rows(sweeps: list[SweepResults], pages: list[Path]) -> list[dict]:
    """Each sweep's headline numbers for the index, with the file name of its page."""
    rows = []
    for sweep, page in zip(sweeps, pages, strict=True):
        configs = config_table(sweep).dropna(subset=["metric", "test_accuracy"])
        best = None
        if len(configs):
            best = configs["metric"].idxmax() if sweep.maximize else configs["metric"].idxmin()
        rows.append({"page": page.name, "name": sweep.name, "uri": sweep.uri,
                     "description": sweep.spec.description if sweep.spec else "",
                     "statuses": status_counts(sweep.trials),
                     "best": config_name(sweep, best) if best is not None else "none yet",
                     "test_accuracy": configs.loc[best, "test_accuracy"] if best else math.nan,
                     "missing": len(sweep.missing)})
    return rows

"""The study report: one self-contained, offline HTML page per sweep, written from its results.

Ray-free: it reads the tidy export (`trials.parquet`, `epochs.parquet`, `spec.yaml`) from a
local directory or a cloud URI, works on partial results (and says what is missing), and
inlines Vega, Vega-Lite and Vega-Embed once per page so it renders with no network.

Modules: `load` (read results, note what is missing), `axes` (varied settings), `analysis`
(the selection rule, shared numbers), `stats` (SciPy: noise, intervals, tests), `compare`
(grid axes against the choice), `rungs` (searches at equal length), `overfit` (gaps, matched
pairs), `findings` (all of it, once per sweep; findings.json), `verdicts` (the original study,
claim by claim), `summary` (the sentences), `charts` (one module per topic), `sections` (which
charts a page gets), `page` and `index_page` (HTML), `build` (write the files).
"""

from fmnist_ray.report.build import build_report
from fmnist_ray.report.findings import SweepFindings, sweep_findings
from fmnist_ray.report.load import SweepResults, load_results
from fmnist_ray.report.summary import REFERENCE, summarize

__all__ = ["REFERENCE", "SweepFindings", "SweepResults", "build_report", "load_results",
           "summarize", "sweep_findings"]

"""Write the report files: one page per sweep, and an index page when there are several."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fmnist_ray.errors import UserError
from fmnist_ray.report.analysis import best_trial
from fmnist_ray.report.findings import SweepFindings, clean, sweep_findings
from fmnist_ray.report.index_page import index_rows, render_index
from fmnist_ray.report.load import SweepResults, load_results
from fmnist_ray.report.page import GENERATOR, render_page
from fmnist_ray.report.summary import REFERENCE, summarize
from fmnist_ray.report.verdicts import study_verdicts
from fmnist_ray.results.storage import results_location
from fmnist_ray.training.data import CLASS_NAMES


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot write the report ({exc.strerror}); pass --output "
                        f"somewhere writable") from None


def findings_path(page: Path) -> Path:
    """Where a page's machine-readable findings go: `<page stem>.findings.json` beside it."""
    return page.with_name(f"{page.stem}.findings.json")


def _write_findings(page: Path, payload: dict) -> None:
    payload = clean({"generator": GENERATOR, **payload})
    _write(findings_path(page), json.dumps(payload, indent=1, allow_nan=False) + "\n")


def _ours(path: Path) -> bool:
    """Whether an existing file is one `report` wrote (its generator mark near the top)."""
    try:
        with path.open("rb") as handle:
            return GENERATOR.encode() in handle.read(4096)
    except OSError:
        return False


def check_outputs(pages: list[Path]) -> None:
    """Refuse, before anything is written, to overwrite a file `report` did not write."""
    for page in pages:
        for path in (page, findings_path(page)):
            if path.exists() and (path.is_dir() or not _ours(path)):
                raise UserError(f"{path}: exists and is not a report this command wrote; "
                                f"delete it or pass another --output (nothing was written)")


def render_sweep(results: SweepResults, index: str | None = None,
                 found: SweepFindings | None = None) -> str:
    """The HTML text of one sweep's page; `index` links back to an index page by file name."""
    found = found or sweep_findings(results)
    return render_page(results, summarize(results, found), found, best_trial(results),
                       CLASS_NAMES, index=index)


def build_report(result_dirs: list[str], output: Path) -> Path:
    """Write the study report for one or more sweep results directories; return its path.

    One directory: a single self-contained page at `output`. Several: one page per sweep,
    named `<output stem>-<results folder name>.html` beside `output` (with `-2`, `-3`, ... for
    folders of the same name), and an index page at `output` linking them all with each
    sweep's headline numbers. Every directory is read before anything is written, so a bad
    path fails fast with a UserError.
    """
    if not result_dirs:
        raise UserError("no results directory given; pass one or more, e.g. results/smoke")
    output = Path(output)
    if output.is_dir():
        raise UserError(f"{output}: is a directory; pass an .html file path such as "
                        f"{output / 'report.html'}")
    if output.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"{output}: not an .html path; pass one such as reports/report.html")
    sweeps = [load_results(str(d)) for d in result_dirs]
    found = [sweep_findings(s) for s in sweeps]
    if len(sweeps) == 1:
        check_outputs([output])
        _write(output, render_sweep(sweeps[0], found=found[0]))
        _write_findings(output, found[0].to_json())
        return output
    pages, used = [], set()
    for sweep in sweeps:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", results_location(sweep.uri)[2])
        name, n = f"{output.stem}-{slug or 'sweep'}", 1
        while (candidate := name if n == 1 else f"{name}-{n}") in used:
            n += 1
        used.add(candidate)
        pages.append(output.with_name(f"{candidate}.html"))
    check_outputs([*pages, output])
    for sweep, page, sweep_found in zip(sweeps, pages, found, strict=True):
        _write(page, render_sweep(sweep, index=output.name, found=sweep_found))
        _write_findings(page, sweep_found.to_json())
    return build_index(sweeps, found, pages, output)


def build_index(sweeps: list[SweepResults], found: list[SweepFindings], pages: list[Path],
                output: Path) -> Path:
    """Write the study's index at `output`: the verdict on each claim of the original study,
    then one row per sweep linking its page (paths relative to it)."""
    verdicts = study_verdicts(sweeps, found)
    rows = index_rows(sweeps, found, pages)
    _write(output, render_index(rows, verdicts, REFERENCE, found))
    _write_findings(output, {"reference": REFERENCE, "verdicts": verdicts,
                             "sweeps": [{**f.to_json(), "page": p.name}
                                        for f, p in zip(found, pages, strict=True)]})
    return output

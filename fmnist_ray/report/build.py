"""Write the report files: one page per sweep, and an index page when there are several."""

from __future__ import annotations

import re
from pathlib import Path

from fmnist_ray.data import CLASS_NAMES
from fmnist_ray.errors import UserError
from fmnist_ray.report.analysis import best_trial, overfitting_by_trial
from fmnist_ray.report.index_page import index_rows, render_index
from fmnist_ray.report.load import SweepResults, load_results
from fmnist_ray.report.page import render_page
from fmnist_ray.report.summary import REFERENCE, summarize


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot write the report ({exc.strerror}); pass --output "
                        f"somewhere writable") from None


def render_sweep(results: SweepResults, index: str | None = None) -> str:
    """The HTML text of one sweep's page; `index` links back to an index page by file name."""
    per_trial = overfitting_by_trial(results)
    return render_page(results, summarize(results), per_trial, best_trial(results),
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
    sweeps = [load_results(str(d)) for d in result_dirs]
    if len(sweeps) == 1:
        _write(output, render_sweep(sweeps[0]))
        return output
    pages, used = [], set()
    for sweep in sweeps:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", sweep.uri.rstrip("/").rsplit("/", 1)[-1])
        name, n = f"{output.stem}-{slug or 'sweep'}", 1
        while (candidate := name if n == 1 else f"{name}-{n}") in used:
            n += 1
        used.add(candidate)
        pages.append(output.with_name(f"{candidate}.html"))
        _write(pages[-1], render_sweep(sweep, index=output.name))
    return build_index(sweeps, pages, output)


def build_index(sweeps: list[SweepResults], pages: list[Path], output: Path) -> Path:
    """Write an index page at `output` linking each sweep's page (paths relative to it)."""
    _write(output, render_index(index_rows(sweeps, pages), REFERENCE))
    return output

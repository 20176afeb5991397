"""`ls`, `show` and `report`: results read back, in the terminal or as HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from fmnist_ray.cli.common import ResultsDir, command, console, user_errors
from fmnist_ray.errors import UserError
from fmnist_ray.sweep.progress import fmt


@command("ls", epilog="Example: fmnist-ray ls results --json")
@user_errors
def list_sweeps(
    storage: Annotated[str, typer.Argument(
        metavar="[STORAGE]", help="Where the sweeps are: a directory or a URI such as s3://...")
    ] = "./results",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """List the sweeps in a storage: trials by status, best trial, when they ran."""
    from fmnist_ray.report.browse import list_sweeps as listing
    from fmnist_ray.results.storage import is_uri

    if not is_uri(storage) and Path(storage).expanduser().is_file():
        raise UserError(f"{storage}: a file, not a folder; pass the folder your sweeps were "
                        f"stored in (their --storage, default ./results)")
    sweeps = listing(storage)
    if as_json:
        print(json.dumps([s.to_dict() for s in sweeps]))
        return
    if not sweeps:
        console.print(f"no sweeps in {storage}; run one with: fmnist-ray sweep sweeps/smoke.yaml "
                      f"--storage {storage}", highlight=False)
        return
    table = Table(title=f"{len(sweeps)} sweep(s) in {storage}", title_justify="left",
                  box=box.SIMPLE)
    for column in ("sweep", "trials", "statuses", "chosen on", "best", "its test acc",
                   "last written"):
        table.add_column(column, no_wrap=True, justify="right" if column in (
            "trials", "best", "its test acc") else "left")
    for s in sweeps:
        statuses = ", ".join(f"{n} {k}" for k, n in s.statuses.items())
        table.add_row(s.name, str(s.trials), statuses, s.metric.removeprefix("best_"),
                      fmt(s.best_value), fmt(s.best_test_accuracy), s.ran_at)
    _print_wide(table)


def _print_wide(table: Table) -> None:
    """A table in full: a terminal wraps it to its width, a pipe or file gets it whole."""
    (console if console.is_terminal else Console(width=200)).print(table)


# Short headers for the trials table of `show`.
HEADERS = {"trial_id": "trial", "epochs_run": "epochs", "best_epoch": "best epoch",
           "best_val_accuracy": "val acc", "best_val_loss": "val loss",
           "test_accuracy": "test acc", "test_loss": "test loss", "seconds": "s"}


@command(epilog=(
    "Example: fmnist-ray show results/learning_rate --sort test_accuracy --top 5"))
@user_errors
def show(
    results_dir: ResultsDir,
    sort: Annotated[str | None, typer.Option(
        help="Sort by this column (default: the validation metric the sweep chose on).")
    ] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Show only the first N trials.")
                   ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show a sweep's trials and the configuration it chose (on validation, never test)."""
    from fmnist_ray.report.browse import show_sweep
    from fmnist_ray.results.storage import results_location

    uri, _, _ = results_location(results_dir)
    view = show_sweep(uri, sort, top)
    if as_json:
        print(json.dumps(view.to_dict()))
        return
    shown = f"{len(view.rows)} of {view.total}" if len(view.rows) < view.total else view.total
    table = Table(title=f"sweep {view.name}: {shown} trials, by {sort or view.metric}",
                  title_justify="left", box=box.SIMPLE)
    for column in view.columns:
        table.add_column(HEADERS.get(column, column), no_wrap=True,
                         justify="left" if column in ("trial_id", "status") else "right")
    for row in view.rows:
        table.add_row(*[_cell(row[c]) for c in view.columns])
    _print_wide(table)
    if view.best is None or view.chosen is None:
        console.print("no trial has learned yet (completed or early stopped)", highlight=False)
        return
    console.print(_chosen_line(view), highlight=False)
    if view.best_folder:
        console.print(f"its checkpoints and logs: {view.best_folder}", highlight=False)


def _chosen_line(view) -> str:
    """The configuration chosen on validation and its best trial; with several seeds, the
    configuration's mean over them and which seed's trial is its best."""
    choice, best, metric = view.chosen, view.best, view.metric
    scores = (f"{metric} {fmt(best[metric])}, test accuracy {fmt(best['test_accuracy'])}")
    head = f"chosen {view.rule or 'on ' + metric.removeprefix('best_')}:"
    if choice["seeds"] < 2:
        settings = ", ".join(f"{k}={v}" for k, v in view.best_settings.items())
        return f"{head} trial {best['trial_id']} ({settings}): {scores}"
    return (f"{head} configuration {choice['config']} (mean over {choice['seeds']} seeds "
            f"{fmt(choice['mean'])}); its best seed: trial {best['trial_id']} "
            f"(seed {choice['seed']}): {scores}")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or value >= 10 else f"{value:.4f}"
    return "" if value is None else str(value)


@command(epilog=(
    "Examples:\nfmnist-ray report results/smoke -o reports/smoke.html\n"
    "fmnist-ray report --all results -o reports/index.html"))
@user_errors
def report(
    results_dirs: Annotated[list[str] | None, typer.Argument(
        metavar="RESULTS_DIR...", help="Sweep results directories (or s3://... URIs).")] = None,
    output: Annotated[Path, typer.Option(
        "-o", "--output", help="The HTML file to write (with several sweeps: the index page).")
    ] = Path("reports/report.html"),
    all_in: Annotated[str | None, typer.Option(
        "--all", metavar="STORAGE", help="Report every sweep found in this storage directory.")
    ] = None,
) -> None:
    """Turn sweep results into one self-contained HTML page (and an index for several), with
    the findings beside each page as JSON."""
    from fmnist_ray.report import build_report
    from fmnist_ray.report.build import findings_path

    dirs = list(results_dirs or [])
    if all_in:
        from fmnist_ray.results.exports import find_sweeps

        dirs += find_sweeps(all_in)
        if not dirs:
            raise UserError(f"{all_in}: no sweep results found (no */trials.parquet); "
                            f"point --all at the --storage directory of your sweeps")
    if not dirs:
        raise UserError("no results given; pass RESULTS_DIR (e.g. results/smoke) or --all DIR")
    page = build_report(dirs, output)
    console.print(f"report written: {page} (findings for scripts: {findings_path(page)})")

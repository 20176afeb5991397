"""What the commands share: the consoles, the option types, the error mapping and the
command registry that `app` reads."""

from __future__ import annotations

import atexit
import functools
import gc
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from fmnist_ray.errors import UserError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
# After a command that imported torch and Ray, Python's last garbage collection at exit walks
# their million objects for ~0.6 s; frozen, they are skipped (results are written and closed
# before exit; only finalizers of objects in reference cycles go unrun). Registered on import,
# before Ray registers its own exit handler, so it runs after it.
atexit.register(gc.freeze)

class ErroredTrials(str, Enum):
    keep = "keep"
    resume = "resume"
    restart = "restart"


Errored = Annotated[ErroredTrials, typer.Option(
    "--errored", help="On resume, errored trials are kept as they are (keep), continued from "
    "their last checkpoint (resume) or run again from scratch (restart).")]
Address = Annotated[str | None, typer.Option(
    help="Ray cluster: http://HEAD:8265 submits through Ray Jobs (remote clusters); auto or "
    "HOST:6379 joins directly (on a cluster node); default: an embedded local Ray on 127.0.0.1.")]
NoWait = Annotated[bool, typer.Option(
    "--no-wait", help="With a Ray Jobs address: submit and return without following the logs.")]
ResultsDir = Annotated[str, typer.Argument(
    metavar="RESULTS_DIR", help="A sweep's results folder, e.g. results/batch_size or s3://...")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No live progress table.")]
NoReuse = Annotated[bool, typer.Option(
    "--no-reuse", help="Train every trial, even one that already ran to its end under the same "
    "storage (by default its stored result is reused).")]
Overrides = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a spec key, e.g. --set trial.epochs=2 (repeatable).")]
DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="FMNIST_DATA",
    help="Directory with the four Fashion-MNIST .gz files (default: installed copy or cache).")]


def user_errors(command):
    """Print a UserError as `error: ...` lines on stderr and exit with code 2, no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            for line in str(exc).splitlines():
                err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False,
                                  soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper



def _flags_take_no_value(params: list) -> list:
    """Typer 0.29 shows a flag's type (`--json <bool>`) as if it took a value; flags get an
    empty metavar, so `--help` shows none."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A command whose `--help` lists flags without a type."""

    def get_params(self, ctx):
        return _flags_take_no_value(super().get_params(ctx))


class Group(TyperGroup):
    """The `fmnist-ray` group, its `--help` listing flags without a type."""

    def get_params(self, ctx):
        return _flags_take_no_value(super().get_params(ctx))


COMMANDS: list[tuple[Callable, dict]] = []


def command(name: str | None = None, **settings):
    """Mark a function as a command of `fmnist-ray`; `app` registers it with `settings`.
    An `epilog` lists examples one per line: `Examples:` and a line for each."""

    def register(function):
        COMMANDS.append((function, {"name": name, "cls": Command, **settings}))
        return function

    return register


def submit_job(address: str, args: list[str], files: dict[str, str], storage: str,
                results_uri: str | None, no_wait: bool) -> None:
    """Run `fmnist-ray ARGS --address auto` as a Ray Job; follow it unless `no_wait`."""
    import sys

    from fmnist_ray.cluster.jobs import check_remote_storage, follow, follow_hint, submit

    check_remote_storage(storage)
    job_id = submit(address, [*args, "--address", "auto"], files)
    console.print(f"submitted Ray Job {job_id} to {address}", highlight=False)
    report_hint = f"\nreport it with: fmnist-ray report {results_uri}" if results_uri else ""
    if no_wait:
        console.print(follow_hint(address, job_id) + report_hint, highlight=False)
        return
    try:
        outcome = follow(address, job_id, lambda text: (sys.stdout.write(text),
                                                       sys.stdout.flush()))
    except KeyboardInterrupt:
        console.print(f"\nstopped following; the job keeps running on the cluster.\n"
                      f"{follow_hint(address, job_id)}", highlight=False)
        raise typer.Exit(130) from None
    console.print(f"Ray Job {job_id} {outcome.status.lower()}" + (
        f" (exit code {outcome.exit_code})" if outcome.exit_code else ""), highlight=False)
    if outcome.status != "SUCCEEDED":
        raise typer.Exit(outcome.exit_code if outcome.exit_code in (1, 2, 130) else 1)

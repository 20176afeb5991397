"""The `fmnist-ray` command line: parses, calls the core, turns a `UserError` into exit code 2."""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import json
import os
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fmnist_ray import __version__
from fmnist_ray.config import TrialConfig
from fmnist_ray.errors import UserError
from fmnist_ray.results.outcomes import ACTIVE
from fmnist_ray.sweep.progress import LogLines, fmt, trials_table
from fmnist_ray.spec.problems import describe_validation_error

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Fashion-MNIST training studies as Ray Tune sweeps, with HTML reports.")
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


EXAMPLES = (
    "Examples:  fmnist-ray sweep sweeps/smoke.yaml  |  fmnist-ray sweep sweeps/batch_size.yaml "
    "--dry-run  |  fmnist-ray report results/smoke -o reports/smoke.html  |  fmnist-ray ls  |  "
    "fmnist-ray show results/smoke  |  fmnist-ray export results/smoke -o model.pt  |  "
    "fmnist-ray predict model.pt shirt.png")


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


def _version(value: bool) -> None:
    if value:
        console.print(f"fmnist-ray {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True, epilog=EXAMPLES)
def main(
    context: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Fashion-MNIST training studies as Ray Tune sweeps, with HTML reports."""
    if context.invoked_subcommand is None:  # `fmnist-ray` alone: the help, not an error
        console.print(context.get_help(), highlight=False)
        raise typer.Exit()


@app.command(epilog=(
    "Example: fmnist-ray data --data-dir ~/fashion-mnist"))
@user_errors
def data(data_dir: DataDir = None) -> None:
    """Find the dataset, verify every file, and say where it is."""
    from fmnist_ray.training.data import load_fashion_mnist

    dataset = load_fashion_mnist(data_dir)
    sizes = dataset.sizes
    console.print(f"Fashion-MNIST found in {dataset.source}: all four files verified "
                  f"(magic numbers, shapes, labels 0-9, checksums)"
                  + (f" when first read, and unchanged since; their verified arrays are in "
                     f"{dataset.verified_copy}." if dataset.verified_copy else "."))
    console.print(f"splits: train {sizes['train']:,} / validation {sizes['val']:,} / "
                  f"test {sizes['test']:,} images of 28x28")


def _trial_config(**values) -> TrialConfig:
    try:
        return TrialConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise UserError("\n".join(describe_validation_error(exc, prefix="--"))) from None


def _epoch_table(history) -> Table:
    table = Table(title="epochs", title_justify="left")
    for column in ("epoch", "train loss", "train acc", "val loss", "val acc", "s", "img/s"):
        table.add_column(column, justify="right")
    for m in history:
        table.add_row(str(m.epoch), f"{m.train_loss:.4f}", f"{m.train_accuracy:.4f}",
                      f"{m.val_loss:.4f}", f"{m.val_accuracy:.4f}", f"{m.epoch_seconds:.1f}",
                      f"{m.images_per_second:,.0f}")
    return table


@app.command(epilog=(
    "Example: fmnist-ray train --model cnn --lr 1e-3 --epochs 5 --save model.pt"))
@user_errors
def train(
    model: Annotated[str, typer.Option(help="mlp, cnn, deep_cnn_bn or resnet.")] = "cnn",
    optimizer: Annotated[str, typer.Option(
        help="sgd, sgd_momentum, nesterov, adam, adamw, rmsprop or adagrad.")] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Images per training step.")] = 64,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 5,
    dropout: Annotated[float | None, typer.Option(help="Dropout probability.")] = None,
    hidden: Annotated[str | None, typer.Option(
        help="MLP hidden sizes, comma-separated, e.g. 512,256.")] = None,
    width: Annotated[int | None, typer.Option(help="Base conv channels of the CNNs.")] = None,
    depth: Annotated[int | None, typer.Option(help="resnet: residual blocks per stage.")] = None,
    schedule: Annotated[str | None, typer.Option(
        help="Learning rate over the run: constant, cosine or onecycle.")] = None,
    warmup_epochs: Annotated[float | None, typer.Option(
        help="Linear warm-up of the learning rate, in epochs.")] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="Label smoothing, 0-1.")] = None,
    ema: Annotated[float | None, typer.Option(
        help="Evaluate an average of the weights with this decay, e.g. 0.999.")] = None,
    augment_crop: Annotated[int | None, typer.Option(
        help="Random-crop augmentation: pad by this many pixels, crop 28x28.")] = None,
    augment_flip: Annotated[bool | None, typer.Option(
        help="Random horizontal flip augmentation.")] = None,
    augment_erasing: Annotated[float | None, typer.Option(
        help="Random-erasing augmentation: chance per image.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="L2 weight decay.")] = None,
    momentum: Annotated[float | None, typer.Option(
        help="Momentum for sgd_momentum / nesterov.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32 or bf16.")] = "auto",
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")
                       ] = False,
    save: Annotated[Path | None, typer.Option(
        "--save", metavar="MODEL.pt",
        help="Save the best-validation weights as TorchScript, with a .json sidecar.")] = None,
) -> None:
    """Train one model without Ray and report its test accuracy."""
    hidden_sizes = None
    if hidden is not None:
        try:
            hidden_sizes = [int(h) for h in hidden.split(",")]
        except ValueError:
            raise UserError(f"--hidden: {hidden!r} is not a comma-separated list of integers; "
                            f"write it as e.g. --hidden 512,256") from None
    config = _trial_config(model=model, optimizer=optimizer, lr=lr, batch_size=batch_size,
                           epochs=epochs, dropout=dropout, hidden_sizes=hidden_sizes, width=width,
                           depth=depth, schedule=schedule, warmup_epochs=warmup_epochs,
                           label_smoothing=label_smoothing, ema=ema, augment_crop=augment_crop,
                           augment_flip=augment_flip, augment_erasing=augment_erasing,
                           weight_decay=weight_decay, momentum=momentum, seed=seed, device=device,
                           precision=precision)
    # Progress goes to stderr, so that with --json stdout stays one JSON object; with --json
    # and no terminal to draw on, there is none.
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.fields[m]}"), TimeRemainingColumn(),
                        TextColumn("left,"), TimeElapsedColumn(),
                        console=err_console, disable=as_json and not err_console.is_terminal)
    finished = []
    began = time.monotonic()
    try:  # Ctrl-C at any point from here on ends with a line saying what was finished
        from fmnist_ray.training.data import load_fashion_mnist
        from fmnist_ray.training.loop import train_trial

        dataset = load_fashion_mnist(data_dir)
        with progress:
            task = progress.add_task(f"{config.model} epoch 1/{config.epochs}", total=None,
                                     m="")

            def on_step(epoch: int, done: int, steps: int, loss: float) -> None:
                progress.update(task, total=steps * config.epochs,
                                completed=(epoch - 1) * steps + done,
                                description=f"{config.model} epoch {epoch}/{config.epochs}",
                                m=f"loss {loss:.4f}" + (f", val acc {finished[-1].val_accuracy:.4f}"
                                                        if finished else ""))

            def on_epoch(metrics, _state) -> None:
                finished.append(metrics)

            result = train_trial(config, dataset, on_epoch=on_epoch, on_step=on_step)
    except KeyboardInterrupt:
        best = max(finished, key=lambda m: m.val_accuracy, default=None)
        so_far = (f"; best validation accuracy {best.val_accuracy:.4f} (epoch {best.epoch})"
                  if best else "")
        err_console.print(f"stopped after {time.monotonic() - began:.0f} s with "
                          f"{len(finished)} of {config.epochs} epochs finished{so_far}; "
                          f"nothing was saved", highlight=False)
        raise typer.Exit(130) from None
    saved = None
    if save is not None and result.best_model is not None:
        from fmnist_ray.model_export.export import export_model

        export_model(result.best_model, config, _test_metrics(result.to_dict()), save)
        saved = save
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    console.print(_epoch_table(result.history))
    best = result.best
    if result.status == "diverged":
        console.print(f"[bold red]diverged[/] at epoch {result.epochs_run}: the loss became "
                      f"NaN/inf; lower --lr (now {config.lr:g})")
    if result.status == "failed_to_learn":
        console.print(f"[bold red]failed to learn[/]: best validation accuracy "
                      f"{best.val_accuracy:.4f} is at chance (0.10); try another --lr (now "
                      f"{config.lr:g})")
    if best.test_accuracy is not None:
        console.print(f"test accuracy {best.test_accuracy:.4f}, test loss {best.test_loss:.4f} "
                      f"(weights of best validation epoch {best.epoch}); {result.params:,} "
                      f"parameters; {result.seconds:.1f} s on {result.device} ({result.precision})")
    if saved:
        console.print(f"model saved: {saved} (and {saved.with_suffix('.json')}); classify "
                      f"images with: fmnist-ray predict {saved} IMAGE.png", highlight=False)


def _test_metrics(values) -> dict:
    """What a model's sidecar records of how it was measured."""
    keys = ("test_accuracy", "test_loss", "best_epoch", "best_val_accuracy", "trial_id")
    return {k: (values[k].item() if hasattr(values[k], "item") else values[k])
            for k in keys if k in values}


def _cluster_nodes(address: str | None) -> list:
    """The nodes a dry run plans for: this machine, or those of the cluster at `address`
    (a Ray Jobs address is only checked for reachability: its nodes are seen by the job)."""
    from fmnist_ray.results.preflight import this_machine

    if not address:
        return [this_machine()]
    from fmnist_ray.cluster import check_reachable

    check_reachable(address)
    from fmnist_ray.cluster.jobs import is_jobs_address

    if is_jobs_address(address):
        return []
    from fmnist_ray.cluster import node_sizes, ray_session

    with ray_session(address):
        return node_sizes()


def _print_plan(plan, spec) -> None:
    listed = plan.trials
    title = f"{len(plan.trials)} trial(s)"
    if any(plan.reused):
        title += (f", {sum(plan.reused)} of them reused from the trial store (they ran to "
                  f"their end before; --no-reuse trains them)")
    if spec.search != "grid":
        listed = plan.trials[:len(spec.start_with)]
        title += (f": {len(listed)} start point(s), then {len(plan.trials) - len(listed)} "
                  f"sampled by {spec.search} search")
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    columns = plan.varied or ["model"]
    for column in columns:
        table.add_column(column)
    table.add_column("epochs", justify="right")
    if any(plan.reused):
        table.add_column("stored")
    for i, (trial, reused) in enumerate(zip(listed, plan.reused, strict=False), 1):
        values = trial.model_dump()
        table.add_row(str(i), *[str(values[c]) for c in columns], str(trial.epochs),
                      *(["reused" if reused else ""] if any(plan.reused) else []))
    console.print(table)
    for key, text in plan.space.items():
        console.print(f"  {spec.search} search samples {key}: {escape(text)}")
    console.print(f"resources: {plan.cpus:g} CPU + {plan.gpus:g} GPU per trial, "
                  f"{plan.concurrency} at a time; scheduler: {spec.scheduler.type}; "
                  f"search: {spec.search}")
    bound = " (an upper bound: ASHA stops weak trials early)" \
        if spec.scheduler.type == "asha" else ""
    estimate = f"{plan.seconds:.0f} s" if plan.seconds < 120 else f"{plan.seconds / 60:.1f} min"
    if spec.time_budget_minutes and plan.seconds >= spec.time_budget_minutes * 60:
        bound = " (the time budget ends the search then)"
    console.print(f"estimated wall time: {estimate} of training, plus ~10 s to start Ray{bound}")


@app.command(epilog=(
    "Examples: fmnist-ray sweep sweeps/batch_size.yaml --dry-run  |  fmnist-ray sweep "
    "sweeps/batch_size.yaml --set seeds=3  |  fmnist-ray sweep sweeps/tune.yaml --address "
    "http://HEAD:8265"))
@user_errors
def sweep(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC.yaml", help="Sweep spec file.")],
    storage: Annotated[str, typer.Option(
        help="Where results go: a directory or a URI such as s3://bucket/dir.")] = "./results",
    name: Annotated[str | None, typer.Option(help="Results folder name (default: spec name).")
                    ] = None,
    address: Address = None,
    overrides: Overrides = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Validate, list the trials and estimate the time; train nothing.")
    ] = False,
    quiet: Quiet = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue this sweep where it stopped (same spec, same --name).")
    ] = False,
    extend: Annotated[bool, typer.Option(
        "--extend", help="Grow the sweep already under this name to this spec (more seeds, "
        "axis values, variants or samples): only the new trials train.")] = False,
    no_reuse: NoReuse = False,
    errored: Errored = ErroredTrials.keep,
    no_wait: NoWait = False,
    data_dir: DataDir = None,
) -> None:
    """Run a sweep defined in a YAML spec on Ray Tune; exit 1 if any trial errored."""
    from fmnist_ray.cluster.jobs import is_jobs_address, leave_job_working_dir
    from fmnist_ray.training.data import load_fashion_mnist
    from fmnist_ray.results.preflight import check_resources, check_storage, check_sweep_folder
    from fmnist_ray.spec.file import load_spec, spec_to_yaml
    from fmnist_ray.results.storage import experiment_uri

    # --name is validated like the spec's own name (it becomes a directory).
    spec = load_spec(spec_file, overrides, name)
    if extend and resume:
        raise UserError("--extend and --resume: choose one; resume an interrupted sweep "
                        "first, then extend it")
    leave_job_working_dir()
    if is_jobs_address(address) and not dry_run:
        args = ["sweep", "spec.yaml", "--storage", storage, "--errored", errored.value,
                *(["--resume"] if resume else []), *(["--extend"] if extend else []),
                *_job_options(no_reuse, data_dir)]
        _submit_job(address, args, {"spec.yaml": spec_to_yaml(spec)}, storage,
                    f"{storage.rstrip('/')}/{spec.name}", no_wait)
        return
    if not is_jobs_address(address):  # a job's storage is checked on the cluster
        check_storage(storage, spec.name, create=not dry_run)
        if extend:
            from fmnist_ray.sweep.extension import check_extension

            check_extension(spec, experiment_uri(storage, spec.name))
        elif not dry_run:
            check_sweep_folder(experiment_uri(storage, spec.name), resume)
    dataset = load_fashion_mnist(data_dir)
    if dry_run:
        from fmnist_ray.sweep.plan import plan_sweep

        nodes = _cluster_nodes(address)
        check_resources(spec.resources, nodes, f"the cluster at {address}" if address
                        else "this machine", source=str(spec_file))
        console.print(f"{spec_file}: valid sweep '{spec.name}'")
        cpus = sum(n.cpus for n in nodes) or os.cpu_count() or 1
        _print_plan(plan_sweep(spec, dataset, cluster_cpus=cpus,
                               cluster_gpus=sum(n.gpus for n in nodes),
                               storage=None if no_reuse else storage), spec)
        return
    _run(spec, dataset, storage, address, quiet, resume, errored.value, extend=extend,
         reuse=not no_reuse)


@app.command(epilog=(
    "Examples: fmnist-ray extend results/batch_size --set seeds=3  |  fmnist-ray extend "
    "results/tune --set num_samples=40"))
@user_errors
def extend(
    results_dir: ResultsDir,
    overrides: Overrides = None,
    address: Address = None,
    quiet: Quiet = False,
    no_reuse: NoReuse = False,
    no_wait: NoWait = False,
    data_dir: DataDir = None,
) -> None:
    """Grow a sweep with its stored spec changed by --set: only the new trials train."""
    from fmnist_ray.cluster.jobs import is_jobs_address
    from fmnist_ray.training.data import load_fashion_mnist
    from fmnist_ray.results.driver_lock import check_no_live_driver
    from fmnist_ray.results.preflight import check_storage
    from fmnist_ray.results.exports import SPEC_FILE, read_text
    from fmnist_ray.spec.file import load_spec_text, spec_to_yaml
    from fmnist_ray.results.storage import split_experiment_uri
    from fmnist_ray.sweep.extension import check_extension

    uri = results_dir.rstrip("/")
    storage, name = split_experiment_uri(uri)
    spec = load_spec_text(read_text(uri, SPEC_FILE), f"{uri}/{SPEC_FILE}", overrides, name)
    if is_jobs_address(address):
        args = ["sweep", "spec.yaml", "--storage", storage, "--extend",
                *_job_options(no_reuse, data_dir)]
        _submit_job(address, args, {"spec.yaml": spec_to_yaml(spec)}, storage, uri, no_wait)
        return
    check_storage(storage, name, create=True)
    check_no_live_driver(uri)
    check_extension(spec, uri)
    _run(spec, load_fashion_mnist(data_dir), storage, address, quiet, False, "keep",
         extend=True, reuse=not no_reuse)


@app.command(epilog=(
    "Example: fmnist-ray resume results/batch_size --errored resume"))
@user_errors
def resume(
    results_dir: ResultsDir,
    address: Address = None,
    quiet: Quiet = False,
    errored: Errored = ErroredTrials.keep,
    no_reuse: NoReuse = False,
    no_wait: NoWait = False,
    data_dir: DataDir = None,
) -> None:
    """Continue an interrupted sweep with the spec stored beside its results."""
    from fmnist_ray.cluster.jobs import is_jobs_address
    from fmnist_ray.training.data import load_fashion_mnist
    from fmnist_ray.results.preflight import check_storage, check_sweep_folder
    from fmnist_ray.spec.file import read_stored_spec
    from fmnist_ray.results.storage import experiment_uri, split_experiment_uri

    uri = results_dir.rstrip("/")
    storage, name = split_experiment_uri(uri)
    if is_jobs_address(address):
        args = ["resume", uri, "--errored", errored.value,
                *_job_options(no_reuse, data_dir)]
        _submit_job(address, args, {}, uri, uri, no_wait)
        return
    spec = read_stored_spec(uri)
    if spec.name != name:
        spec = spec.model_copy(update={"name": name})
    check_storage(storage, name, create=True)
    check_sweep_folder(experiment_uri(storage, name), resume=True)
    _run(spec, load_fashion_mnist(data_dir), storage, address, quiet, True,
         errored.value, reuse=not no_reuse)


def _print_resume_plan(spec, storage: str, errored: str) -> None:
    """What a resume keeps and what it runs, in trial order, before Ray starts."""
    from fmnist_ray.results.exports import TRIALS_FILE, read_table, saved_state
    from fmnist_ray.results.storage import experiment_uri

    uri = experiment_uri(storage, spec.name)
    if not saved_state(uri).started:
        console.print(f"{uri}: nothing was saved before it stopped: starting it again",
                      highlight=False)
        return
    try:
        trials = read_table(uri, TRIALS_FILE).sort_values("trial_id")
    except UserError:
        return  # no export yet: Ray's own state says what to run
    rerun = ["interrupted", *ACTIVE, *(["errored"] if errored != "keep" else [])]
    runs = trials[trials["status"].isin(rerun)]
    kept = len(trials) - len(runs)
    how = {"keep": "", "resume": " (errored ones from their checkpoints)",
           "restart": " (errored ones from scratch)"}[errored]
    ids = ", ".join(runs["trial_id"].head(8)) + (", ..." if len(runs) > 8 else "")
    console.print(f"resuming {uri}: keeping {kept} finished trial(s); running "
                  f"{len(runs)}{how}{': ' + ids if len(runs) else ''}", highlight=False)


def _run(spec, dataset, storage: str, address: str | None, quiet: bool, resume: bool,
         errored: str, extend: bool = False, reuse: bool = True) -> None:
    """Run or resume a sweep with progress, then print its summary and set the exit code."""
    from rich.live import Live

    if resume:
        _print_resume_plan(spec, storage, errored)
    where = f"connecting to Ray at {address}" if address else "starting Ray on this machine"
    starting = contextlib.nullcontext()
    if not quiet and console.is_terminal:
        starting = console.status(f"{where} ...")  # a spinner until the trials table shows
    elif not quiet:
        console.print(f"{where} ...")
    with contextlib.ExitStack() as session:
        with starting:  # importing Ray and torch is part of the wait
            from fmnist_ray.cluster import ray_session

            session.enter_context(ray_session(address, import_meanwhile="fmnist_ray.sweep.run"))
            from fmnist_ray.sweep import run_sweep

        run = functools.partial(run_sweep, spec, dataset, storage, resume=resume,
                                errored=errored, extend=extend, reuse=reuse)
        if quiet:
            summary = run()
        elif console.is_terminal:
            began = time.monotonic()
            with Live(trials_table([], spec), console=console, auto_refresh=False) as live:
                summary = run(on_update=lambda rows: live.update(
                    trials_table(rows, spec, time.monotonic() - began), refresh=True))
            console.print()
        else:  # a log file or CI: one line each time a trial starts or ends
            summary = run(on_update=LogLines(spec, console))
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.statuses.items()))
    if summary.interrupted:
        console.print(f"sweep stopped after {summary.seconds:.0f} s: {counts}")
    else:
        console.print(f"sweep finished in {summary.seconds:.0f} s: {counts}")
    budget = spec.time_budget_minutes
    if budget and summary.seconds >= budget * 60:
        console.print(f"the time budget of {budget:g} min ended the search; trials it cut short "
                      f"count as early_stopped")
    if summary.reused:
        console.print(f"{summary.reused} trial(s) reused: they ran to their end before (in this "
                      f"or another sweep under the same storage) and were not trained again; "
                      f"--no-reuse trains them")
    console.print(f"results: {summary.experiment_uri}/trials.parquet, epochs.parquet")
    if summary.best:
        best = summary.best
        console.print(f"best trial {best['trial_id']}: test accuracy {best['test_accuracy']:.4f}, "
                      f"test loss {best['test_loss']:.4f}, val accuracy "
                      f"{best['best_val_accuracy']:.4f} (epoch {best['best_epoch']:.0f})")
    for trial_id, error in summary.errors:
        err_console.print(f"[bold red]errored:[/] trial {trial_id}: {escape(str(error))}",
                          highlight=False)
    if summary.interrupted:
        console.print(f"stopped before every trial finished; finished trials are kept. "
                      f"Resume with: fmnist-ray resume {summary.experiment_uri}"
                      f"{'' if reuse else ' --no-reuse'}")
        raise typer.Exit(130)
    if summary.errors:
        raise typer.Exit(1)


def _job_options(no_reuse: bool, data_dir: Path | None) -> list[str]:
    """The options a Ray Job's own `fmnist-ray` command repeats from this one."""
    return [*(["--no-reuse"] if no_reuse else []),
            *(["--data-dir", str(data_dir)] if data_dir else [])]


def _submit_job(address: str, args: list[str], files: dict[str, str], storage: str,
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


@app.command(epilog=(
    "Example: fmnist-ray doctor --address http://HEAD:8265 --storage s3://bucket/runs"))
@user_errors
def doctor(
    address: Address = None,
    storage: Annotated[str, typer.Option(
        help="The storage your sweeps will use: checked writable from every node.")
    ] = "./results",
    data_dir: DataDir = None,
) -> None:
    """Check a cluster before a sweep: nodes, versions, storage and dataset; exit 1 on a fault."""
    from fmnist_ray.cluster import ray_session
    from fmnist_ray.cluster.jobs import is_jobs_address

    if is_jobs_address(address):
        _submit_job(address, ["doctor", "--storage", storage,
                              *(["--data-dir", str(data_dir)] if data_dir else [])],
                    {}, storage, None, no_wait=False)
        return
    from fmnist_ray.cluster import doctor as checks

    if not address:
        console.print("no --address: checking an embedded local Ray on this machine (pass "
                      "--address to check a cluster)", highlight=False)
    from fmnist_ray.results.storage import is_uri

    local = None if is_uri(storage) else Path(storage).expanduser()
    made = local is not None and not local.exists()
    try:
        with ray_session(address):
            nodes = checks.nodes()
            found = checks.run_checks(storage, str(data_dir) if data_dir else None)
    finally:
        if made and local.is_dir() and not any(local.iterdir()):
            local.rmdir()  # the check leaves no empty folder behind
    table = Table(title=f"{len(nodes)} node(s)", title_justify="left")
    for column in ("node", "address", "role", "CPUs", "GPUs"):
        table.add_column(column)
    for node in nodes:
        table.add_row(node.node_id[:12], node.address, "head" if node.is_head else "worker",
                      f"{node.cpus:g}", f"{node.gpus:g}")
    console.print(table)
    for check in found:
        mark = "[green]ok[/]  " if check.ok else "[bold red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        if not check.ok:
            console.print(f"      fix: {check.fix}", highlight=False)
    if not all(c.ok for c in found):
        raise typer.Exit(1)


@app.command(epilog=(
    "Example: fmnist-ray export results/batch_size -o model.pt"))
@user_errors
def export(
    results_dir: ResultsDir,
    output: Annotated[Path, typer.Option(
        "-o", "--output", metavar="MODEL.pt", help="The TorchScript file to write.")
    ] = Path("model.pt"),
    trial: Annotated[str | None, typer.Option(
        metavar="ID", help="A trial id (default: the trial the sweep chose on validation).")
    ] = None,
) -> None:
    """Export a trial's best-validation weights as TorchScript (loads without this tool),
    with a .json sidecar: config, normalisation, class names, test metrics."""
    from fmnist_ray.report.browse import find_trial, newest_checkpoint
    from fmnist_ray.model_export.export import config_from_row, export_model
    from fmnist_ray.training.loop import TrainState

    uri = results_dir.rstrip("/")
    _, row = find_trial(uri, trial)
    checkpoint = newest_checkpoint(uri, row)
    state = TrainState.load(checkpoint)
    if state.best_model is None:
        raise UserError(f"{checkpoint}: written by an older version that kept no best-epoch "
                        f"weights; run the sweep again (or resume it) to export it")
    sidecar = export_model(state.best_model, config_from_row(row), _test_metrics(row), output)
    console.print(f"exported trial {row['trial_id']} (best epoch {state.best.epoch}, test "
                  f"accuracy {state.best.test_accuracy:.4f}): {output}, {sidecar}",
                  highlight=False)


@app.command(epilog=(
    "Example: fmnist-ray predict model.pt shirt.jpg boot.png --json"))
@user_errors
def predict(
    model: Annotated[Path, typer.Argument(metavar="MODEL.pt", help="An exported model.")],
    images: Annotated[list[Path], typer.Argument(
        metavar="IMAGES...", help="PNG/JPEG files (any size, colour or grey) or an IDX .gz.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """Classify images with an exported model: class and probability per image."""
    from fmnist_ray.model_export.export import load_exported
    from fmnist_ray.model_export.export import predict as classify
    from fmnist_ray.model_export.images import read_images

    network, info = load_exported(model)
    labels, pixels = read_images(images)
    probabilities = classify(network, pixels)
    names = info["class_names"]
    rows = [{"image": label, "class": names[int(p.argmax())],
             "probability": round(float(p.max()), 4)}
            for label, p in zip(labels, probabilities, strict=True)]
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        console.print(f"{row['image']}: {row['class']} ({row['probability']:.2f})",
                      highlight=False)


@app.command("ls", epilog="Example: fmnist-ray ls results --json")
@user_errors
def list_sweeps(
    storage: Annotated[str, typer.Argument(
        metavar="[STORAGE]", help="Where the sweeps are: a directory or a URI such as s3://...")
    ] = "./results",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """List the sweeps in a storage: trials by status, best trial, when they ran."""
    from fmnist_ray.report.browse import list_sweeps as listing

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


@app.command(epilog=(
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

    view = show_sweep(results_dir.rstrip("/"), sort, top)
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
    if view.best is None:
        console.print("no trial finished with a score yet", highlight=False)
        return
    settings = ", ".join(f"{k}={v}" for k, v in view.best_settings.items())
    console.print(f"chosen on {view.metric.removeprefix('best_')}: trial "
                  f"{view.best['trial_id']} ({settings}): {view.metric} "
                  f"{fmt(view.best[view.metric])}, test accuracy "
                  f"{fmt(view.best['test_accuracy'])}", highlight=False)
    if view.best_folder:
        console.print(f"its checkpoints and logs: {view.best_folder}", highlight=False)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or value >= 10 else f"{value:.4f}"
    return "" if value is None else str(value)


@app.command(epilog=(
    "Examples: fmnist-ray report results/smoke -o reports/smoke.html  |  fmnist-ray report "
    "--all results -o reports/index.html"))
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


if __name__ == "__main__":
    app()

"""`sweep`, `extend` and `resume`: run a sweep here, on a cluster or as a Ray Job."""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fmnist_ray.cli.common import (
    Address,
    DataDir,
    Errored,
    ErroredTrials,
    NoReuse,
    NoWait,
    Overrides,
    Quiet,
    ResultsDir,
    command,
    console,
    err_console,
    submit_job,
    user_errors,
)
from fmnist_ray.errors import UserError
from fmnist_ray.results.outcomes import ACTIVE, Status
from fmnist_ray.sweep.progress import LogLines, trials_table


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
    bound = f" (an upper bound: {spec.scheduler.label} stops weak trials early)" \
        if spec.scheduler.stops_early else ""
    if spec.confirm_seeds:
        console.print(f"then its choice is confirmed: trained again with {spec.confirm_seeds} "
                      f"fresh seed(s) at full length ({spec.trial.epochs} epochs each)")
    estimate = f"{plan.seconds:.0f} s" if plan.seconds < 120 else f"{plan.seconds / 60:.1f} min"
    if spec.time_budget_minutes and plan.seconds >= spec.time_budget_minutes * 60:
        bound = " (the time budget ends the search then)"
    console.print(f"estimated wall time: {estimate} of training, plus ~10 s to start Ray{bound}")


@command(epilog=(
    "Examples:\nfmnist-ray sweep sweeps/batch_size.yaml --dry-run\n"
    "fmnist-ray sweep sweeps/batch_size.yaml --set seeds=3\n"
    "fmnist-ray sweep sweeps/tune.yaml --address http://HEAD:8265"))
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
    kuberay: Annotated[Path | None, typer.Option(
        metavar="RAYJOB.yaml", help="Write the sweep as a KubeRay RayJob manifest for "
        "`kubectl apply -f` and run nothing here; needs --storage s3://... or gs://...")
    ] = None,
    image: Annotated[str | None, typer.Option(
        help="With --kuberay: the container image of this version, built with "
        "sweeps/kubernetes/Dockerfile (default: fmnist-ray:VERSION).")] = None,
) -> None:
    """Run a sweep defined in a YAML spec on Ray Tune; exit 1 if any trial errored."""
    from fmnist_ray.cluster.jobs import is_jobs_address, leave_job_working_dir
    from fmnist_ray.results.preflight import check_resources, check_storage
    from fmnist_ray.spec.file import load_spec, spec_to_yaml
    from fmnist_ray.sweep.preparation import RunMode, prepare_run
    from fmnist_ray.training.data import load_fashion_mnist

    # --name is validated like the spec's own name (it becomes a directory).
    spec = load_spec(spec_file, overrides, name)
    if extend and resume:
        raise UserError("--extend and --resume: choose one; resume an interrupted sweep "
                        "first, then extend it")
    if kuberay:
        applied = [*(["--name", name] if name else []),
                   *[word for override in overrides or [] for word in ("--set", override)]]
        _write_rayjob(kuberay, spec, spec_file, storage, image, address, dry_run, applied, [
            *(["--resume"] if resume else []), *(["--extend"] if extend else []),
            *(["--errored", errored.value] if errored.value != "keep" else []),
            *(["--no-reuse"] if no_reuse else [])])
        return
    if image:
        raise UserError("--image: it names the image of a RayJob; add --kuberay RAYJOB.yaml")
    leave_job_working_dir()
    if is_jobs_address(address) and not dry_run:
        args = ["sweep", "spec.yaml", "--storage", storage, "--errored", errored.value,
                *(["--resume"] if resume else []), *(["--extend"] if extend else []),
                *_job_options(no_reuse, data_dir)]
        submit_job(address, args, {"spec.yaml": spec_to_yaml(spec)}, storage,
                    f"{storage.rstrip('/')}/{spec.name}", no_wait)
        return
    mode = RunMode.EXTEND if extend else RunMode.RESUME if resume else RunMode.NEW
    prepared = None
    if dry_run:
        check_storage(storage, spec.name)
    elif not is_jobs_address(address):  # a job's storage is checked on the cluster
        prepared = prepare_run(spec, storage, mode)
        if _nothing_to_add(prepared):
            return
    dataset = load_fashion_mnist(data_dir)
    if dry_run:
        from fmnist_ray.cluster import nodes_to_plan_for
        from fmnist_ray.sweep.plan import plan_sweep

        nodes = nodes_to_plan_for(address)
        check_resources(spec.resources, nodes, f"the cluster at {address}" if address
                        else "this machine", source=str(spec_file))
        console.print(f"{spec_file}: valid sweep '{spec.name}'")
        cpus = sum(n.cpus for n in nodes) or os.cpu_count() or 1
        _print_plan(plan_sweep(spec, dataset, cluster_cpus=cpus,
                               cluster_gpus=sum(n.gpus for n in nodes),
                               storage=None if no_reuse else storage), spec)
        return
    _run(spec, dataset, storage, address, quiet, mode, errored.value, reuse=not no_reuse,
         prepared=prepared)


def _write_rayjob(path: Path, spec, spec_file: Path, storage: str, image: str | None,
                  address: str | None, dry_run: bool, applied: list[str], sweep_args: list[str]
                  ) -> None:
    """`sweep --kuberay`: write the RayJob manifest and say how to run it. The `applied`
    options (--name, --set) are in the spec it holds; the job repeats the `sweep_args`."""
    from fmnist_ray.cluster.kuberay import default_image, write_manifest
    from fmnist_ray.results.storage import experiment_uri

    if address or dry_run:
        raise UserError(f"--kuberay and {'--address' if address else '--dry-run'}: --kuberay "
                        f"writes a manifest for a cluster KubeRay starts and runs nothing here; "
                        f"drop one of them")
    image = image or default_image()
    command = shlex.join(["fmnist-ray", "sweep", str(spec_file), "--kuberay", str(path),
                          "--storage", storage, *(["--image", image] if image != default_image()
                                                  else []), *applied, *sweep_args])
    name, workers = write_manifest(path, spec, storage, image, sweep_args, command)
    gpus = f" + {workers.gpus} GPU" if workers.gpus else ""
    console.print(f"wrote {path}: RayJob {name}, a head pod and {workers.replicas} worker "
                  f"pod(s) of {workers.cpus} CPU{gpus} and {workers.memory_gib}Gi "
                  f"({workers.trials_per_pod} trial(s) each), image {image}\n"
                  f"run it with: kubectl apply -f {path}\n"
                  f"follow it with: kubectl logs -f job/{name}\n"
                  f"report it with: fmnist-ray report {experiment_uri(storage, spec.name)}",
                  highlight=False)


@command(epilog=(
    "Examples:\nfmnist-ray extend results/batch_size --set seeds=3\n"
    "fmnist-ray extend results/batch_size --until-decided --max-seeds 10\n"
    "fmnist-ray extend results/tune --set num_samples=40"))
@user_errors
def extend(
    results_dir: ResultsDir,
    overrides: Overrides = None,
    address: Address = None,
    quiet: Quiet = False,
    no_reuse: NoReuse = False,
    no_wait: NoWait = False,
    data_dir: DataDir = None,
    until_decided: Annotated[bool, typer.Option(
        "--until-decided", help="Add seeds while any comparison of the report is undecided: "
        "look, add --seed-step seeds, look again, up to --max-seeds or --minutes. Each look "
        "tests at 5% / (the most looks the limits allow), so the error rate holds over all "
        "of them.")] = False,
    max_seeds: Annotated[int, typer.Option(
        "--max-seeds", min=2, max=100, help="With --until-decided: the most seeds per "
        "configuration.")] = 10,
    seed_step: Annotated[int, typer.Option(
        "--seed-step", min=1, max=50, help="With --until-decided: seeds added per look.")] = 2,
    minutes: Annotated[float | None, typer.Option(
        "--minutes", min=0.1, help="With --until-decided: start no new look after this "
        "long.")] = None,
) -> None:
    """Grow a sweep with its stored spec changed by --set: only the new trials train. With
    --until-decided, add seeds until every comparison is decided or a limit is reached."""
    from fmnist_ray.cluster.jobs import is_jobs_address
    from fmnist_ray.results.driver_lock import check_no_live_driver
    from fmnist_ray.results.storage import results_location
    from fmnist_ray.spec.file import read_stored_spec, spec_to_yaml
    from fmnist_ray.sweep.preparation import RunMode, prepare_run
    from fmnist_ray.training.data import load_fashion_mnist

    uri, storage, name = results_location(results_dir)
    spec = read_stored_spec(uri, overrides, name)
    if is_jobs_address(address):
        args = ["sweep", "spec.yaml", "--storage", storage, "--extend",
                *_job_options(no_reuse, data_dir)]
        submit_job(address, args, {"spec.yaml": spec_to_yaml(spec)}, storage, uri, no_wait)
        return
    check_no_live_driver(uri)

    def grow(grown) -> None:
        prepared = prepare_run(grown, storage, RunMode.EXTEND)
        if not _nothing_to_add(prepared):
            _run(grown, load_fashion_mnist(data_dir), storage, address, quiet, RunMode.EXTEND,
                 "keep", reuse=not no_reuse, prepared=prepared)

    if until_decided:
        if overrides:
            raise UserError("--until-decided adds seeds itself; run extend --set first, then "
                            "extend --until-decided")
        _until_decided(uri, name, spec.seeds, max_seeds, seed_step, minutes, grow)
        return
    grow(spec)


def _nothing_to_add(prepared) -> bool:
    """Say so, and True, when an extension adds no trial (before Ray starts)."""
    if prepared.extension is None or prepared.extension.adds:
        return False
    console.print(f"{prepared.uri}: nothing to add: every trial of this spec has run already; "
                  f"change it with --set (e.g. --set seeds=N, more axis values or num_samples)",
                  highlight=False)
    return True


def _until_decided(uri: str, name: str, seeds: int, max_seeds: int, step: int,
                   minutes: float | None, grow) -> None:
    """Look at the report's comparisons, add `step` seeds while any is undecided, and stop when
    all are decided, at `max_seeds`, or after `minutes`; Bonferroni over the plan's looks."""
    from fmnist_ray.report import load_results, sweep_findings
    from fmnist_ray.report.differences import ALPHA, SeedPlan
    from fmnist_ray.spec.file import read_stored_spec

    plan = SeedPlan(seeds, step, max(seeds, max_seeds))
    began, decided_before = time.monotonic(), None
    for look in range(1, plan.looks + 1):
        found = sweep_findings(load_results(uri), looks=plan.looks)
        still = found.undecided()
        level = ALPHA / plan.looks
        console.print(f"look {look} of at most {plan.looks} ({seeds} seeds, each test at "
                      f"{level:.4f}): {len(still)} of {found.compared()} comparison(s) "
                      f"undecided" + (f": {', '.join(still)}" if still else ""), highlight=False)
        if decided_before is not None:
            newly = sorted(set(decided_before) - set(still))
            if newly:
                console.print(f"decided by the added seeds: {', '.join(newly)}", highlight=False)
        decided_before = still
        following = plan.next(seeds)
        if not found.compared():
            console.print("nothing to decide: the report makes no comparison here (a search, "
                          "or one configuration)", highlight=False)
            return
        if not still:
            console.print("every comparison is decided; report it with: fmnist-ray report "
                          f"{uri}", highlight=False)
            return
        if following is None:
            console.print(f"stopped at --max-seeds {plan.maximum}: {len(still)} comparison(s) "
                          f"still undecided", highlight=False)
            return
        if minutes is not None and time.monotonic() - began >= minutes * 60:
            console.print(f"stopped after --minutes {minutes:g}: {len(still)} comparison(s) "
                          f"still undecided", highlight=False)
            return
        grow(read_stored_spec(uri, [f"seeds={following}", f"analysis.looks={plan.looks}"],
                              name))
        seeds = following


@command(epilog=(
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
    from fmnist_ray.results.storage import results_location
    from fmnist_ray.spec.file import read_stored_spec
    from fmnist_ray.sweep.preparation import RunMode, prepare_run
    from fmnist_ray.training.data import load_fashion_mnist

    uri, storage, name = results_location(results_dir)
    if is_jobs_address(address):
        args = ["resume", uri, "--errored", errored.value,
                *_job_options(no_reuse, data_dir)]
        submit_job(address, args, {}, uri, uri, no_wait)
        return
    spec = read_stored_spec(uri)
    if spec.name != name:
        spec = spec.model_copy(update={"name": name})
    prepared = prepare_run(spec, storage, RunMode.RESUME)
    _run(spec, load_fashion_mnist(data_dir), storage, address, quiet, RunMode.RESUME,
         errored.value, reuse=not no_reuse, prepared=prepared)


def _print_resume_plan(uri: str, errored: str) -> None:
    """What a resume keeps and what it runs, in trial order, before Ray starts."""
    from fmnist_ray.results.exports import TRIALS_FILE, read_table, saved_state

    if not saved_state(uri).started:
        console.print(f"{uri}: nothing was saved before it stopped: starting it again",
                      highlight=False)
        return
    try:
        trials = read_table(uri, TRIALS_FILE).sort_values("trial_id")
    except UserError:
        return  # no export yet: Ray's own state says what to run
    rerun = [Status.INTERRUPTED, *ACTIVE, *([Status.ERRORED] if errored != "keep" else [])]
    runs = trials[trials["status"].isin(rerun)]
    kept = len(trials) - len(runs)
    how = {"keep": "", "resume": " (errored ones from their checkpoints)",
           "restart": " (errored ones from scratch)"}[errored]
    ids = ", ".join(runs["trial_id"].head(8)) + (", ..." if len(runs) > 8 else "")
    console.print(f"resuming {uri}: keeping {kept} finished trial(s); running "
                  f"{len(runs)}{how}{': ' + ids if len(runs) else ''}", highlight=False)


def _run(spec, dataset, storage: str, address: str | None, quiet: bool, mode, errored: str,
         reuse: bool = True, prepared=None) -> None:
    """Run or resume a sweep; a Ctrl-C at any moment, start-up included, exits 130 with the
    way to go on."""
    from fmnist_ray.results.exports import saved_state
    from fmnist_ray.results.storage import experiment_uri
    from fmnist_ray.sweep.interrupts import remembered
    from fmnist_ray.sweep.preparation import RunMode
    from fmnist_ray.sweep.resumption import stored_spec_differences

    try:
        with remembered():
            _run_with_progress(spec, dataset, storage, address, quiet, mode, errored, reuse,
                               prepared)
    except KeyboardInterrupt:
        uri = experiment_uri(storage, spec.name)
        if mode == RunMode.EXTEND and stored_spec_differences(spec, uri):
            then = "run the same command again to extend it"  # it stopped before it began
        elif saved_state(uri).spec:
            then = f"resume with: fmnist-ray resume {uri}{'' if reuse else ' --no-reuse'}"
        else:
            then = "nothing was written; run the same command again to start it"
        console.print(f"\nstopped (Ctrl-C); finished trials are kept; {then}", highlight=False)
        raise typer.Exit(130) from None


def _run_with_progress(spec, dataset, storage: str, address: str | None, quiet: bool, mode,
                       errored: str, reuse: bool, prepared) -> None:
    """Run or resume a sweep with progress, then print its summary and set the exit code."""
    from rich.live import Live

    from fmnist_ray.sweep.preparation import RunMode

    if prepared is not None and mode == RunMode.RESUME:
        _print_resume_plan(prepared.uri, errored)
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

        run = functools.partial(run_sweep, spec, dataset, storage, mode=mode, errored=errored,
                                reuse=reuse, prepared=prepared)
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
    if summary.kept:
        console.print(f"{summary.kept} trial(s) kept from before as they were (same ids); "
                      f"{sum(summary.statuses.values()) - summary.kept} new")
    if summary.confirmed:
        console.print(f"the search's choice was trained again with {summary.confirmed} fresh "
                      f"seed(s) at full length (confirm_seeds): the report gives their mean as "
                      f"its result")
    if summary.reused:
        console.print(f"{summary.reused} trial(s) reused: they ran to their end before (in this "
                      f"or another sweep under the same storage) and were not trained again; "
                      f"--no-reuse trains them")
    console.print(f"results: {summary.experiment_uri}/trials.parquet, epochs.parquet")
    if summary.front:
        console.print(f"Pareto front ({len(summary.front)} trial(s) no other beats on every "
                      f"objective):", highlight=False)
        for line in summary.front:
            console.print(f"  {escape(line)}", highlight=False)
    if summary.best:
        best = summary.best
        if summary.best_config_seeds > 1:
            console.print(f"chosen: configuration {summary.best_config} (mean over "
                          f"{summary.best_config_seeds} seeds {summary.best_config_mean:.4f}); "
                          f"its best seed ({best['seed']:.0f}):", highlight=False)
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

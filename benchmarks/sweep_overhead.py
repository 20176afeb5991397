"""Wall time of a sweep of short trials over the time its trials spent training.

overhead = sweep wall time / (sum of the trials' training + evaluation seconds / concurrency),
where a trial's seconds come from `trials.parquet` (its epochs' `epoch_seconds +
eval_seconds`) and concurrency is the number of trials Ray can run at once. 1.0 would be a
sweep with no cost outside training. Shown with and without Ray's start-up. Target: <= 1.15.

    .venv/bin/python benchmarks/sweep_overhead.py [--quick]
"""

from __future__ import annotations

import math
import time

import common
import ray

TARGET = 1.15


def learning_rates(n: int) -> list[float]:
    """`n` log-spaced learning rates from 1e-4 to 1e-2, rounded to 2 significant digits."""
    return [float(f"{10 ** (-4 + 2 * i / max(1, n - 1)):.2g}") for i in range(n)]


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden units")
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    if args.quick:
        args.epochs = 1
    spec = {"name": "sweep_overhead",
            "trial": {"model": "mlp", "hidden_sizes": [args.hidden], "optimizer": "adam",
                      "batch_size": args.batch_size, "epochs": args.epochs, "device": "cpu"},
            "axes": {"lr": learning_rates(args.trials)},
            "resources": {"cpu": 1}}
    with common.scratch(args.storage) as work:
        data = common.load_data(args.quick, args.data_dir, work)
        began = time.perf_counter()
        with common.local_ray(args.num_cpus):
            startup = time.perf_counter() - began
            cpus = ray.cluster_resources().get("CPU", 1)
            run = common.run_spec(spec, data, work)
    trials = run.trials
    concurrency = min(len(trials), math.floor(cpus / spec["resources"]["cpu"]))
    ideal = trials["seconds"].sum() / concurrency
    without, with_startup = run.seconds / ideal, (startup + run.seconds) / ideal
    per_trial = (run.seconds * concurrency - trials["seconds"].sum()) / len(trials)

    print(f"\n{len(trials)} trials x {args.epochs} epoch(s), MLP {args.hidden}, "
          f"{len(data.train_labels)} training images, {concurrency} at a time on {cpus:g} CPUs\n")
    common.print_table(
        ["figure", "value"],
        [["Ray start-up s", startup], ["sweep wall s (Ray up)", run.seconds],
         ["sum of trial training+eval s", float(trials["seconds"].sum())],
         ["ideal wall s (sum / concurrency)", ideal],
         ["overhead per trial s", per_trial],
         ["wall / ideal, Ray start excluded", without],
         ["wall / ideal, Ray start included", with_startup],
         [f"target <= {TARGET} (excluded) met", "yes" if without <= TARGET else "NO"]])
    common.emit("sweep_overhead",
                {"quick": args.quick, "trials": len(trials), "epochs": args.epochs,
                 "train_images": len(data.train_labels), "concurrency": concurrency,
                 "ray_startup_seconds": startup, "sweep_seconds": run.seconds,
                 "training_seconds": float(trials["seconds"].sum()), "ideal_seconds": ideal,
                 "overhead_per_trial_seconds": per_trial, "ratio_excluding_startup": without,
                 "ratio_including_startup": with_startup, "target": TARGET,
                 "statuses": run.summary.statuses}, args.json_path)


if __name__ == "__main__":
    main()

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
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "deep_cnn_bn"],
                   help="mlp: ~2 s epochs, where fixed per-trial costs show most; cnn: ~30 s")
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden units")
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    if args.quick:
        args.epochs = 1
    spec = {"name": "sweep_overhead",
            "trial": {"model": args.model, "hidden_sizes": [args.hidden], "optimizer": "adam",
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
        records = common.ray_epoch_records(run.summary.experiment_uri)
    trials = run.trials
    concurrency = min(len(trials), math.floor(cpus / spec["resources"]["cpu"]))
    training = float(trials["seconds"].sum())
    ideal = training / concurrency
    without, with_startup = run.seconds / ideal, (startup + run.seconds) / ideal
    per_trial = (run.seconds * concurrency - training) / len(trials)
    # Where the overhead goes: inside the trials (setup, checkpoints, waiting on the driver
    # between epochs) or between them (starting or resetting actors, Tune's bookkeeping).
    in_trials = float(records.groupby("trial_id")["time_total_s"].max().sum()) - training
    between = run.seconds * concurrency - training - in_trials
    # Fixed costs of the sweep as a whole, to Ray's whole-second timestamps.
    to_first = records["timestamp"].min() - run.started_at
    after_last = run.ended_at - records["timestamp"].max()

    model = f"mlp {args.hidden}" if args.model == "mlp" else args.model
    print(f"\n{len(trials)} trials x {args.epochs} epoch(s), {model}, "
          f"{len(data.train_labels)} training images, {concurrency} at a time on {cpus:g} CPUs\n")
    common.print_table(
        ["figure", "value"],
        [["Ray start-up s", startup], ["sweep wall s (Ray up)", run.seconds],
         ["sum of trial training+eval s", training],
         ["ideal wall s (sum / concurrency)", ideal],
         ["overhead per trial s", per_trial],
         ["  of which inside trials s", in_trials / len(trials)],
         ["  of which between trials s", between / len(trials)],
         ["sweep start to first epoch reported s (+-1)", to_first],
         ["last epoch reported to sweep end s (+-1)", after_last],
         ["wall / ideal, Ray start excluded", without],
         ["wall / ideal, Ray start included", with_startup],
         [f"target <= {TARGET} (excluded) met", "yes" if without <= TARGET else "NO"]])
    common.emit("sweep_overhead",
                {"quick": args.quick, "model": model, "trials": len(trials),
                 "epochs": args.epochs,
                 "train_images": len(data.train_labels), "concurrency": concurrency,
                 "ray_startup_seconds": startup, "sweep_seconds": run.seconds,
                 "training_seconds": training, "ideal_seconds": ideal,
                 "overhead_per_trial_seconds": per_trial,
                 "inside_trials_per_trial_seconds": in_trials / len(trials),
                 "between_trials_per_trial_seconds": between / len(trials),
                 "start_to_first_epoch_seconds": to_first,
                 "last_epoch_to_end_seconds": after_last,
                 "ratio_excluding_startup": without,
                 "ratio_including_startup": with_startup, "target": TARGET,
                 "statuses": run.summary.statuses}, args.json_path)


if __name__ == "__main__":
    main()

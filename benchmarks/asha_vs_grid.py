"""Trial-epochs ASHA spends to match the full grid's best validation accuracy.

Both sweeps run the same grid (learning rate x optimizer, an MLP, 9 epochs); the second adds
the ASHA scheduler (grace 1 epoch, reduction factor 3). "Epochs to target" counts the
trial-epochs a sweep had finished, in wall-clock order, when one of its trials first came
within 0.5 points of the grid's best validation accuracy. The order comes from Ray's
`result.json` timestamps (whole seconds; epochs finished in the same second all count).
Target: ASHA's epochs to target <= 1/3 of the grid's trial-epochs.

    .venv/bin/python benchmarks/asha_vs_grid.py [--quick]
"""

from __future__ import annotations

import common

TARGET = 1 / 3
TOLERANCE = 0.005  # 0.5 points of accuracy


def epochs_to_reach(uri: str, accuracy: float) -> int | None:
    """Trial-epochs finished (ties included) when any trial first reached `accuracy`."""
    done = common.ray_epoch_records(uri).sort_values("timestamp")
    hits = done[done["val_accuracy"] >= accuracy]
    if hits.empty:
        return None
    return int((done["timestamp"] <= hits["timestamp"].iloc[0]).sum())


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--lrs", nargs="+", type=float,
                   default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2])
    p.add_argument("--optimizers", nargs="+", default=["adam", "sgd_momentum", "rmsprop"])
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden units")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    if args.quick:
        args.epochs, args.lrs, args.optimizers = 3, [1e-3, 1e-2], ["adam", "sgd_momentum"]
    base = {"name": "asha_vs_grid_grid",
            "trial": {"model": "mlp", "hidden_sizes": [args.hidden], "epochs": args.epochs,
                      "batch_size": args.batch_size, "device": "cpu"},
            "axes": {"lr": args.lrs, "optimizer": args.optimizers},
            "resources": {"cpu": 1}}
    asha = {**base, "name": "asha_vs_grid_asha",
            "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 3}}
    with common.scratch(args.storage) as work:
        data = common.load_data(args.quick, args.data_dir, work)
        with common.local_ray(args.num_cpus):
            runs = {"grid": common.run_spec(base, data, work),
                    "asha": common.run_spec(asha, data, work)}
        best = float(runs["grid"].trials["best_val_accuracy"].max())
        rows, payload = [], {}
        grid_epochs = int(runs["grid"].trials["epochs_run"].sum())
        for name, run in runs.items():
            spent = int(run.trials["epochs_run"].sum())
            reached = epochs_to_reach(run.summary.experiment_uri, best - TOLERANCE)
            share = reached / grid_epochs if reached is not None else None
            statuses = run.trials["status"].value_counts().to_dict()
            rows.append([name, len(run.trials), spent, run.seconds,
                         float(run.trials["best_val_accuracy"].max()),
                         "not reached" if reached is None else reached,
                         "-" if share is None else share,
                         ", ".join(f"{k} {v}" for k, v in statuses.items())])
            payload[name] = {"trials": len(run.trials), "trial_epochs": spent,
                             "seconds": run.seconds,
                             "best_val_accuracy": float(run.trials["best_val_accuracy"].max()),
                             "epochs_to_target": reached, "share_of_grid": share,
                             "statuses": statuses}
    ratio = payload["asha"]["share_of_grid"]
    met = ratio is not None and ratio <= TARGET
    print(f"\nMLP {args.hidden}, lr {args.lrs} x optimizer {args.optimizers}, "
          f"{args.epochs} epochs, {len(data.train_labels)} training images; grid best val "
          f"accuracy {best:.4f}, target {best - TOLERANCE:.4f}\n")
    common.print_table(["sweep", "trials", "trial-epochs", "wall s", "best val acc",
                        "epochs to target", "/ grid trial-epochs", "statuses"], rows)
    print(f"\nASHA epochs to target / grid trial-epochs <= {TARGET:.3f}: "
          f"{'yes' if met else 'NO'}")
    common.emit("asha_vs_grid",
                {"quick": args.quick, "epochs": args.epochs, "lrs": args.lrs,
                 "optimizers": args.optimizers, "grid_best_val_accuracy": best,
                 "target_accuracy": best - TOLERANCE, "grid_trial_epochs": grid_epochs,
                 "ratio": ratio, "target": TARGET, "sweeps": payload}, args.json_path)


if __name__ == "__main__":
    main()

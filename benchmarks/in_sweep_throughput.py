"""Training images/s of each architecture inside a real sweep, over a bare PyTorch loop.

Both sides train the same model with the same settings on one thread and the CPU: the sweep
gives each trial one CPU (`torch.set_num_threads(1)`) and runs one trial at a time, so the
trial has a core to itself as the bare loop does. The in-sweep figure is `epochs.parquet`'s
`images_per_second` (training only, evaluation and checkpoints excluded), as is the bare
loop's. The ratio is shown over all epochs and, from 2 epochs on, without epoch 1, whose
figure includes warm-up (and, for the sweep's first trial, may overlap Ray's start-up work).
Target: in-sweep / bare >= 0.95 for every architecture.

    .venv/bin/python benchmarks/in_sweep_throughput.py [--quick]
"""

from __future__ import annotations

from statistics import mean

import common

from fmnist_ray.config import TrialConfig
from fmnist_ray.training.loop import train_trial

ARCHITECTURES = ("mlp", "cnn", "deep_cnn_bn")
TARGET = 0.95


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=2,
                   help="epochs per run; from 2 on, a steady-state ratio leaves epoch 1 out")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--with-train-trial", action="store_true",
                   help="also time training.loop.train_trial without Ray (loop overhead)")
    args = p.parse_args()
    base = {"optimizer": "adam", "lr": 1e-3, "batch_size": args.batch_size,
            "epochs": args.epochs, "seed": 0, "device": "cpu"}
    rates: dict[str, dict[str, list[float]]] = {"bare": {}, "train_trial": {}, "sweep": {}}
    with common.scratch(args.storage) as work:
        data = common.load_data(args.quick, args.data_dir, work)
        for arch in ARCHITECTURES:
            config = TrialConfig(model=arch, **base)
            rates["bare"][arch] = common.bare_loop(config, data, threads=1)
            if args.with_train_trial:
                history = train_trial(config, data, threads=1).history
                rates["train_trial"][arch] = [m.images_per_second for m in history]
        spec = {"name": "in_sweep_throughput", "trial": base,
                "variants": [{"name": arch, "model": arch} for arch in ARCHITECTURES],
                "resources": {"cpu": 1}, "max_concurrent_trials": 1}
        with common.local_ray(args.num_cpus):
            run = common.run_spec(spec, data, work)
    by_variant = dict(zip(run.trials["trial_id"], run.trials["variant"], strict=True))
    epochs = run.epochs.assign(variant=run.epochs["trial_id"].map(by_variant))
    for arch, group in epochs.sort_values("epoch").groupby("variant"):
        rates["sweep"][arch] = group["images_per_second"].tolist()

    steady = args.epochs >= 2
    rows, payload = [], {}
    for arch in ARCHITECTURES:
        bare, sweep = rates["bare"][arch], rates["sweep"][arch]
        ratio = mean(sweep) / mean(bare)
        ratio_steady = mean(sweep[1:]) / mean(bare[1:]) if steady else None
        row = [arch, mean(bare)]
        if args.with_train_trial:
            row.append(mean(rates["train_trial"][arch]))
        row += [mean(sweep), ratio] + ([ratio_steady] if steady else [])
        rows.append([*row, "yes" if ratio >= TARGET else "NO"])
        payload[arch] = {"bare_images_per_second": bare,
                         "train_trial_images_per_second": rates["train_trial"].get(arch),
                         "in_sweep_images_per_second": sweep, "ratio": ratio,
                         "ratio_after_epoch_1": ratio_steady}
    headers = ["model", "bare img/s"]
    headers += ["train_trial img/s"] if args.with_train_trial else []
    headers += ["in-sweep img/s", "in-sweep / bare"]
    headers += ["same, epochs >= 2"] if steady else []
    print(f"\n{len(data.train_labels)} training images, batch {args.batch_size}, "
          f"{args.epochs} epoch(s), 1 thread; img/s: mean over epochs\n")
    common.print_table([*headers, f">= {TARGET}"], rows)
    common.emit("in_sweep_throughput",
                {"quick": args.quick, "epochs": args.epochs, "batch_size": args.batch_size,
                 "train_images": len(data.train_labels), "target": TARGET,
                 "models": payload}, args.json_path)


if __name__ == "__main__":
    main()

"""Training images/s of each architecture inside a real sweep, over a bare PyTorch loop.

Both sides train the same model with the same settings on one thread: the sweep gives each
trial one CPU (`torch.set_num_threads(1)`) and runs one trial at a time, so the trial has a
core to itself as the bare loop does. Target: in-sweep / bare >= 0.95 for every architecture.

    .venv/bin/python benchmarks/in_sweep_throughput.py [--quick]
"""

from __future__ import annotations

from statistics import mean

import common

from fmnist_ray.config import TrialConfig
from fmnist_ray.train import train_trial

ARCHITECTURES = ("mlp", "cnn", "deep_cnn_bn")
TARGET = 0.95


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--with-train-trial", action="store_true",
                   help="also time fmnist_ray.train.train_trial without Ray (loop overhead)")
    args = p.parse_args()
    base = {"optimizer": "adam", "lr": 1e-3, "batch_size": args.batch_size,
            "epochs": args.epochs, "seed": 0, "device": "cpu"}
    with common.scratch(args.storage) as work:
        data = common.load_data(args.quick, args.data_dir, work)
        bare, loop = {}, {}
        for arch in ARCHITECTURES:
            config = TrialConfig(model=arch, **base)
            bare[arch] = mean(common.bare_loop(config, data, threads=1))
            if args.with_train_trial:
                history = train_trial(config, data, threads=1).history
                loop[arch] = mean(m.images_per_second for m in history)
        spec = {"name": "in_sweep_throughput", "trial": base,
                "variants": [{"name": arch, "model": arch} for arch in ARCHITECTURES],
                "resources": {"cpu": 1}, "max_concurrent_trials": 1}
        with common.local_ray(args.num_cpus):
            run = common.run_spec(spec, data, work)
    by_variant = dict(zip(run.trials["trial_id"], run.trials["variant"], strict=True))
    epochs = run.epochs.assign(variant=run.epochs["trial_id"].map(by_variant))
    in_sweep = epochs.groupby("variant")["images_per_second"].mean().to_dict()

    rows, payload = [], {}
    for arch in ARCHITECTURES:
        ratio = in_sweep[arch] / bare[arch]
        row = [arch, bare[arch]]
        if args.with_train_trial:
            row.append(loop[arch])
        rows.append([*row, in_sweep[arch], ratio, "yes" if ratio >= TARGET else "NO"])
        payload[arch] = {"bare_images_per_second": bare[arch],
                         "train_trial_images_per_second": loop.get(arch),
                         "in_sweep_images_per_second": in_sweep[arch], "ratio": ratio}
    headers = ["model", "bare img/s"] + (["train_trial img/s"] if args.with_train_trial else [])
    print(f"\n{len(data.train_labels)} training images, batch {args.batch_size}, "
          f"{args.epochs} epoch(s), 1 thread\n")
    common.print_table([*headers, "in-sweep img/s", "in-sweep / bare", f">= {TARGET}"], rows)
    common.emit("in_sweep_throughput",
                {"quick": args.quick, "epochs": args.epochs, "batch_size": args.batch_size,
                 "train_images": len(data.train_labels), "target": TARGET,
                 "models": payload}, args.json_path)


if __name__ == "__main__":
    main()

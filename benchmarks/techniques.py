"""Training images/s of each technique the `auto` settings choose between, on this machine.

For each convolutional model: contiguous vs channels_last memory format (fp32), fp32 vs bf16
autocast (channels_last), and 1 vs 2 threads. Each figure is `fmnist_ray.training.loop.
measure_throughput` (training steps only, after one warm-up batch) on the real data, one
process, no Ray. `auto` should pick the fastest: the last column says what it picks here.

    .venv/bin/python benchmarks/techniques.py [--quick]
"""

from __future__ import annotations

import common
import torch

from fmnist_ray.config import TrialConfig
from fmnist_ray.training.loop import measure_throughput, resolve_memory_format, resolve_precision

MODELS = {"cnn": {}, "deep_cnn_bn": {}, "resnet": {"width": 16, "depth": 2}}


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=30, help="timed batches per figure")
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    batches = 3 if args.quick else args.batches
    rows, payload = [], {}
    cpu = torch.device("cpu")
    with common.scratch(args.storage) as work:
        data = common.load_data(args.quick, args.data_dir, work)
        for model, options in MODELS.items():
            base = TrialConfig(model=model, batch_size=args.batch_size, device="cpu", **options)

            def rate(threads: int = 1, base=base, **update) -> float:
                config = base.model_copy(update=update)
                return measure_throughput(config, data, batches=batches, threads=threads)

            figures = {
                "contiguous fp32": rate(memory_format="contiguous", precision="fp32"),
                "channels_last fp32": rate(memory_format="channels_last", precision="fp32"),
                "channels_last bf16": rate(memory_format="channels_last", precision="bf16"),
                "channels_last fp32, 2 threads": rate(2, memory_format="channels_last",
                                                      precision="fp32"),
            }
            picks = (f"{resolve_memory_format(base, cpu)} "
                     f"{resolve_precision(base.precision, cpu)}")
            rows.append([model, *figures.values(),
                         figures["channels_last fp32"] / figures["contiguous fp32"], picks])
            payload[model] = {**figures, "auto": picks}
    torch.set_num_threads(1)
    print(f"\nbatch {args.batch_size}, {batches} timed batches, images/s\n")
    common.print_table(["model", "contiguous fp32", "channels_last fp32", "channels_last bf16",
                        "channels_last fp32 2 threads", "channels_last / contiguous",
                        "auto picks"], rows)
    common.emit("techniques", {"quick": args.quick, "batch_size": args.batch_size,
                               "batches": batches, "models": payload}, args.json_path)


if __name__ == "__main__":
    main()

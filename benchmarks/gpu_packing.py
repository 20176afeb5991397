"""Trials packed on one GPU: aggregate training images/s with 1, 2, 4, 8 and 16 at once.

For each model, one sweep per packing k: k trials (k learning rates) with `resources.gpu: 1/k`,
all on the one GPU. Aggregate images/s = images trained by all k trials / the sweep's wall time
(Ray already up); the speed-up is against k = 1. GPU memory per trial is the peak of the GPU's
used memory during the sweep, above what it used before, divided by k (read every 0.2 s with
`torch.cuda.mem_get_info`). On a machine without a CUDA GPU it says so on one line and exits 2.

    .venv/bin/python benchmarks/gpu_packing.py [--quick] [--models cnn deep_cnn_bn]
"""

from __future__ import annotations

import sys
import threading
import time

import torch


class PeakMemory:
    """The GPU's used memory, sampled in a thread; `peak` is the highest seen above `base`."""

    def __init__(self, every: float = 0.2):
        self.every, self.base, self.peak = every, self._used(), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _used() -> int:
        free, total = torch.cuda.mem_get_info()
        return total - free

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._used() - self.base)
            time.sleep(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    if not torch.cuda.is_available():
        print("gpu_packing: no CUDA GPU on this machine; run it where `nvidia-smi` lists one "
              "(figures from a CPU would mean nothing)", file=sys.stderr)
        raise SystemExit(2)
    import common
    import ray

    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["mlp", "cnn", "deep_cnn_bn"])
    p.add_argument("--packing", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    if args.quick:
        args.epochs, args.packing = 1, [1, 2]
    rows, results = [], []
    with common.scratch(args.storage) as work:
        data = common.load_data(args.quick, args.data_dir, work)
        with common.local_ray(args.num_cpus):
            cpus = ray.cluster_resources().get("CPU", 1)
            for model in args.models:
                single = None
                for k in args.packing:
                    spec = {"name": f"gpu_{model}_{k}",
                            "trial": {"model": model, "epochs": args.epochs, "device": "cuda",
                                      "batch_size": args.batch_size, "optimizer": "adam"},
                            "axes": {"lr": [round(1e-3 * (1 + i / k), 6) for i in range(k)]},
                            "resources": {"cpu": max(0.25, min(1.0, cpus / k)), "gpu": 1 / k}}
                    with PeakMemory() as memory:
                        run = common.run_spec(spec, data, work)
                    images = len(data.train_labels) * args.epochs * k
                    rate = images / run.seconds
                    single = single or rate
                    row = {"model": model, "trials": k, "wall_s": run.seconds,
                           "images_per_s": rate, "speedup": rate / single,
                           "gpu_mib_per_trial": memory.peak / k / 2**20}
                    results.append(row)
                    rows.append(list(row.values()))
    print(f"\n{torch.cuda.get_device_name()}, {args.epochs} epoch(s) per trial, batch "
          f"{args.batch_size}, {len(data.train_labels):,} training images\n")
    common.print_table(["model", "trials", "wall s", "images/s", "speed-up", "GPU MiB/trial"],
                       rows)
    common.emit("gpu_packing", {"device": torch.cuda.get_device_name(), "rows": results},
                args.json_path)


if __name__ == "__main__":
    main()

"""Each study model's training step against this machine's one-thread matmul peak.

For each model of the study at the batch sizes its sweeps use: the FLOPs of one training step
(forward and backward, counted by `torch.utils.flop_counter`: matmuls and convolutions; the
optimizer's elementwise update is not counted), the step's time (`fmnist_ray.training.loop.
measure_throughput`: index, scale, forward, loss, backward, optimizer step; one thread, the
precision and memory format `auto` picks), and the GFLOP/s that makes. Beside them, the peak:
1024 x 1024 matmuls on one thread in bf16 and in fp32, measured in the same run.

    .venv/bin/python benchmarks/achieved_peak.py [--quick]
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import common
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import fmnist_ray
from fmnist_ray.config import TrialConfig
from fmnist_ray.training.loop import (
    build_trial_model,
    measure_throughput,
    resolve_memory_format,
    resolve_precision,
)

# (name, model options, batch sizes): the models of sweeps/*.yaml at the batch sizes they run.
CASES = (
    ("mlp 256-128", {"model": "mlp", "hidden_sizes": [256, 128]}, (16, 64, 512)),
    ("mlp 3x512", {"model": "mlp", "hidden_sizes": [512, 512, 512]}, (64,)),
    ("cnn", {"model": "cnn"}, (64,)),
    ("deep_cnn_bn", {"model": "deep_cnn_bn", "dropout": 0.3}, (64, 128, 256)),
    ("resnet w16 d2", {"model": "resnet", "width": 16, "depth": 2, "dropout": 0.1}, (128,)),
)
PEAK_SIZE = 1024


def step_flops(config: TrialConfig) -> int:
    """FLOPs of one training step's forward and backward at `config.batch_size`."""
    model = build_trial_model(config)
    x = torch.randn(config.batch_size, 1, 28, 28)
    y = torch.randint(10, (config.batch_size,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, seconds: float = 1.0) -> float:
    """GFLOP/s of PEAK_SIZE-square matmuls on the current thread count: the best of 5 runs."""
    a, b = (torch.randn(PEAK_SIZE, PEAK_SIZE).to(dtype) for _ in range(2))
    out = torch.empty(PEAK_SIZE, PEAK_SIZE, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=out)
    tick = time.perf_counter()
    torch.mm(a, b, out=out)
    reps = max(3, int(seconds / 5 / max(time.perf_counter() - tick, 1e-6)))
    best = float("inf")
    for _ in range(5):
        tick = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        best = min(best, (time.perf_counter() - tick) / reps)
    return 2 * PEAK_SIZE ** 3 / best / 1e9


def code_version() -> str:
    """The commit of the fmnist_ray being measured (`+` when its tree has changes)."""
    root = Path(fmnist_ray.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "fmnist_ray"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(root)
    return commit + ("+" if dirty else "")


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=6_000,
                   help="training images timed per figure (at least 10 batches)")
    args = p.parse_args()
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    peaks = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    rows, results = [], []
    with common.scratch(args.storage) as work:
        data = common.load_data(args.quick, args.data_dir, work)
        for name, options, batch_sizes in CASES:
            for batch in batch_sizes:
                config = TrialConfig(batch_size=batch, device="cpu", **options)
                batches = 3 if args.quick else max(10, args.images // batch)
                rate = measure_throughput(config, data, batches=batches, threads=1)
                flops = step_flops(config)
                gflops = flops / batch * rate / 1e9
                precision = resolve_precision(config.precision, cpu)
                layout = resolve_memory_format(config, cpu)
                rows.append([name, batch, f"{precision} {layout}", flops / batch / 1e6,
                             1000 * batch / rate, rate, gflops, gflops / peaks[precision]])
                results.append({"model": name, "batch_size": batch, "precision": precision,
                                "memory_format": layout, "mflop_per_image": flops / batch / 1e6,
                                "step_ms": 1000 * batch / rate, "images_per_second": rate,
                                "gflops": gflops, "of_peak": gflops / peaks[precision]})
    version = code_version()
    print(f"\nfmnist_ray {version}; one thread; peak {PEAK_SIZE}x{PEAK_SIZE} matmul: "
          f"bf16 {peaks['bf16']:.1f} GFLOP/s, fp32 {peaks['fp32']:.1f} GFLOP/s\n")
    common.print_table(["model", "batch", "precision", "MFLOP/image", "step ms", "images/s",
                        "GFLOP/s", "of its peak"], rows)
    common.emit("achieved_peak", {"quick": args.quick, "code": version,
                                  "peak_gflops": peaks, "cases": results}, args.json_path)


if __name__ == "__main__":
    main()

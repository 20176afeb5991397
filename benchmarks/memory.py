"""Memory of a sweep with 2 concurrent trials: the dataset is stored once per node, not per trial.

While the sweep runs, a driver thread samples every trial worker process (the `ray::
ImplicitFunc` processes under this driver; `/proc/PID/smaps` through psutil) and Ray's object
store. RSS counts the pages of the shared object store a worker has touched; USS is what the
process alone holds; PSS shares shared pages out among the processes mapping them. The
object store should hold about one dataset (not one per trial).

    .venv/bin/python benchmarks/memory.py [--quick]
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict

import common
import psutil
import ray

MIB = 2**20


class Sampler(threading.Thread):
    """Peak memory of this driver's trial workers and of the object store, every `every` s."""

    def __init__(self, every: float = 0.2):
        super().__init__(daemon=True)
        self.every = every
        self.stopped = threading.Event()
        self.workers: dict[int, dict[str, int]] = defaultdict(dict)
        self.store_bytes = self.store_objects = 0
        self.store_error: str | None = None
        self.driver_rss = 0
        self.samples = 0

    def _store(self, state) -> None:
        from ray._private.internal_api import get_memory_info_reply

        stats = get_memory_info_reply(state).store_stats
        self.store_bytes = max(self.store_bytes, stats.object_store_bytes_used)
        self.store_objects = max(self.store_objects, stats.num_local_objects)

    def _workers(self) -> None:
        driver = psutil.Process(os.getpid())
        self.driver_rss = max(self.driver_rss, driver.memory_info().rss)
        for proc in driver.children(recursive=True):
            try:
                if "ImplicitFunc" not in " ".join(proc.cmdline()):
                    continue
                info = proc.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            peaks = self.workers[proc.pid]
            for key in ("rss", "uss", "pss", "shared"):
                peaks[key] = max(peaks.get(key, 0), getattr(info, key))

    def run(self) -> None:
        state = None
        try:  # Ray's private API: the `ray memory` command's source of numbers
            from ray._private.internal_api import get_state_from_address

            state = get_state_from_address(ray.get_runtime_context().gcs_address)
        except Exception as exc:  # a changed private API costs the store figure only
            self.store_error = f"{type(exc).__name__}: {exc}"
        while not self.stopped.wait(self.every):
            self._workers()
            if state is not None and self.store_error is None:
                try:
                    self._store(state)
                except Exception as exc:
                    self.store_error = f"{type(exc).__name__}: {exc}"
            self.samples += 1


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cnn", choices=["mlp", "cnn", "deep_cnn_bn"])
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    spec = {"name": "memory",
            "trial": {"model": args.model, "epochs": args.epochs, "device": "cpu"},
            "axes": {"lr": [1e-3, 3e-3]}, "resources": {"cpu": 1},
            "max_concurrent_trials": 2}
    with common.scratch(args.storage) as work:
        data = common.load_data(args.quick, args.data_dir, work)
        size = common.dataset_bytes(data)
        with common.local_ray(args.num_cpus):
            sampler = Sampler()
            sampler.start()
            try:
                run = common.run_spec(spec, data, work)
            finally:
                sampler.stopped.set()
                sampler.join()

    rows = [[f"trial worker {pid}", m["rss"] / MIB, m["uss"] / MIB, m["pss"] / MIB,
             m["shared"] / MIB] for pid, m in sorted(sampler.workers.items())]
    print(f"\n{len(run.trials)} trials of {args.model}, 2 at a time; {sampler.samples} samples;"
          f" dataset {size / MIB:.1f} MiB ({len(data.train_labels)} training images)\n")
    common.print_table(["process (peak)", "RSS MiB", "USS MiB", "PSS MiB", "shared MiB"], rows)
    store = ("unavailable: " + sampler.store_error if sampler.store_error else
             f"{sampler.store_bytes / MIB:.1f} MiB in {sampler.store_objects} object(s) = "
             f"{sampler.store_bytes / size:.2f} x the dataset")
    print(f"\nobject store peak: {store}")
    print(f"driver RSS peak: {sampler.driver_rss / MIB:.1f} MiB")
    common.emit("memory",
                {"quick": args.quick, "model": args.model, "dataset_bytes": size,
                 "object_store_bytes": sampler.store_bytes or None,
                 "object_store_objects": sampler.store_objects or None,
                 "object_store_error": sampler.store_error,
                 "driver_rss_bytes": sampler.driver_rss, "samples": sampler.samples,
                 "trial_workers": {str(pid): m for pid, m in sampler.workers.items()}},
                args.json_path)


if __name__ == "__main__":
    main()

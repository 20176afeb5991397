"""Each study sweep's chosen configuration trained again with this checkout, against the study.

The chosen trial comes from `reports/study-<sweep>.findings.json`; its configuration's trials in
`reports/data/<sweep>/trials.parquet` are the study's figures. Each seed asked for is trained at
full length (`train_trial`, one process per seed, `--parallel` at a time) and its test accuracy
set against the study's: the mean of the new seeds, whether it lies inside the chosen
configuration's interval on the study page, and the difference of means with its 95% Welch
interval over seeds. With `--json FILE`, the seeds of earlier runs in FILE count too.

    .venv/bin/python benchmarks/chosen_accuracy.py --json benchmarks/results-DATE.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import common
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parent.parent
SWEEPS = ("batch_size", "learning_rate", "optimizer", "architecture", "depth")
CONFIG_KEYS = ("model", "hidden_sizes", "width", "depth", "dropout", "optimizer", "lr",
               "momentum", "weight_decay", "schedule", "warmup_epochs", "label_smoothing", "ema",
               "augment_crop", "augment_flip", "augment_erasing", "batch_size", "epochs",
               "normalize", "precision", "memory_format")


def _plain(value):
    if isinstance(value, str) and value[:1].isdigit():
        return [int(size) for size in value.split("-")]
    return value.tolist() if hasattr(value, "tolist") else value


def chosen(sweep: str) -> tuple[dict, list[float], list[float]]:
    """The chosen configuration, its trials' test accuracies and the page's interval."""
    found = json.loads((REPO / "reports" / f"study-{sweep}.findings.json").read_text())["chosen"]
    trials = pd.read_parquet(REPO / "reports" / "data" / sweep / "trials.parquet")
    row = trials[trials.trial_id == found["trial_id"]].iloc[0]
    config = {k: _plain(row[k]) for k in CONFIG_KEYS}
    same = trials[[all(_plain(r[k]) == v for k, v in config.items())
                   for _, r in trials.iterrows()]]
    return config, same.test_accuracy.dropna().tolist(), found["interval"]


def child(config_json: str, seed: int, threads: int) -> None:
    from fmnist_ray.config import TrialConfig
    from fmnist_ray.training.data import load_fashion_mnist
    from fmnist_ray.training.loop import NUMERICS_VERSION, train_trial

    config = TrialConfig(**{**json.loads(config_json), "seed": seed, "device": "cpu"})
    result = train_trial(config, load_fashion_mnist(download=False), threads=threads)
    print(json.dumps({"test_accuracy": result.best.test_accuracy, "seconds": result.seconds,
                      "numerics": NUMERICS_VERSION}))


def train_seeds(jobs: list[tuple[str, dict, int]], parallel: int, threads: int) -> list[dict]:
    """Each (sweep, config, seed) in its own process, `parallel` at a time."""
    done, running = [], []
    pending = list(jobs)
    while pending or running:
        while pending and len(running) < parallel:
            sweep, config, seed = pending.pop(0)
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", json.dumps(config), "--seed", str(seed),
                 "--threads", str(threads)], env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            running.append((sweep, seed, proc))
        sweep, seed, proc = running.pop(0)
        stdout, stderr = proc.communicate()
        if proc.returncode:
            sys.exit(f"{sweep} seed {seed} failed:\n{stderr[-2000:]}")
        outcome = json.loads(stdout.strip().splitlines()[-1])
        done.append({"sweep": sweep, "seed": seed, **outcome})
        print(f"{sweep} seed {seed}: test accuracy {outcome['test_accuracy']:.4f} "
              f"({outcome['seconds']:.0f} s)", flush=True)
    return done


def earlier(path: str | None) -> list[dict]:
    if not path or not Path(path).exists():
        return []
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [s for line in lines if line.get("benchmark") == "chosen_accuracy"
            for s in line["seeds"]]


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--sweeps", nargs="+", default=list(SWEEPS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--parallel", type=int, default=2, help="seeds trained at a time")
    p.add_argument("--threads", type=int, default=1, help="threads per seed")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.seed, args.threads)
        return
    study = {sweep: chosen(sweep) for sweep in args.sweeps}
    jobs, trained = [], {}
    for sweep, (config, _, _) in study.items():
        key = json.dumps(config, sort_keys=True)
        for seed in args.seeds:
            if (key, seed) not in trained:  # two sweeps may choose the same configuration
                trained[key, seed] = sweep
                jobs.append((sweep, config, seed))
    seeds = train_seeds(jobs, args.parallel, args.threads)
    for s in seeds:
        s["config"] = json.dumps(study[s["sweep"]][0], sort_keys=True)
    pool = seeds + earlier(args.json_path)
    rows = []
    for sweep, (config, before, interval) in study.items():
        key = json.dumps(config, sort_keys=True)
        new = {s["seed"]: s["test_accuracy"] for s in pool if s["config"] == key}
        after = list(new.values())
        mean_b, mean_a = sum(before) / len(before), sum(after) / len(after)
        if len(after) > 1 and len(before) > 1:
            welch = stats.ttest_ind(after, before, equal_var=False)
            low, high = welch.confidence_interval(0.95)
            diff = f"{100 * (mean_a - mean_b):+.2f} ({100 * low:+.2f} to {100 * high:+.2f})"
        else:
            diff = f"{100 * (mean_a - mean_b):+.2f}"
        inside = interval[0] <= mean_a <= interval[1]
        rows.append([sweep, len(before), mean_b, f"{interval[0]:.4f}-{interval[1]:.4f}",
                     len(after), mean_a, "yes" if inside else "NO", diff])
    print("\ntest accuracy of each sweep's chosen configuration: the study's seeds against "
          "this checkout's\n")
    common.print_table(["sweep", "study seeds", "study mean", "page interval", "new seeds",
                        "new mean", "inside", "new - study, points (95% Welch)"], rows)
    common.emit("chosen_accuracy", {"seeds": seeds, "summary": [
        dict(zip(["sweep", "study_seeds", "study_mean", "interval", "new_seeds", "new_mean",
                  "inside", "difference_points"], r, strict=True)) for r in rows]},
        args.json_path)


if __name__ == "__main__":
    main()

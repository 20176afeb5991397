"""One epoch of each configuration the study trains, by two checkouts side by side, and the
study's trial time projected from them.

For every configuration of the study sweeps' exports (`reports/data/<sweep>/trials.parquet`)
that differs in what it costs (model and its options, optimizer, batch size, augmentation,
precision; not seed or learning rate), one epoch is trained (`train_trial`, seed 0, one thread,
the full dataset) by this checkout and by `--before DIR` at the same time, each in a fresh
process on its own core: the two share the machine as a sweep's two trials do. Per sweep, the
projection is the sum over its trials of epochs run x (training + evaluation seconds of one
epoch), halved for two trials at a time: a projection, not a measured sweep.

    git worktree add /tmp/before COMMIT
    .venv/bin/python benchmarks/study_epochs.py --before /tmp/before
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

REPO = Path(__file__).resolve().parent.parent
SWEEPS = ("batch_size", "learning_rate", "optimizer", "architecture", "depth")
# Settings that change what an epoch costs; the rest (seed, lr, ...) are taken from one trial.
COST_KEYS = ("model", "hidden_sizes", "width", "depth", "dropout", "optimizer", "batch_size",
             "augment_crop", "augment_flip", "augment_erasing", "ema", "precision",
             "memory_format", "device")
CONFIG_KEYS = COST_KEYS + ("lr", "momentum", "weight_decay", "schedule", "warmup_epochs",
                           "label_smoothing", "normalize")


def trial_rows(sweeps: list[str]) -> pd.DataFrame:
    frames = []
    for sweep in sweeps:
        trials = pd.read_parquet(REPO / "reports" / "data" / sweep / "trials.parquet")
        frames.append(trials.assign(sweep=sweep))
    rows = pd.concat(frames, ignore_index=True)
    rows["cost_key"] = [json.dumps({k: _plain(r[k]) for k in COST_KEYS}, sort_keys=True)
                        for _, r in rows.iterrows()]
    return rows


def _plain(value):
    """A parquet cell as JSON: numpy scalars as Python ones, "256-128" as [256, 128]."""
    if isinstance(value, str) and value[:1].isdigit():
        return [int(size) for size in value.split("-")]
    return value.tolist() if hasattr(value, "tolist") else value


def child(config_json: str, data_dir: str | None) -> None:
    """Train one epoch in this process and print its timings as one JSON line."""
    from fmnist_ray.config import TrialConfig
    from fmnist_ray.training.data import load_fashion_mnist
    from fmnist_ray.training.loop import train_trial

    config = TrialConfig(**{**json.loads(config_json), "epochs": 1, "seed": 0, "device": "cpu"})
    data = load_fashion_mnist(data_dir, download=False)
    result = train_trial(config, data, threads=1)
    epoch = result.history[0]
    print(json.dumps({"train_s": epoch.epoch_seconds, "eval_s": epoch.eval_seconds,
                      "trial_s": result.seconds, "val_accuracy": epoch.val_accuracy,
                      "test_accuracy": result.best.test_accuracy}))


def run_pair(config: dict, before: Path, data_dir: str | None) -> dict[str, dict]:
    """The same epoch by both checkouts at once, each in a fresh process."""
    procs = {}
    for side, root in (("before", before), ("after", REPO)):
        env = {**os.environ, "PYTHONPATH": str(root)}
        command = [sys.executable, __file__, "--child", json.dumps(config)]
        if data_dir:
            command += ["--data-dir", data_dir]
        procs[side] = subprocess.Popen(command, cwd=root, env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = {}
    for side, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode:
            sys.exit(f"{side} failed on {config}:\n{stderr[-2000:]}")
        out[side] = json.loads(stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--before", required=False, help="an earlier checkout (git worktree)")
    p.add_argument("--sweeps", nargs="+", default=list(SWEEPS))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.data_dir)
        return
    if not args.before:
        p.error("--before DIR is required")
    rows = trial_rows(args.sweeps)
    firsts = rows.drop_duplicates("cost_key")
    if args.quick:
        firsts = firsts[firsts.model == "mlp"].head(2)
    timed = {}
    table = []
    for _, row in firsts.iterrows():
        config = {k: _plain(row[k]) for k in CONFIG_KEYS}
        pair = run_pair(config, Path(args.before), args.data_dir)
        timed[row.cost_key] = pair
        b, a = pair["before"], pair["after"]
        name = row.variant if isinstance(row.get("variant"), str) else row.model
        epoch_b, epoch_a = b["train_s"] + b["eval_s"], a["train_s"] + a["eval_s"]
        table.append([row.sweep, name, row.optimizer, row.batch_size, b["train_s"], a["train_s"],
                      b["eval_s"], a["eval_s"], epoch_b / epoch_a,
                      "same" if (b["val_accuracy"], b["test_accuracy"]) ==
                      (a["val_accuracy"], a["test_accuracy"]) else
                      f"{b['test_accuracy']:.4f} / {a['test_accuracy']:.4f}"])
        print(*table[-1], flush=True)
    sweeps = []
    for sweep in args.sweeps:
        trials = rows[(rows.sweep == sweep) & rows.cost_key.isin(timed)]
        seconds = {side: sum(t.epochs_run * (timed[t.cost_key][side]["train_s"] +
                                             timed[t.cost_key][side]["eval_s"])
                             for _, t in trials.iterrows()) / 2 for side in ("before", "after")}
        sweeps.append([sweep, len(trials), int(trials.epochs_run.sum()), seconds["before"],
                       seconds["after"], seconds["before"] / max(seconds["after"], 1e-9)])
    total_b, total_a = sum(s[3] for s in sweeps), sum(s[4] for s in sweeps)
    sweeps.append(["all", sum(s[1] for s in sweeps), sum(s[2] for s in sweeps), total_b,
                   total_a, total_b / total_a])
    print("\none epoch (seed 0, one thread), before and after side by side, seconds\n")
    common.print_table(["sweep", "config", "optimizer", "batch", "train before", "train after",
                        "eval before", "eval after", "epoch speed-up",
                        "val/test accuracy (before / after)"], table)
    print("\nprojected: trials' epochs x one epoch's seconds / 2 trials at a time\n")
    common.print_table(["sweep", "trials", "trial-epochs", "before s", "after s", "speed-up"],
                       sweeps)
    common.emit("study_epochs", {"quick": args.quick, "before": str(args.before),
                                 "configs": [dict(zip(["sweep", "config", "optimizer", "batch",
                                                       "train_before", "train_after",
                                                       "eval_before", "eval_after", "speedup",
                                                       "accuracy"], r, strict=True))
                                             for r in table],
                                 "projection": [dict(zip(["sweep", "trials", "trial_epochs",
                                                          "before_s", "after_s", "speedup"], s,
                                                         strict=True)) for s in sweeps]},
                args.json_path)


if __name__ == "__main__":
    main()

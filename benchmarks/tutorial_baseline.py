"""The same sweep run the way the PyTorch + Ray Tune tutorial writes it, and with fmnist-ray.

The tutorial way ("Hyperparameter tuning with Ray Tune", pytorch.org/tutorials): each trial
builds torchvision's `FashionMNIST` with `ToTensor` + `Normalize` transforms, splits off a
validation set with `random_split`, iterates `DataLoader`s (`num_workers=8` as the tutorial
writes it; `--num-workers` changes it), and saves a pickled checkpoint every epoch through
`tune.report(..., checkpoint=Checkpoint.from_directory(...))`; `tune.Tuner` keeps its defaults
apart from one CPU per trial. The fmnist-ray way is what `fmnist-ray sweep --quiet` runs.
Both train the same models (`training.models`) with Adam, batch 64, on the same learning-rate
grid and epochs, each sweep in a fresh process. Targets on 2 cores: the fmnist-ray sweep takes
>= 3x less wall time for the CNN and >= 4x less for the MLP (4 learning rates).

    .venv/bin/python benchmarks/tutorial_baseline.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import ray.cloudpickle as pickle
import torch
import torchvision
import torchvision.transforms as transforms
from ray import tune
from torch import nn, optim
from torch.utils.data import DataLoader, random_split

from fmnist_ray.spec.file import parse_spec
from fmnist_ray.sweep import run_sweep
from fmnist_ray.training.data import PIXEL_MEAN, PIXEL_STD, VALIDATION_SIZE, load_fashion_mnist
from fmnist_ray.training.models import build_model

TARGETS = {"cnn": 3.0, "mlp": 4.0}
BATCH_SIZE = 64


def tutorial_trial(config, data_dir=None, num_workers=8):
    """One trial as the tutorial's `train_cifar`, on Fashion-MNIST and a project model."""
    net = build_model(config["model"])
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(net.parameters(), lr=config["lr"])
    checkpoint = tune.get_checkpoint()
    start_epoch = 0
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir, \
                open(Path(checkpoint_dir) / "data.pkl", "rb") as fp:
            state = pickle.load(fp)
            start_epoch = state["epoch"] + 1
            net.load_state_dict(state["net_state_dict"])
            optimizer.load_state_dict(state["optimizer_state_dict"])

    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((PIXEL_MEAN,), (PIXEL_STD,))])
    trainset = torchvision.datasets.FashionMNIST(root=data_dir, train=True, download=False,
                                                 transform=transform)
    # The project's split sizes (6,000 of 60k; 10% of a --quick subset), not the tutorial's 20%.
    val_size = VALIDATION_SIZE if len(trainset) == 60_000 else len(trainset) // 10
    train_subset, val_subset = random_split(trainset, [len(trainset) - val_size, val_size])
    trainloader = DataLoader(train_subset, batch_size=int(config["batch_size"]), shuffle=True,
                             num_workers=num_workers)
    valloader = DataLoader(val_subset, batch_size=int(config["batch_size"]), shuffle=True,
                           num_workers=num_workers)

    for epoch in range(start_epoch, config["epochs"]):
        net.train()
        for inputs, labels in trainloader:
            optimizer.zero_grad()
            loss = criterion(net(inputs), labels)
            loss.backward()
            optimizer.step()
        net.eval()
        val_loss, val_steps, total, correct = 0.0, 0, 0, 0
        with torch.no_grad():
            for inputs, labels in valloader:
                outputs = net(inputs)
                correct += (outputs.argmax(1) == labels).sum().item()
                total += labels.size(0)
                val_loss += criterion(outputs, labels).item()
                val_steps += 1
        checkpoint_data = {"epoch": epoch, "net_state_dict": net.state_dict(),
                           "optimizer_state_dict": optimizer.state_dict()}
        with tempfile.TemporaryDirectory() as checkpoint_dir:
            with open(Path(checkpoint_dir) / "data.pkl", "wb") as fp:
                pickle.dump(checkpoint_data, fp)
            tune.report({"loss": val_loss / val_steps, "accuracy": correct / total,
                         "threads": torch.get_num_threads()},
                        checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))


def run_tutorial(args) -> dict:
    """The tutorial's `main`: a Tuner over the grid, defaults apart from one CPU per trial."""
    trainable = tune.with_resources(
        tune.with_parameters(tutorial_trial, data_dir=args.torchvision_root,
                             num_workers=args.num_workers),
        resources={"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        param_space={"model": args.model, "lr": tune.grid_search(args.lrs),
                     "batch_size": BATCH_SIZE, "epochs": args.epochs},
        run_config=tune.RunConfig(storage_path=args.storage),  # default: ~/ray_results
    )
    results = tuner.fit()
    best = results.get_best_result()
    return {"trials": len(results), "errors": len(results.errors),
            "best_val_accuracy": best.metrics["accuracy"], "threads": best.metrics["threads"]}


def run_fmnist_ray(args) -> dict:
    """What `fmnist-ray sweep SPEC --quiet` does: load the data, then the sweep."""
    data = load_fashion_mnist(args.idx_dir, download=False)
    spec = parse_spec({"name": f"tutorial_baseline_{args.model}",
                       "trial": {"model": args.model, "optimizer": "adam",
                                 "batch_size": BATCH_SIZE, "epochs": args.epochs,
                                 "device": "cpu"},
                       "axes": {"lr": args.lrs}, "resources": {"cpu": 1}}, "<benchmark>")
    summary = run_sweep(spec, data, args.storage)
    return {"trials": sum(summary.statuses.values()), "errors": len(summary.errors),
            "best_val_accuracy": summary.best["best_val_accuracy"] if summary.best else None}


def child(args) -> None:
    """One sweep in this fresh process; its timings go out as the last line of stdout."""
    began = time.perf_counter()
    with common.local_ray(args.num_cpus):
        ray_up = time.perf_counter()
        outcome = run_tutorial(args) if args.child == "tutorial" else run_fmnist_ray(args)
        done = time.perf_counter()
    print(json.dumps({**outcome, "ray_start_seconds": ray_up - began,
                      "sweep_seconds": done - ray_up}))


def run_child(harness: str, model: str, args, idx_dir: Path, root: Path, storage: Path):
    """Run one sweep in a child process; its own timings plus the whole process's wall time."""
    command = [sys.executable, __file__, "--child", harness, "--model", model,
               "--epochs", str(args.epochs), "--num-workers", str(args.num_workers),
               "--idx-dir", str(idx_dir), "--torchvision-root", str(root),
               "--storage", str(storage / f"{harness}-{model}"),
               "--lrs", *map(str, args.lrs)]
    if args.num_cpus:
        command += ["--num-cpus", str(args.num_cpus)]
    began = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - began
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        sys.exit(f"{harness} {model} failed (exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    outcome = json.loads(lines[-1])
    if outcome["errors"]:
        sys.exit(f"{harness} {model}: {outcome['errors']} trial(s) errored; rerun with "
                 f"--storage DIR and read the trials' error.txt there")
    return {**outcome, "process_seconds": wall}


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["cnn", "mlp"], choices=["cnn", "mlp"])
    p.add_argument("--lrs", nargs="+", type=float, default=[1e-3, 3e-3])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--num-workers", type=int, default=None,
                   help="DataLoader workers in the tutorial's trials (default: 8 as the "
                        "tutorial writes it; 1 with --quick)")
    # Child-process options (internal).
    p.add_argument("--child", choices=["tutorial", "fmnist-ray"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--idx-dir", help=argparse.SUPPRESS)
    p.add_argument("--torchvision-root", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if args.num_workers is None:
        args.num_workers = 1 if args.quick else 8
    if args.quick:
        args.epochs = 1

    with common.scratch(args.storage) as work:
        idx_dir = common.prepare_data_dir(args.quick, args.data_dir, work)
        root = common.torchvision_root(idx_dir, work / "torchvision")
        runs = {(h, m): run_child(h, m, args, idx_dir, root, work)
                for m in args.models for h in ("tutorial", "fmnist-ray")}

    rows, payload = [], {}
    for model in args.models:
        slow, fast = runs["tutorial", model], runs["fmnist-ray", model]
        ratio = slow["sweep_seconds"] / fast["sweep_seconds"]
        ratio_process = slow["process_seconds"] / fast["process_seconds"]
        for harness, run in (("tutorial", slow), ("fmnist-ray", fast)):
            rows.append([model, harness, run["trials"], run["process_seconds"],
                         run["ray_start_seconds"], run["sweep_seconds"],
                         run["best_val_accuracy"]])
        met = "yes" if ratio >= TARGETS[model] else "NO"
        rows.append([model, "tutorial / fmnist-ray", "", ratio_process, "", ratio,
                     f"target >= {TARGETS[model]:g}: {met}"])
        payload[model] = {"tutorial": slow, "fmnist_ray": fast, "ratio": ratio,
                          "ratio_process": ratio_process, "target": TARGETS[model]}
    print(f"\nlearning rates {args.lrs}, batch {BATCH_SIZE}, {args.epochs} epoch(s), "
          f"tutorial DataLoader num_workers={args.num_workers}, one CPU per trial\n")
    common.print_table(["model", "harness", "trials", "process s", "Ray start s",
                        "sweep s", "best val acc"], rows)
    common.emit("tutorial_baseline",
                {"quick": args.quick, "epochs": args.epochs, "lrs": args.lrs,
                 "num_workers": args.num_workers, "models": payload}, args.json_path)


if __name__ == "__main__":
    main()

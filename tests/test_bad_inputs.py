"""A corpus of malformed inputs: every one exits 2 with one short `error:` line per problem.

Each line names where the mistake is (the spec file, or the option), the key, and a fix; no
traceback, no internal class names, and results already on disk stay byte-identical.

Cases are tables: (id, spec text or bytes, extra args, expected) where `expected` is a string
or a tuple of strings that must all appear in stderr. `{spec}`, `{res}`, `{data}`, `{bad_data}`,
`{tmp}` and `{ro}` in args and expected parts are filled in per test (see `_fill`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fmnist_ray.cli.app import app

from .conftest import REPO

runner = CliRunner()

OK = "name: t\ntrial: {model: mlp, hidden_sizes: [8], epochs: 2}\naxes: {lr: [0.001, 0.01]}\n"
OPTUNA = "name: t\nsearch: optuna\nnum_samples: 4\naxes: {lr: {loguniform: [0.0001, 0.1]}}\n"
PBT = ("name: t\nsearch: random\nnum_samples: 4\ntrial: {model: mlp, epochs: 4}\n"
       "axes: {lr: {loguniform: [0.0001, 0.1]}, batch_size: {choice: [64, 128]}}\n"
       "scheduler:\n  type: pbt\n")
CPUS = os.cpu_count() or 1
HAS_GPU = bool(shutil.which("nvidia-smi")) or Path("/dev/nvidia0").exists()
# Special spec "texts": the spec path is made by `_write_spec` instead of written.
LOOP, DIRECTORY, MISSING, SIBLING = "<symlink loop>", "<directory>", "<missing>", "<sibling>"

# A fix: a verb telling the user what to do (the noun in "a valid list", "got list" does not
# count), or "did you mean".
FIX = re.compile(r"(?<![-\w./])(set|use|remove|lower|raise|add|pass|choose|give|check|fix|"
                 r"(?<!valid )(?<!got )(?<!-separated )list(?! of)|pick|rename|save|delete|"
                 r"resume|free|write|drop|replace|put|(?<!start )point|install|quote|shorten|"
                 r"split|move|keep|start(?! point))\b|did you mean")
# Internal names a user should never see.
BANNED = ("instance of", "SweepSpec", "TrialConfig", "Range", "Scheduler", "Resources",
          "Variant(", "NoneType", "pydantic", "ValidationError", "(got None)", "Traceback")


def _bomb() -> str:
    """Billion laughs: anchors &a..&i, each a list of 9 aliases of the one before (9**9 leaves)."""
    lines = ["name: t", "axes:", "  lr:"]
    previous = None
    for anchor in "abcdefghi":
        items = ", ".join([f"*{previous}" if previous else "0.001"] * 9)
        lines.append(f"  - &{anchor} [{items}]")
        previous = anchor
    return "\n".join(lines) + "\n"


def _grid(values: int = 100) -> str:
    """Six list axes of `values` valid values each: 10**12 grid points."""
    axes = {"lr": [f"{(i + 1) / 10000:.4f}" for i in range(values)],
            **{k: [str(i + 1) for i in range(values)]
               for k in ("batch_size", "width", "depth", "epochs")},
            "seed": [str(i) for i in range(values)]}
    return "name: t\naxes:\n" + "".join(f"  {k}: [{', '.join(v)}]\n" for k, v in axes.items())


# (id, spec text or bytes, extra args, expected) for `sweep SPEC --dry-run --data-dir DATA`.
SPEC_CASES = [
    # 1. Guarded spec loading
    ("utf16-file", OK.encode("utf-16"), [], "UTF-8"),
    ("latin1-bytes", "name: t\ndescription: café au lait\n".encode("latin-1"), [],
     ("UTF-8", "line 2")),
    ("empty-file", b"", [], "empty"),
    ("only-comments", "# a spec to write later\n", [], "empty"),
    ("alias", "name: t\ntrial: {lr: &rate 0.01}\naxes: {lr: [*rate, 0.1]}\n", [], "alias"),
    ("merge-key-alias", "name: t\nvariants:\n  - &base {name: a, model: mlp}\n"
     "  - {<<: *base, name: b}\n", [], "alias"),
    ("duplicate-top-key", "name: t\nseeds: 2\nseeds: 3\n", [], ("seeds", "duplicate")),
    ("duplicate-trial-key", "name: t\ntrial:\n  lr: 0.1\n  epochs: 2\n  lr: 0.01\n", [],
     ("trial.lr", "duplicate")),
    ("duplicate-variant-key", "name: t\nvariants: [{name: a, lr: 0.1, lr: 0.2}]\n", [],
     ("variants.0.lr", "duplicate")),
    ("tab-indented", "name: t\ntrial:\n\tlr: 0.1\n", [], ("line 3", "tab")),
    ("unclosed-brace", "name: t\ntrial: {lr: 0.1, epochs: 2\naxes: {lr: [0.1]}\n", [], "line 2"),
    ("stray-brace", "name: t\naxes: {lr: [0.1, 0.01}}\n", [], "line 2"),
    ("unclosed-quote", 'name: t\ndescription: "oops\ntrial: {lr: 0.1}\n', [], "line 2"),
    ("symlink-loop", LOOP, [], "link"),
    ("spec-is-directory", DIRECTORY, [], "directory"),
    ("missing-no-extension", MISSING, [], "not found"),
    ("missing-yaml-beside", SIBLING, [], "ok.yaml"),
    ("top-level-list", "- name: t\n- trial: {lr: 0.1}\n", [], "mapping"),
    ("top-level-scalar", "name t\n", [], "mapping"),
    ("int-over-4300-digits", "name: t\ntrial: {epochs: " + "9" * 5000 + "}\n", [], "line 2"),
    ("absurd-int", "name: t\ntrial: {epochs: 1000000000000000000000000000000}\n", [],
     "trial.epochs"),
    ("100kB-value", "name: t\ntrial: {model: " + "x" * 100_000 + "}\n", [], "trial.model"),
    ("1kB-key", "name: t\ntrial:\n  " + "k" * 1000 + ": 1\n", [], "unknown key"),
    ("100kB-name", "name: " + "a" * 100_000 + "\n", [], "name"),
    # 2. Whole-trial validation and contradictions
    ("epochs-axis-below-warmup", "name: t\ntrial: {warmup_epochs: 2, epochs: 5}\n"
     "axes: {epochs: [1, 5]}\n", [], ("axes.epochs", "warmup_epochs")),
    ("variant-x-axis-conflict", "name: t\ntrial: {epochs: 5}\nvariants: [{name: short, epochs: 2},"
     " {name: long, epochs: 5}]\naxes: {warmup_epochs: [0, 3]}\n", [],
     ("axes", "short", "warmup_epochs 3")),
    ("axis-x-axis-conflict", "name: t\naxes: {epochs: [2, 5], warmup_epochs: [0, 3]}\n", [],
     ("axes", "warmup_epochs 3", "epochs 2")),
    ("axes-seed-and-seeds", "name: t\nseeds: 2\naxes: {seed: [0, 1, 2]}\n", [],
     ("seeds", "axes.seed")),
    ("variant-and-axis-same-key", "name: t\nvariants: [{name: fast, lr: 0.1}, "
     "{name: slow, lr: 0.001}]\naxes: {lr: [0.01, 0.001]}\n", [], ("axes.lr", "variant")),
    ("max_t-without-asha", "name: t\nscheduler: {max_t: 5}\n", [], ("scheduler.max_t", "asha")),
    # PBT, HyperBand and multi-objective search: each option read by its type, and what it needs
    ("pbt-without-mutate", PBT, [], ("scheduler.mutate", "list the axes")),
    ("pbt-mutates-the-model", PBT + "  mutate: [model]\n", [],
     ("scheduler.mutate.0", "model cannot change", "batch_size")),
    ("pbt-mutates-no-axis", PBT + "  mutate: [dropout]\n", [],
     ("scheduler.mutate.0", "not an axis", "axes.dropout")),
    ("pbt-interval-past-the-end", PBT + "  mutate: [lr]\n  perturbation_interval: 4\n", [],
     ("scheduler.perturbation_interval", "trial.epochs 4")),
    ("pbt-with-optuna", PBT.replace("random", "optuna") + "  mutate: [lr]\n", [],
     ("search", "PBT", "search: random")),
    ("pbt-with-seeds", PBT + "  mutate: [lr]\nseeds: 2\n", [], ("seeds", "num_samples")),
    ("pbt-sparse-checkpoints", PBT + "  mutate: [lr]\ncheckpoint_every: 2\n", [],
     ("checkpoint_every", "set checkpoint_every: 1")),
    ("pbt-population-of-one", PBT.replace("num_samples: 4", "num_samples: 1")
     + "  mutate: [lr]\n", [], ("num_samples", "at least 2")),
    ("grace-under-hyperband", "name: t\nscheduler: {type: hyperband, grace_period: 2}\n", [],
     ("scheduler.grace_period", "asha", "hyperband does not read")),
    ("mutate-under-asha", "name: t\nscheduler: {type: asha, mutate: [lr]}\n", [],
     ("scheduler.mutate", "pbt")),
    ("objectives-without-optuna", "name: t\nobjectives: {val_accuracy: max, seconds: min}\n",
     [], ("search", "search: optuna")),
    ("objective-the-wrong-way", OPTUNA + "objectives: {val_accuracy: max, seconds: max}\n", [],
     ("objectives.seconds", "set min")),
    ("objective-unknown", OPTUNA + "objectives: {val_accuracy: max, minutes: min}\n", [],
     ("objectives.minutes", "seconds")),
    ("one-objective", OPTUNA + "objectives: {val_accuracy: max}\n", [],
     ("objectives", "at least two")),
    ("objectives-without-the-metric", OPTUNA + "objectives: {val_loss: min, seconds: min}\n",
     [], ("objectives", "add val_accuracy")),
    ("objectives-with-asha", OPTUNA + "objectives: {val_accuracy: max, params: min}\n"
     "scheduler: {type: asha}\n", [], ("scheduler", "whole trials")),
    ("choose-within-the-metric", OPTUNA + "objectives: {val_accuracy: max, seconds: min}\n"
     "choose_within: {val_accuracy: 0.9}\n", [], ("choose_within.val_accuracy", "seconds")),
    ("choose-within-alone", OPTUNA + "choose_within: {seconds: 60}\n", [],
     ("choose_within", "objectives")),
    ("grace-without-asha", "name: t\nscheduler: {grace_period: 2}\n", [],
     ("scheduler.grace_period", "asha")),
    ("reduction-without-asha", "name: t\nscheduler: {reduction_factor: 2}\n", [],
     ("scheduler.reduction_factor", "asha")),
    ("lr-inf", "name: t\ntrial: {lr: .inf}\n", [], ("trial.lr", "inf")),
    ("lr-nan", "name: t\ntrial: {lr: .nan}\n", [], ("trial.lr", "nan")),
    ("weight_decay-inf", "name: t\ntrial: {weight_decay: .inf}\n", [],
     ("trial.weight_decay", "inf")),
    ("dropout-nan", "name: t\ntrial: {dropout: .nan}\n", [], ("trial.dropout", "nan")),
    ("axis-value-inf", "name: t\naxes: {lr: [0.01, .inf]}\n", [], ("axes.lr", "inf")),
    ("random-nothing-to-sample", "name: t\nsearch: random\nnum_samples: 4\n"
     "axes: {lr: [0.1, 0.01]}\n", [], ("search", "grid")),
    ("duplicate-grid-value", "name: t\naxes: {batch_size: [32, 32]}\n", [],
     ("axes.batch_size", "32")),
    ("duplicate-choice-value", "name: t\nsearch: random\n"
     "axes: {optimizer: {choice: [adam, adam]}}\n", [], ("axes.optimizer", "adam")),
    ("batch-above-train-set", "name: t\ntrial: {batch_size: 10000000}\n", [],
     "trial.batch_size"),
    ("bool-for-int", "name: t\ntrial: {epochs: true}\n", [], "trial.epochs"),
    ("bool-for-float", "name: t\ntrial: {lr: yes}\n", [], "trial.lr"),
    ("string-for-list", "name: t\ntrial: {model: mlp, hidden_sizes: '256,128'}\n", [],
     ("trial.hidden_sizes", "list")),
    ("scalar-axis", "name: t\naxes: {lr: 0.1}\n", [], ("axes.lr", "list")),
    ("hidden_sizes-empty", "name: t\ntrial: {model: mlp, hidden_sizes: []}\n", [],
     "trial.hidden_sizes"),
    ("resources-cpu-0", "name: t\nresources: {cpu: 0}\n", [], "resources.cpu"),
    ("resources-gpu-1.5", "name: t\nresources: {gpu: 1.5}\n", [], "resources.gpu"),
    ("max_concurrent-0", "name: t\nmax_concurrent_trials: 0\n", [], "max_concurrent_trials"),
    ("mode-min-for-accuracy", "name: t\nmetric: val_accuracy\nmode: min\n", [], ("mode", "max")),
    ("start-point-unknown-variant", "name: t\nsearch: optuna\nnum_samples: 2\nvariants: "
     "[{name: small, model: mlp}, {name: conv, model: cnn}]\nstart_with: [{variant: big}]\n", [],
     ("start_with.0.variant", "big")),
    ("start-point-text", OPTUNA + "start_with: [{lr: one-thousandth}]\n", [],
     ("start_with.0.lr", "'one-thousandth' is not a number")),
    # 3. Resources vs the machine
    ("cpu-above-any-node", f"name: t\nresources: {{cpu: {CPUS * 32}}}\n", [],
     ("resources.cpu", f"{CPUS * 32} CPUs")),
    ("gpu-without-gpu", "name: t\nresources: {gpu: 1}\n", [], ("resources.gpu", "GPU")),
    # 5. Messages
    ("epochs-at-top", "name: t\nepochs: 3\n", [], ("epochs", "trial")),
    ("lr-at-top", "name: t\nlr: 0.01\n", [], ("lr", "trial")),
    ("seeds-under-trial", "name: t\ntrial: {seeds: 2}\n", [], ("trial.seeds", "top level")),
    ("learning_rate-axis", "name: t\naxes: {learning_rate: [0.1]}\n", [],
     ("axes.learning_rate", "did you mean 'lr'")),
    ("bs-in-variant", "name: t\nvariants: [{name: a, bs: 32}]\n", [],
     ("variants.0.bs", "did you mean 'batch_size'")),
    ("log_uniform-kind", "name: t\nsearch: random\naxes: {lr: {log_uniform: [0.0001, 0.1]}}\n",
     [], ("axes.lr.log_uniform", "did you mean 'loguniform'")),
    ("randInt-kind", "name: t\nsearch: random\naxes: {batch_size: {randInt: [16, 64]}}\n", [],
     ("axes.batch_size.randInt", "did you mean 'randint'")),
    ("model-upper-case", "name: t\ntrial: {model: CNN}\n", [],
     ("trial.model", "did you mean 'cnn'")),
    ("optimizer-upper-case", "name: t\ntrial: {optimizer: Adam}\n", [],
     ("trial.optimizer", "did you mean 'adam'")),
    ("search-upper-case", "name: t\nsearch: Random\naxes: {lr: {uniform: [0.001, 0.1]}}\n", [],
     ("search", "did you mean 'random'")),
    ("schedule-long-name", "name: t\ntrial: {schedule: cosine_annealing}\n", [],
     ("trial.schedule", "did you mean 'cosine'")),
    ("metric-short-name", "name: t\nmetric: accuracy\n", [], ("metric", "val_accuracy")),
    ("scheduler-as-string", "name: t\nscheduler: asha\n", [], ("scheduler", "type: asha")),
    ("resources-as-number", "name: t\nresources: 2\n", [], ("resources", "cpu")),
    ("trial-as-string", "name: t\ntrial: mlp\n", [], ("trial", "model: mlp")),
    ("trial-null", "name: t\ntrial:\n", [], "trial"),
    ("variants-as-mapping", "name: t\nvariants: {name: a, model: mlp}\n", [], "variants"),
    ("variants-as-strings", "name: t\nvariants: [mlp, cnn]\n", [], ("variants.0", "name")),
    ("variants-same-name", "name: t\nvariants: [{name: a, model: mlp}, {name: a, model: cnn}]\n",
     [], "variants"),
    ("axes-as-list", "name: t\naxes: [lr, batch_size]\n", [], "axes"),
    ("name-number", "name: 123\n", [], "name"),
    ("description-list", "name: t\ndescription: [a, b]\n", [], "description"),
    ("unknown-top-key", "name: t\nfoo: 1\n", [], "foo: unknown key"),
    ("hidden-size-0", "name: t\ntrial: {model: mlp, hidden_sizes: [256, 0]}\n", [],
     "trial.hidden_sizes"),
    ("dropout-1", "name: t\ntrial: {dropout: 1.0}\n", [], "trial.dropout"),
    ("momentum-negative", "name: t\ntrial: {momentum: -0.5}\n", [], "trial.momentum"),
    ("augment_crop-20", "name: t\ntrial: {augment_crop: 20}\n", [], "trial.augment_crop"),
    ("label_smoothing-1", "name: t\ntrial: {label_smoothing: 1}\n", [], "trial.label_smoothing"),
    ("device-gpu", "name: t\ntrial: {device: gpu}\n", [], ("trial.device", "cuda")),
    ("precision-fp16", "name: t\ntrial: {precision: fp16}\n", [], ("trial.precision", "bf16")),
    ("memory_format-nhwc", "name: t\ntrial: {memory_format: nhwc}\n", [],
     ("trial.memory_format", "channels_last")),
    ("epochs-fraction", "name: t\ntrial: {epochs: 2.5}\n", [], "trial.epochs"),
    ("augment_flip-maybe", "name: t\ntrial: {augment_flip: maybe}\n", [], "trial.augment_flip"),
    ("lr-null", "name: t\ntrial: {lr: null}\n", [], "trial.lr"),
    ("num_samples-0", "name: t\nnum_samples: 0\n", [], "num_samples"),
    ("seeds-0", "name: t\nseeds: 0\n", [], "seeds"),
    ("max_failures-negative", "name: t\nmax_failures: -1\n", [], "max_failures"),
    ("checkpoint_every-0", "name: t\ncheckpoint_every: 0\n", [], "checkpoint_every"),
    ("time_budget-negative", "name: t\ntime_budget_minutes: -5\n", [], "time_budget_minutes"),
    ("reduction_factor-1", "name: t\nscheduler: {type: asha, reduction_factor: 1}\n", [],
     "scheduler.reduction_factor"),
    ("uniform-one-bound", "name: t\nsearch: random\naxes: {dropout: {uniform: [0.1]}}\n", [],
     ("axes.dropout.uniform", "high")),
    ("randint-fraction", "name: t\nsearch: random\naxes: {batch_size: {randint: [16.5, 64]}}\n",
     [], "axes.batch_size.randint"),
    ("hidden_sizes-axis-flat", "name: t\ntrial: {model: mlp}\naxes: {hidden_sizes: [256, 128]}\n",
     [], "axes.hidden_sizes"),
    ("axis-value-null", "name: t\naxes: {lr: [0.1, null]}\n", [], "axes.lr"),
    ("axis-null", "name: t\naxes: {lr: null}\n", [], "axes.lr"),
    ("choice-scalar", "name: t\nsearch: random\naxes: {optimizer: {choice: adam}}\n", [],
     "axes.optimizer.choice"),
    ("cuda-without-gpu-reserved", "name: t\ntrial: {device: cuda}\n", [], "resources.gpu"),
]
# Cases with two problems, each on its own line.
MAX_LINES = {"hidden_sizes-axis-flat": 2, "variants-as-strings": 2, "resources-gpu-1.5": 2,
             "cuda-without-gpu-reserved": 2, "variant-and-axis-same-key": 2}

# Cases that could take unbounded time or memory today: real subprocesses under a 4 GiB cap.
PATHOLOGICAL = [
    ("binary-garbage", b"\x00\x01name: t\n" + bytes(range(256)) * 64, "text"),
    ("billion-laughs", _bomb(), "alias"),
    ("nested-10000-deep", "name: t\ntrial: {model: mlp, hidden_sizes: " + "[" * 10_000 + "8"
     + "]" * 10_000 + "}\n", "nest"),
    ("file-over-1MB", ("# " + "x" * 97 + "\n") * 20_000 + OK, "limit"),
    ("grid-10**12", _grid(), ("axes", "trials")),
    ("seeds-10**9", "name: t\nseeds: 1000000000\n", "seeds"),
    ("num_samples-10**9", "name: t\nnum_samples: 1000000000\n", "num_samples"),
]

SWEEP = ["sweep", "{spec}", "--dry-run", "--data-dir", "{data}"]
RUN = ["sweep", "{spec}", "--data-dir", "{data}", "--quiet"]  # a real run: must refuse first
TRAIN = ["train", "--model", "mlp", "--hidden", "8", "--epochs", "1", "--data-dir", "{data}"]
# (id, spec text or None, args, expected): other command lines, with `{res}` the results fixture.
CLI_CASES = [
    ("set-unknown-key", OK, [*SWEEP, "--set", "trial.lrr=0.1"],
     ("--set trial.lrr", "did you mean 'lr'")),
    ("set-negative-lr", OK, [*SWEEP, "--set", "trial.lr=-1"], "--set trial.lr"),
    ("set-without-equals", OK, [*SWEEP, "--set", "notakey"], ("--set", "KEY=VALUE")),
    ("set-empty-key", OK, [*SWEEP, "--set", "=3"], ("--set", "KEY=VALUE")),
    ("set-trial-scalar", OK, [*SWEEP, "--set", "trial=3"], "--set trial"),
    ("set-below-a-number", OK, [*SWEEP, "--set", "trial.lr.x=1"], "--set trial.lr.x"),
    ("set-bad-yaml", OK, [*SWEEP, "--set", "axes.lr=[0.1"], "--set axes.lr"),
    ("name-bad-chars", OK, [*SWEEP, "--name", "my sweep!"], "--name"),
    ("address-nothing-listening", OK, [*SWEEP, "--address", "127.0.0.1:1"],
     ("--address", "127.0.0.1:1")),
    ("sweep-data-dir-missing", OK, [*SWEEP[:3], "--data-dir", "/nonexistent"],
     ("/nonexistent", "--data-dir")),
    ("sweep-corrupt-data", OK, [*SWEEP[:3], "--data-dir", "{bad_data}"],
     ("train-images-idx3-ubyte.gz", "replace")),
    ("sweep-missing-spec", None, ["sweep", "{tmp}/missing.yaml", "--dry-run"], "not found"),
    ("storage-is-a-file", OK, [*RUN, "--storage", "{res}/done/trials.parquet"],
     ("--storage", "file")),
    ("storage-read-only", OK, [*RUN, "--storage", "{ro}"], ("--storage", "{ro}")),
    ("storage-unknown-scheme", OK, [*RUN, "--storage", "foo://bar"],
     ("--storage foo://bar", "unknown storage scheme 'foo://'", "s3://")),
    ("resume-unknown-scheme", None, ["resume", "foo://bar/t", "--data-dir", "{data}"],
     ("foo://bar/t", "unknown storage scheme 'foo://'")),
    ("show-unknown-scheme", None, ["show", "foo://bar/t/"],
     ("foo://bar/t", "unknown storage scheme 'foo://'")),
    ("ls-a-file", None, ["ls", "{res}/done/trials.parquet"],
     ("{res}/done/trials.parquet", "a file, not a folder")),
    ("name-300-chars", OK, [*RUN, "--storage", "{tmp}/store", "--name", "a" * 300], "--name"),
    ("name-already-used", OK, [*RUN, "--storage", "{res}", "--name", "done"],
     ("{res}/done", "--name")),
    ("sweep-resume-no-state", OK, [*RUN, "--storage", "{res}", "--name", "done", "--resume"],
     "{res}/done"),
    ("report-o-over-parquet", None, ["report", "{res}/done", "-o", "{res}/done/trials.parquet"],
     ("trials.parquet", ".html")),
    ("report-o-txt", None, ["report", "{res}/done", "-o", "{tmp}/x.txt"], ("x.txt", ".html")),
    ("report-o-directory", None, ["report", "{res}/done", "-o", "{res}/done"], "directory"),
    ("report-o-foreign-file", None, ["report", "{res}/done", "-o", "{res}/notes.html"],
     ("notes.html", "delete")),
    ("report-not-a-sweep", None, ["report", "{tmp}/notasweep"], ("notasweep", "trials.parquet")),
    ("report-no-args", None, ["report"], "RESULTS_DIR"),
    ("report-all-missing", None, ["report", "--all", "/nonexistent"], ("--all", "/nonexistent")),
    ("report-missing-dir", None, ["report", "/nonexistent/sweep"], "/nonexistent/sweep"),
    ("report-of-a-file", None, ["report", "{res}/done/trials.parquet"], "trials.parquet"),
    ("resume-corrupt-spec", None, ["resume", "{res}/broken", "--data-dir", "{data}"],
     "{res}/broken/spec.yaml"),
    ("resume-missing-dir", None, ["resume", "{tmp}/nope", "--data-dir", "{data}"], "{tmp}/nope"),
    ("resume-no-ray-state", None, ["resume", "{res}/done", "--data-dir", "{data}", "--quiet"],
     "{res}/done"),
    ("train-lr-negative", None, [*TRAIN, "--lr", "-1"], "--lr"),
    ("train-model-foo", None, [*TRAIN, "--model", "foo"], ("--model", "choose")),
    ("train-optimizer-typo", None, [*TRAIN, "--optimizer", "adamm"], "did you mean 'adam'"),
    ("train-hidden-letters", None, [*TRAIN, "--hidden", "a,b"], "--hidden"),
    ("train-epochs-0", None, [*TRAIN, "--epochs", "0"], "--epochs"),
    ("train-batch-size-0", None, [*TRAIN, "--batch-size", "0"], "--batch-size"),
    ("train-precision-fp8", None, [*TRAIN, "--precision", "fp8"], ("--precision", "bf16")),
    ("train-device-tpu", None, [*TRAIN, "--device", "tpu"], ("--device", "cpu")),
    ("train-dropout-1.5", None, [*TRAIN, "--dropout", "1.5"], "--dropout"),
    ("train-warmup-too-long", None, [*TRAIN, "--warmup-epochs", "1"], "--warmup-epochs"),
    ("train-schedule-typo", None, [*TRAIN, "--schedule", "cosin"],
     ("--schedule", "did you mean 'cosine'")),
    ("train-data-dir-missing", None, [*TRAIN[:-1], "/nonexistent"],
     ("/nonexistent", "--data-dir")),
    ("train-corrupt-data", None, [*TRAIN[:-1], "{bad_data}"], ("{bad_data}", "replace")),
    ("data-dir-missing", None, ["data", "--data-dir", "/nonexistent"],
     ("/nonexistent", "--data-dir")),
    ("data-corrupt", None, ["data", "--data-dir", "{bad_data}"], ("{bad_data}", "replace")),
]
# Click's own usage errors: a usage box on stderr is fine; only exit 2 and no traceback.
USAGE_CASES = [
    ("unknown-option", ["train", "--nope"]),
    ("unknown-command", ["frobnicate"]),
    ("sweep-without-spec", ["sweep"]),
    ("resume-without-dir", ["resume"]),
    ("option-without-value", ["report", "-o"]),
    ("lr-not-a-number", ["train", "--lr", "abc"]),
    ("epochs-not-an-int", ["train", "--epochs", "1.5"]),
    ("errored-bad-choice", ["sweep", "{spec}", "--errored", "maybe"]),
]
# The same forms without their mistake: these must pass, so a failure above is the mistake's.
GOOD = [
    ("base", OK),
    ("start-point-1.0e-3", OPTUNA + "start_with: [{lr: 1.0e-3}]\n"),
    # YAML 1.1 reads 1e-3 as text; specs read it as the number (YAML 1.2), so it is no mistake.
    ("start-point-1e-3", OPTUNA + "start_with: [{lr: 1e-3}]\n"),
    ("grid-value-1e-3", "name: t\ntrial: {model: mlp, hidden_sizes: [8]}\n"
     "axes: {lr: [1e-3, 1e-2]}\n"),
    ("utf8-accent", "name: t\ndescription: café au lait\ntrial: {model: mlp, hidden_sizes: [8]}\n"),
    ("asha-with-max_t", "name: t\ntrial: {model: mlp, hidden_sizes: [8], epochs: 4}\n"
     "scheduler: {type: asha, max_t: 4, grace_period: 2}\n"),
    ("variants-and-axes", "name: t\ntrial: {epochs: 5}\nvariants: [{name: short, epochs: 3}, "
     "{name: long, epochs: 5, model: mlp, hidden_sizes: [8]}]\naxes: {warmup_epochs: [0, 2]}\n"),
    ("random-with-range", "name: t\nsearch: random\nnum_samples: 2\n"
     "trial: {model: mlp, hidden_sizes: [8]}\naxes: {batch_size: {randint: [16, 64]}}\n"),
    ("seeds-and-flat-variants", "name: t\nseeds: 2\nvariants: [{name: a, model: mlp, "
     "hidden_sizes: [256, 128]}, {name: b, model: cnn, width: 4}]\n"),
    ("pbt", PBT + "  mutate: [lr, batch_size]\n"),
    ("hyperband", "name: t\nsearch: random\nnum_samples: 3\ntrial: {model: mlp, epochs: 9}\n"
     "axes: {lr: {loguniform: [0.0001, 0.01]}}\nscheduler: {type: hyperband}\n"),
    ("pareto", OPTUNA + "objectives: {val_accuracy: max, seconds: min}\n"
     "choose_within: {seconds: 60}\n"),
    ("optuna-start-variant", "name: t\nsearch: optuna\nnum_samples: 2\nvariants: "
     "[{name: small, model: mlp}, {name: conv, model: cnn}]\nstart_with: [{variant: small}]\n"),
]


class WouldStart(Exception):
    """The command got as far as starting Ray or training: it must refuse its input first."""


def _refuse_to_start(*_args, **_kwargs):
    raise WouldStart("would start Ray or train before refusing the bad input")


@pytest.fixture
def guard(monkeypatch, tmp_path):
    """Fail fast, instead of starting Ray or training, if a bad input gets that far; run in a
    scratch working directory so nothing lands in the repository."""
    import ray

    import fmnist_ray.training.loop

    monkeypatch.setattr(ray, "init", _refuse_to_start)
    monkeypatch.setattr(fmnist_ray.training.loop, "train_trial", _refuse_to_start)
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    if threads:  # a dry run calibrates with the spec's resources.cpu threads
        sys.modules["torch"].set_num_threads(threads)


def _parquet() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"trial_id": ["t1", "t2"], "status": ["completed", "completed"],
                  "lr": [0.001, 0.01], "test_accuracy": [0.81, 0.84]}).to_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture
def results_dir(tmp_path) -> Path:
    """Finished results a bad command must leave alone: done/ (a sweep), broken/ (its
    spec.yaml corrupt), notes.html (a page `report` did not write)."""
    root = tmp_path / "results"
    table = _parquet()
    for name, spec in (("done", "name: done\ntrial: {model: mlp, epochs: 2}\n"
                                "axes: {lr: [0.001, 0.01]}\n"),
                       ("broken", "name: broken\ntrial: {lr: [0.1\n")):
        (root / name).mkdir(parents=True)
        (root / name / "trials.parquet").write_bytes(table)
        (root / name / "spec.yaml").write_bytes(spec.encode())
    (root / "notes.html").write_bytes(b"<html><body>my own notes</body></html>\n")
    (tmp_path / "notasweep").mkdir()
    (tmp_path / "notasweep" / "README.txt").write_bytes(b"not results\n")
    return root


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _write_spec(tmp_path: Path, text: str | bytes) -> Path:
    spec = tmp_path / "bad.yaml"
    if text == LOOP:
        a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
        os.symlink(a, b)
        os.symlink(b, a)
        return a
    if text == DIRECTORY:
        spec.mkdir()
    elif text == MISSING:
        return tmp_path / "nope"
    elif text == SIBLING:
        (tmp_path / "ok.yaml").write_text(OK)
        return tmp_path / "ok"
    else:
        spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    return spec


def _fill(items, **places: Path | str):
    if isinstance(items, str):
        return items.format(**places) if "{" in items and "}" in items else items
    return [_fill(i, **places) for i in items]


def _check(stdout: str, stderr: str, code: int, exc: BaseException | None,
           expected: str | tuple[str, ...], where: str | None = None, max_lines: int = 1,
           tmp: str | None = None) -> None:
    """The contract for a bad input: exit 2, one short `error:` line per problem, each with the
    place, the key (both in `expected`) and a fix, nothing internal. Expected parts are looked
    for with `tmp` (a path holding the test's name) blanked out."""
    tail = stderr if len(stderr) < 900 else f"{stderr[:300]} ... {stderr[-600:]}"
    shown = f"exit {code}\nstderr: {tail!r}\nstdout: {stdout[-600:]!r}"
    assert exc is None or isinstance(exc, SystemExit), f"raised {exc!r}\n{shown}"
    assert code == 2, shown
    assert "Traceback" not in stdout + stderr, shown
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= max_lines, f"{len(lines)} lines\n{shown}"
    for line in lines:
        assert line.startswith("error: "), shown
        assert len(line) < 300, f"{len(line)} characters: {line[:300]}"
        assert not [w for w in BANNED if w in line], line
        bare = re.sub(r"\(got .*?\)", "", line.replace(tmp or "<TMP>", "<TMP>"))
        assert FIX.search(bare), f"no fix in: {line}"
        if where is not None:
            assert where in line, f"{where} not named in: {line}"
    if tmp:
        stderr = stderr.replace(tmp, "<TMP>")
    for part in (expected,) if isinstance(expected, str) else expected:
        part = part.replace(tmp, "<TMP>") if tmp else part
        assert part in stderr, f"{part!r} not in {stderr[:600]!r}"


@pytest.mark.parametrize(("text", "extra", "expected"), [c[1:] for c in SPEC_CASES],
                         ids=[c[0] for c in SPEC_CASES])
def test_bad_spec(request, tmp_path, guard, synthetic_dir, text, extra, expected):
    case = request.node.callspec.id
    if case == "gpu-without-gpu" and HAS_GPU:
        pytest.skip("this machine has a GPU")
    spec = _write_spec(tmp_path, text)
    result = runner.invoke(app, ["sweep", str(spec), "--dry-run", "--data-dir", str(synthetic_dir),
                                 *extra])
    _check(result.stdout, result.stderr, result.exit_code, result.exception, expected,
           where=str(spec), max_lines=MAX_LINES.get(case, 1), tmp=str(tmp_path))


def _cap_memory() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in PATHOLOGICAL],
                         ids=[c[0] for c in PATHOLOGICAL])
def test_pathological_spec_is_refused_in_seconds(tmp_path, synthetic_dir, text, expected):
    spec = _write_spec(tmp_path, text)
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fmnist_ray.cli.app", "sweep", str(spec), "--dry-run",
             "--data-dir", str(synthetic_dir)], cwd=REPO, capture_output=True, text=True,
            errors="replace", timeout=60, preexec_fn=_cap_memory)
    except subprocess.TimeoutExpired:
        pytest.fail("still running after 60 s")
    seconds = time.monotonic() - began
    _check(done.stdout, done.stderr, done.returncode, None, expected, where=str(spec),
           tmp=str(tmp_path))
    assert seconds < 20, f"took {seconds:.0f} s"


@pytest.fixture
def places(tmp_path, synthetic_dir, fresh_copy, results_dir) -> dict[str, str]:
    (fresh_copy / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage, not gzip")
    if os.geteuid() == 0:  # root writes through chmod: a path no one can create instead
        read_only = "/proc/fmnist-ray-results"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        read_only = str(tmp_path / "ro")
    return {"res": str(results_dir), "data": str(synthetic_dir), "bad_data": str(fresh_copy),
            "tmp": str(tmp_path), "ro": read_only, "spec": str(tmp_path / "spec.yaml")}


@pytest.mark.parametrize(("text", "args", "expected"), [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(tmp_path, guard, places, results_dir, text, args, expected):
    if text is not None:
        Path(places["spec"]).write_text(text)
    before = _hashes(results_dir)
    result = runner.invoke(app, _fill(args, **places))
    expected = _fill(expected, **places)
    _check(result.stdout, result.stderr, result.exit_code, result.exception, expected,
           tmp=str(tmp_path))
    assert _hashes(results_dir) == before, "results on disk changed"


@pytest.mark.parametrize("args", [c[1] for c in USAGE_CASES], ids=[c[0] for c in USAGE_CASES])
def test_click_usage_errors_exit_2(tmp_path, guard, args):
    (tmp_path / "spec.yaml").write_text(OK)
    result = runner.invoke(app, _fill(args, spec=str(tmp_path / "spec.yaml")))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("text", [c[1] for c in GOOD], ids=[c[0] for c in GOOD])
def test_good_forms_pass(tmp_path, guard, synthetic_dir, text):
    spec = _write_spec(tmp_path, text)
    result = runner.invoke(app, ["sweep", str(spec), "--dry-run", "--data-dir",
                                 str(synthetic_dir)])
    assert result.exit_code == 0, result.output


def test_results_fixture_is_a_reportable_sweep(tmp_path, guard, results_dir):
    """So that the report cases above fail for their output path, not for the fixture."""
    result = runner.invoke(app, ["report", str(results_dir / "done"), "-o",
                                 str(tmp_path / "page.html")])
    assert result.exit_code == 0, result.output


def test_corpus_is_large_enough():
    assert len(SPEC_CASES) + len(PATHOLOGICAL) >= 80
    assert len(CLI_CASES) + len(USAGE_CASES) >= 30
    assert len({c[0] for c in SPEC_CASES + PATHOLOGICAL + CLI_CASES}) == len(
        SPEC_CASES + PATHOLOGICAL + CLI_CASES)


def _png_declaring(width: int, height: int) -> bytes:
    """A grey PNG whose header declares `width` x `height` pixels; its pixel data is left out
    (a reader that respects its size limit refuses it before decoding any)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [30_000, 15_000], ids=["bomb-error", "bomb-warning"])
def test_predict_refuses_a_decompression_bomb_in_one_line(tmp_path, guard, side):
    """30,000 x 30,000 pixels: Pillow raises; 15,000 x 15,000: Pillow only warns, then decodes
    225 million pixels. Both are refused before decoding."""
    from fmnist_ray.config import TrialConfig
    from fmnist_ray.model_export.export import export_model
    from fmnist_ray.training.loop import build_trial_model

    config = TrialConfig(model="mlp", hidden_sizes=[8])
    model = tmp_path / "model.pt"
    export_model(build_trial_model(config).state_dict(), config, {}, model)
    big = tmp_path / "big.png"
    big.write_bytes(_png_declaring(side, side))
    result = runner.invoke(app, ["predict", str(model), str(big)])
    _check(result.stdout, result.stderr, result.exit_code, result.exception,
           (f"{big}: too large to read safely", f"({side * side} pixels)", "a smaller copy"))


def test_a_refused_resume_prints_no_plan_first(tmp_path, guard, places, results_dir):
    """`done` started with other trial settings: the refusal is the only output, not a
    "resuming ...: keeping 2 finished trial(s)" line before it."""
    (results_dir / "done" / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    Path(places["spec"]).write_text(OK)
    result = runner.invoke(app, _fill([*RUN, "--storage", "{res}", "--name", "done", "--resume"],
                                      **places))
    _check(result.stdout, result.stderr, result.exit_code, result.exception,
           (f"{results_dir}/done: the spec changed since this sweep started (trial)",
            "`fmnist-ray resume` on this folder"), tmp=str(tmp_path))
    assert result.stdout == ""

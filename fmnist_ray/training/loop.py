"""Train one model on Fashion-MNIST: plain PyTorch, no Ray.

The dataset lives on the training device as uint8 tensors and batches are index slices, so
there is no per-sample DataLoader. Each epoch is reported through an `on_epoch` callback with
a `TrainState` that can be saved and handed back as `start` to resume bit-for-bit.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmnist_ray.config import TrialConfig
from fmnist_ray.results.outcomes import CHANCE_LOSS, Status, failed_to_learn
from fmnist_ray.training.augment import Augmenter
from fmnist_ray.training.data import PIXEL_MEAN, PIXEL_STD, FashionMNIST
from fmnist_ray.training.eager import eager
from fmnist_ray.training.memory import keep_freed_memory
from fmnist_ray.training.models import build_model, count_parameters
from fmnist_ray.training.schedules import WeightAverage, lr_factor

# Bump whenever a change to training alters the numbers a config produces: stored trials of
# earlier versions are then trained again instead of reused (see fmnist_ray.sweep.store).
# 2: fused optimizers and `training.dropout`'s mask on the CPU.
NUMERICS_VERSION = 2
# Evaluation batches: large on a GPU (fewer launches); on a CPU larger ones only cost memory.
EVAL_BATCH = {"cuda": 4096, "cpu": 512}
# A 10-class model starts near ln(10) = 2.3; an epoch's mean training loss ten times that
# (or NaN/inf) means the run has blown up and will not recover.
DIVERGED_LOSS = 10 * CHANCE_LOSS
PROGRESS_STEPS = 25  # training steps between progress calls (each reads the loss)
# Training images measured in eval mode after each epoch, as many as validation holds, so the
# train-vs-validation gap compares like with like (no dropout, augmentation or smoothing).
TRAIN_PROBE_SIZE = 6_000


@dataclass
class EpochMetrics:
    """What one epoch measured.

    `train_loss` / `train_accuracy` are running averages over the epoch's batches in training
    mode (dropout, augmentation, label smoothing on); `train_eval_*` measure a fixed subset of
    the training images in eval mode after the epoch, like validation.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    epoch_seconds: float  # training only, excluding evaluation
    eval_seconds: float
    images_per_second: float
    diverged: bool = False
    train_eval_loss: float = math.nan
    train_eval_accuracy: float = math.nan


@dataclass
class Best:
    """The best-validation epoch so far and the test metrics of its weights."""

    epoch: int = 0
    val_accuracy: float = -1.0
    val_loss: float = math.inf
    test_loss: float | None = None
    test_accuracy: float | None = None
    confusion: list[list[int]] | None = None  # test confusion matrix, rows = true class


@dataclass
class TrainState:
    """Everything needed to continue a run at `epoch + 1` with the same numbers."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    epoch: int
    rng: dict[str, Any]
    best: Best
    history: list[EpochMetrics] = field(default_factory=list)
    ema: dict[str, Any] | None = None  # the weight average, when the config keeps one
    best_model: dict[str, Any] | None = None  # the weights of the best epoch (test-measured)

    def save(self, path: Path) -> None:
        torch.save({**asdict(self), "best": asdict(self.best),
                    "history": [asdict(m) for m in self.history]}, path)

    @classmethod
    def load(cls, path: Path) -> TrainState:
        raw = torch.load(path, map_location="cpu", weights_only=False)
        return cls(model=raw["model"], optimizer=raw["optimizer"], epoch=raw["epoch"],
                   rng=raw["rng"], best=Best(**raw["best"]),
                   history=[EpochMetrics(**m) for m in raw["history"]], ema=raw.get("ema"),
                   best_model=raw.get("best_model"))


@dataclass
class TrialResult:
    """The outcome of a run: `completed`, `diverged` or `failed_to_learn`, its history and
    the test metrics."""

    status: Status
    epochs_run: int
    best: Best
    history: list[EpochMetrics]
    params: int
    seconds: float
    device: str
    precision: str
    best_model: dict[str, Any] | None = field(default=None, repr=False)  # best epoch's weights

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "test_accuracy": self.best.test_accuracy,
                "test_loss": self.best.test_loss, "best_epoch": self.best.epoch,
                "best_val_accuracy": self.best.val_accuracy, "epochs_run": self.epochs_run,
                "params": self.params, "seconds": round(self.seconds, 3), "device": self.device,
                "precision": self.precision, "history": [asdict(m) for m in self.history]}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@cache
def _cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` picks bf16 where the hardware runs it fast (recent GPUs, AMX/AVX512-BF16 CPUs)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if _cpu_has_fast_bf16() else "fp32"


def resolve_memory_format(config: TrialConfig, device: torch.device) -> str:
    """`auto` uses channels_last for convolutional models: faster on GPUs, and 1.2-1.4x on
    an AVX2 CPU in fp32 (see BENCHMARKS.md).

    On a CPU, PyTorch's backward of a 1x1 stride-2 convolution in channels_last corrupts
    memory when it has fewer than 8 input channels (measured with torch 2.14): a resnet
    narrower than 8 (its shortcuts) always runs contiguous there.
    """
    if device.type == "cpu" and config.model == "resnet" and config.width < 8:
        return "contiguous"
    if config.memory_format != "auto":
        return config.memory_format
    convolutional = config.model != "mlp"
    return "channels_last" if convolutional else "contiguous"


def build_trial_model(config: TrialConfig) -> nn.Module:
    """The model a trial config names, with its options."""
    return build_model(config.model, hidden_sizes=config.hidden_sizes, width=config.width,
                       depth=config.depth, dropout=config.dropout)


def _place(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def build_optimizer(config: TrialConfig, params) -> torch.optim.Optimizer:
    """The optimizer a config names. On the CPU, Adam, AdamW, Adagrad and SGD with momentum
    use PyTorch's fused kernels: one pass over each tensor instead of one per operation, 2.4-2.9x
    faster steps, up to a third of a small MLP's training step (BENCHMARKS.md); they round
    differently from the per-tensor loop. Plain SGD is one pass already; RMSprop has none."""
    params = list(params)
    fused = {"fused": True} if params and params[0].device.type == "cpu" else {}
    lr, wd = config.lr, config.weight_decay
    name = config.optimizer
    if name == "sgd":
        return eager(torch.optim.SGD, params, lr=lr, weight_decay=wd)
    if name in ("sgd_momentum", "nesterov"):
        return eager(torch.optim.SGD, params, lr=lr, momentum=config.momentum, weight_decay=wd,
                     nesterov=name == "nesterov", **fused)
    if name == "rmsprop":
        return eager(torch.optim.RMSprop, params, lr=lr, weight_decay=wd)
    optimizers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                  "adagrad": torch.optim.Adagrad}
    return eager(optimizers[name], params, lr=lr, weight_decay=wd, **fused)


class DeviceData:
    """The three splits as uint8 tensors on one device, turned into float batches on demand."""

    def __init__(self, data: FashionMNIST, device: torch.device, normalize: bool,
                 channels_last: bool = False):
        def to_device(array: np.ndarray) -> torch.Tensor:
            # Arrays from Ray's object store are read-only and shared by every trial on the
            # node: on a CPU the tensors view them (no copy per trial) and are never written.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*not writable.*")
                return torch.from_numpy(array).to(device)

        self.device = device
        self.normalize = normalize
        self.channels_last = channels_last
        self.train = (to_device(data.train_images), to_device(data.train_labels).long())
        self.val = (to_device(data.val_images), to_device(data.val_labels).long())
        self.test = (to_device(data.test_images), to_device(data.test_labels).long())
        # Every k-th training image: fixed across epochs, seeds and runs, and no RNG drawn.
        step = max(1, len(self.train[1]) // TRAIN_PROBE_SIZE)
        self.train_probe = (self.train[0][::step][:TRAIN_PROBE_SIZE],
                            self.train[1][::step][:TRAIN_PROBE_SIZE])

    def images(self, raw: torch.Tensor, augment: Augmenter | None = None,
               at: int = 0) -> torch.Tensor:
        """Float images from uint8 rows; training batches at position `at` of the epoch's
        order are augmented when `augment` is given."""
        if augment is not None:
            raw = augment.geometric(raw, at)
        x = raw.unsqueeze(1).float().mul_(1 / 255)
        if self.normalize:
            x = x.sub_(PIXEL_MEAN).div_(PIXEL_STD)
        if augment is not None:
            x = augment.erase(x, at)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.inference_mode()
def evaluate(model: nn.Module, data: DeviceData, split: tuple[torch.Tensor, torch.Tensor],
             precision: str, confusion: bool = False):
    """Mean loss and accuracy on a split (and its confusion matrix when asked)."""
    model.eval()
    images, labels = split
    loss_sum = torch.zeros((), device=data.device)
    counts = torch.zeros(100, dtype=torch.long, device=data.device)
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    step = EVAL_BATCH.get(data.device.type, 512)
    for start in range(0, len(labels), step):
        y = labels[start:start + step]
        with _autocast(data.device, precision):
            logits = model(data.images(images[start:start + step]))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        pred = logits.argmax(1)
        correct += (pred == y).sum()
        if confusion:
            counts += torch.bincount(y * 10 + pred, minlength=100)
    n = max(1, len(labels))
    matrix = counts.view(10, 10).tolist() if confusion else None
    return loss_sum.item() / n, correct.item() / n, matrix


def _capture_rng(shuffle: torch.Generator, device: torch.device) -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _restore_rng(rng: dict[str, Any], shuffle: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


class _Run:
    """What a run needs, set up from its config: device, precision, seeded model, data, and
    the augmentation and weight average it asks for."""

    def __init__(self, config: TrialConfig, data: FashionMNIST, threads: int | None):
        if threads:
            torch.set_num_threads(max(1, int(threads)))
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.precision = resolve_precision(config.precision, self.device)
        channels_last = resolve_memory_format(config, self.device) == "channels_last"
        torch.manual_seed(config.seed)
        self.model = _place(build_trial_model(config), self.device, channels_last)
        self.optimizer = build_optimizer(config, self.model.parameters())
        self.tensors = DeviceData(data, self.device, config.normalize, channels_last)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        augmenter = Augmenter(config, self.shuffle)
        self.augment = augmenter if augmenter.enabled else None
        self.average = WeightAverage(self.model, config.ema) if config.ema else None

    def evaluated(self) -> nn.Module:
        """The weights that are evaluated: the average when there is one."""
        return self.average.model if self.average else self.model


def train_trial(
    config: TrialConfig,
    data: FashionMNIST,
    on_epoch: Callable[[EpochMetrics, TrainState], None] | None = None,
    start: TrainState | None = None,
    threads: int | None = None,
    on_step: Callable[[int, int, int, float], None] | None = None,
) -> TrialResult:
    """Train `config.model` for `config.epochs` epochs, starting from `start` when given.

    `on_step(epoch, steps_done, steps_per_epoch, loss)` is called every PROGRESS_STEPS
    training steps and at the end of each epoch, for progress bars.

    A NaN, infinite or exploding training loss (see DIVERGED_LOSS) ends the run: `diverged`.
    A run that ends with its best validation accuracy at chance is `failed_to_learn`.
    The test set is evaluated only for the weights of each new best-validation epoch, and
    never used to choose.
    """
    began = time.perf_counter()
    run = _Run(config, data, threads)
    device, precision, model, optimizer = run.device, run.precision, run.model, run.optimizer
    shuffle, average = run.shuffle, run.average
    best, history, first_epoch = Best(), [], 1
    best_model: dict[str, Any] | None = None
    if start is not None:
        model.load_state_dict(start.model)
        optimizer.load_state_dict(start.optimizer)
        if average is not None:  # a checkpoint from before the average starts it afresh
            average.model.load_state_dict(start.ema if start.ema is not None else start.model)
        _restore_rng(start.rng, shuffle, device)
        best, history, first_epoch = copy.deepcopy(start.best), list(start.history), start.epoch + 1
        best_model = start.best_model
    tensors = run.tensors
    train_x, train_y = tensors.train
    n_train = len(train_y)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(round(config.warmup_epochs * steps_per_epoch), total_steps - 1)
    scheduled = config.schedule != "constant" or warmup_steps > 0
    status = Status.COMPLETED

    for epoch in range(first_epoch, config.epochs + 1):
        model.train()
        tick = time.perf_counter()
        order = torch.randperm(n_train, generator=shuffle).to(device)
        if run.augment is not None:
            run.augment.begin_epoch(n_train, device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for step, begin in enumerate(range(0, n_train, config.batch_size),
                                     start=(epoch - 1) * steps_per_epoch):
            if scheduled:
                factor = lr_factor(config.schedule, step, total_steps, warmup_steps)
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * factor
            idx = order[begin:begin + config.batch_size]
            x, y = tensors.images(train_x[idx], run.augment, begin), train_y[idx]
            with _autocast(device, precision):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(step)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            done = step - (epoch - 1) * steps_per_epoch + 1
            if on_step is not None and (done % PROGRESS_STEPS == 0 or done == steps_per_epoch):
                on_step(epoch, done, steps_per_epoch, loss.item())
        train_loss = loss_sum.item() / n_train
        train_seconds = time.perf_counter() - tick
        diverged = not math.isfinite(train_loss) or train_loss > DIVERGED_LOSS

        tick = time.perf_counter()
        evaluated = run.evaluated()
        val_loss, val_acc, _ = evaluate(evaluated, tensors, tensors.val, precision)
        probe_loss, probe_acc, _ = evaluate(evaluated, tensors, tensors.train_probe, precision)
        if not diverged and val_acc > best.val_accuracy:
            test_loss, test_acc, matrix = evaluate(evaluated, tensors, tensors.test, precision,
                                                   True)
            best = Best(epoch, val_acc, val_loss, test_loss, test_acc, matrix)
            best_model = weights_copy(evaluated)
        metrics = EpochMetrics(
            epoch=epoch, train_loss=train_loss, train_accuracy=correct.item() / n_train,
            val_loss=val_loss, val_accuracy=val_acc, epoch_seconds=train_seconds,
            eval_seconds=time.perf_counter() - tick,
            images_per_second=n_train / max(train_seconds, 1e-9), diverged=diverged,
            train_eval_loss=probe_loss, train_eval_accuracy=probe_acc,
        )
        history.append(metrics)
        if on_epoch is not None:
            state = TrainState(model.state_dict(), optimizer.state_dict(), epoch,
                               _capture_rng(shuffle, device), best, history,
                               average.model.state_dict() if average else None, best_model)
            on_epoch(metrics, state)
        if diverged:
            status = Status.DIVERGED
            break

    if status == Status.COMPLETED and failed_to_learn(best.val_accuracy if best.epoch else None):
        status = Status.FAILED_TO_LEARN
    return TrialResult(status=status, epochs_run=len(history), best=best, history=history,
                       params=count_parameters(model), seconds=time.perf_counter() - began,
                       device=str(device), precision=precision, best_model=best_model)


def weights_copy(model: nn.Module) -> dict[str, Any]:
    """The model's weights, copied to the CPU in the standard (contiguous) layout."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def measure_throughput(config: TrialConfig, data: FashionMNIST, batches: int = 20,
                       threads: int | None = None) -> float:
    """Training images per second for `config` over a few batches, after one warm-up batch."""
    run = _Run(config, data, threads)
    device, precision, model, optimizer = run.device, run.precision, run.model, run.optimizer
    model.train()
    train_x, train_y = run.tensors.train
    batch = min(config.batch_size, len(train_y))
    if run.augment is not None:
        run.augment.begin_epoch(batch, device)
    tick = 0.0
    for step in range(batches + 1):
        if step == 1:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tick = time.perf_counter()
        idx = torch.randint(len(train_y), (batch,), device=device)
        with _autocast(device, precision):
            logits = model(run.tensors.images(train_x[idx], run.augment))
            loss = F.cross_entropy(logits.float(), train_y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batches * batch / max(time.perf_counter() - tick, 1e-9)

"""`data` and `train`: the dataset and one model, without Ray."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fmnist_ray.cli.common import DataDir, command, console, err_console, user_errors
from fmnist_ray.config import TrialConfig
from fmnist_ray.errors import UserError
from fmnist_ray.results.outcomes import Status
from fmnist_ray.spec.problems import describe_validation_error


@command(epilog=(
    "Example: fmnist-ray data --data-dir ~/fashion-mnist"))
@user_errors
def data(data_dir: DataDir = None) -> None:
    """Find the dataset, verify every file, and say where it is."""
    from fmnist_ray.training.data import load_fashion_mnist

    dataset = load_fashion_mnist(data_dir)
    sizes = dataset.sizes
    console.print(f"Fashion-MNIST found in {dataset.source}: all four files verified "
                  f"(magic numbers, shapes, labels 0-9, checksums)"
                  + (f" when first read, and unchanged since; their verified arrays are in "
                     f"{dataset.verified_copy}." if dataset.verified_copy else "."))
    console.print(f"splits: train {sizes['train']:,} / validation {sizes['val']:,} / "
                  f"test {sizes['test']:,} images of 28x28")


def _trial_config(**values) -> TrialConfig:
    try:
        return TrialConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise UserError("\n".join(describe_validation_error(exc, prefix="--"))) from None


def _epoch_table(history) -> Table:
    table = Table(title="epochs", title_justify="left")
    for column in ("epoch", "train loss", "train acc", "val loss", "val acc", "s", "img/s"):
        table.add_column(column, justify="right")
    for m in history:
        table.add_row(str(m.epoch), f"{m.train_loss:.4f}", f"{m.train_accuracy:.4f}",
                      f"{m.val_loss:.4f}", f"{m.val_accuracy:.4f}", f"{m.epoch_seconds:.1f}",
                      f"{m.images_per_second:,.0f}")
    return table


@command(epilog=(
    "Example: fmnist-ray train --model cnn --lr 1e-3 --epochs 5 --save model.pt"))
@user_errors
def train(
    model: Annotated[str, typer.Option(help="mlp, cnn, deep_cnn_bn or resnet.")] = "cnn",
    optimizer: Annotated[str, typer.Option(
        help="sgd, sgd_momentum, nesterov, adam, adamw, rmsprop or adagrad.")] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Images per training step.")] = 64,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 5,
    dropout: Annotated[float | None, typer.Option(help="Dropout probability.")] = None,
    hidden: Annotated[str | None, typer.Option(
        help="MLP hidden sizes, comma-separated, e.g. 512,256.")] = None,
    width: Annotated[int | None, typer.Option(help="Base conv channels of the CNNs.")] = None,
    depth: Annotated[int | None, typer.Option(help="resnet: residual blocks per stage.")] = None,
    schedule: Annotated[str | None, typer.Option(
        help="Learning rate over the run: constant, cosine or onecycle.")] = None,
    warmup_epochs: Annotated[float | None, typer.Option(
        help="Linear warm-up of the learning rate, in epochs.")] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="Label smoothing, 0-1.")] = None,
    ema: Annotated[float | None, typer.Option(
        help="Evaluate an average of the weights with this decay, e.g. 0.999.")] = None,
    augment_crop: Annotated[int | None, typer.Option(
        help="Random-crop augmentation: pad by this many pixels, crop 28x28.")] = None,
    augment_flip: Annotated[bool | None, typer.Option(
        help="Random horizontal flip augmentation.")] = None,
    augment_erasing: Annotated[float | None, typer.Option(
        help="Random-erasing augmentation: chance per image.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="L2 weight decay.")] = None,
    momentum: Annotated[float | None, typer.Option(
        help="Momentum for sgd_momentum / nesterov.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32 or bf16.")] = "auto",
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")
                       ] = False,
    save: Annotated[Path | None, typer.Option(
        "--save", metavar="MODEL.pt",
        help="Save the best-validation weights as TorchScript, with a .json sidecar.")] = None,
) -> None:
    """Train one model without Ray and report its test accuracy."""
    hidden_sizes = None
    if hidden is not None:
        try:
            hidden_sizes = [int(h) for h in hidden.split(",")]
        except ValueError:
            raise UserError(f"--hidden: {hidden!r} is not a comma-separated list of integers; "
                            f"write it as e.g. --hidden 512,256") from None
    config = _trial_config(model=model, optimizer=optimizer, lr=lr, batch_size=batch_size,
                           epochs=epochs, dropout=dropout, hidden_sizes=hidden_sizes, width=width,
                           depth=depth, schedule=schedule, warmup_epochs=warmup_epochs,
                           label_smoothing=label_smoothing, ema=ema, augment_crop=augment_crop,
                           augment_flip=augment_flip, augment_erasing=augment_erasing,
                           weight_decay=weight_decay, momentum=momentum, seed=seed, device=device,
                           precision=precision)
    # Progress goes to stderr, so that with --json stdout stays one JSON object; with --json
    # and no terminal to draw on, there is none.
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.fields[m]}"), TimeRemainingColumn(),
                        TextColumn("left,"), TimeElapsedColumn(),
                        console=err_console, disable=as_json and not err_console.is_terminal)
    finished = []
    began = time.monotonic()
    try:  # Ctrl-C at any point from here on ends with a line saying what was finished
        from fmnist_ray.training.data import load_fashion_mnist
        from fmnist_ray.training.loop import train_trial

        dataset = load_fashion_mnist(data_dir)
        with progress:
            task = progress.add_task(f"{config.model} epoch 1/{config.epochs}", total=None,
                                     m="")

            def on_step(epoch: int, done: int, steps: int, loss: float) -> None:
                progress.update(task, total=steps * config.epochs,
                                completed=(epoch - 1) * steps + done,
                                description=f"{config.model} epoch {epoch}/{config.epochs}",
                                m=f"loss {loss:.4f}" + (f", val acc {finished[-1].val_accuracy:.4f}"
                                                        if finished else ""))

            def on_epoch(metrics, _state) -> None:
                finished.append(metrics)

            result = train_trial(config, dataset, on_epoch=on_epoch, on_step=on_step)
    except KeyboardInterrupt:
        best = max(finished, key=lambda m: m.val_accuracy, default=None)
        so_far = (f"; best validation accuracy {best.val_accuracy:.4f} (epoch {best.epoch})"
                  if best else "")
        err_console.print(f"stopped after {time.monotonic() - began:.0f} s with "
                          f"{len(finished)} of {config.epochs} epochs finished{so_far}; "
                          f"nothing was saved", highlight=False)
        raise typer.Exit(130) from None
    saved = None
    if save is not None and result.best_model is not None:
        from fmnist_ray.model_export.export import export_model, sidecar_metrics

        export_model(result.best_model, config, sidecar_metrics(result.to_dict()), save)
        saved = save
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    console.print(_epoch_table(result.history))
    best = result.best
    if result.status == Status.DIVERGED:
        console.print(f"[bold red]diverged[/] at epoch {result.epochs_run}: the loss became "
                      f"NaN/inf; lower --lr (now {config.lr:g})")
    if result.status == Status.FAILED_TO_LEARN:
        console.print(f"[bold red]failed to learn[/]: best validation accuracy "
                      f"{best.val_accuracy:.4f} is at chance (0.10); try another --lr (now "
                      f"{config.lr:g})")
    if best.test_accuracy is not None:
        console.print(f"test accuracy {best.test_accuracy:.4f}, test loss {best.test_loss:.4f} "
                      f"(weights of best validation epoch {best.epoch}); {result.params:,} "
                      f"parameters; {result.seconds:.1f} s on {result.device} ({result.precision})")
    if saved:
        console.print(f"model saved: {saved} (and {saved.with_suffix('.json')}); classify "
                      f"images with: fmnist-ray predict {saved} IMAGE.png", highlight=False)



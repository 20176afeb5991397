"""`export` and `predict`: a trained model out of a sweep, and its predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fmnist_ray.cli.common import ResultsDir, command, console, user_errors
from fmnist_ray.errors import UserError


@command(epilog=(
    "Example: fmnist-ray export results/batch_size -o model.pt"))
@user_errors
def export(
    results_dir: ResultsDir,
    output: Annotated[Path, typer.Option(
        "-o", "--output", metavar="MODEL.pt", help="The TorchScript file to write.")
    ] = Path("model.pt"),
    trial: Annotated[str | None, typer.Option(
        metavar="ID", help="A trial id (default: the trial the sweep chose on validation).")
    ] = None,
) -> None:
    """Export a trial's best-validation weights as TorchScript (loads without this tool),
    with a .json sidecar: config, normalisation, class names, test metrics."""
    from fmnist_ray.model_export.export import config_from_row, export_model, sidecar_metrics
    from fmnist_ray.report.browse import find_trial, newest_checkpoint
    from fmnist_ray.training.loop import TrainState

    uri = results_dir.rstrip("/")
    _, row = find_trial(uri, trial)
    checkpoint = newest_checkpoint(uri, row)
    state = TrainState.load(checkpoint)
    if state.best_model is None:
        raise UserError(f"{checkpoint}: written by an older version that kept no best-epoch "
                        f"weights; run the sweep again (or resume it) to export it")
    sidecar = export_model(state.best_model, config_from_row(row), sidecar_metrics(row), output)
    console.print(f"exported trial {row['trial_id']} (best epoch {state.best.epoch}, test "
                  f"accuracy {state.best.test_accuracy:.4f}): {output}, {sidecar}",
                  highlight=False)


@command(epilog=(
    "Example: fmnist-ray predict model.pt shirt.jpg boot.png --json"))
@user_errors
def predict(
    model: Annotated[Path, typer.Argument(metavar="MODEL.pt", help="An exported model.")],
    images: Annotated[list[Path], typer.Argument(
        metavar="IMAGES...", help="PNG/JPEG files (any size, colour or grey) or an IDX .gz.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """Classify images with an exported model: class and probability per image."""
    from fmnist_ray.model_export.export import load_exported
    from fmnist_ray.model_export.export import predict as classify
    from fmnist_ray.model_export.images import read_images

    network, info = load_exported(model)
    labels, pixels = read_images(images)
    probabilities = classify(network, pixels)
    names = info["class_names"]
    rows = [{"image": label, "class": names[int(p.argmax())],
             "probability": round(float(p.max()), 4)}
            for label, p in zip(labels, probabilities, strict=True)]
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        console.print(f"{row['image']}: {row['class']} ({row['probability']:.2f})",
                      highlight=False)

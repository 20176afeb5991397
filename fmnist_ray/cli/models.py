"""`export` and `predict`: a trained model out of a sweep, and its predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fmnist_ray.cli.common import ResultsDir, command, console, user_errors
from fmnist_ray.errors import UserError
from fmnist_ray.model_export.formats import ONNX_OPSET, ModelFormat, format_of


@command(epilog=(
    "Examples:\nfmnist-ray export results/batch_size -o model.pt2\n"
    "fmnist-ray export results/batch_size --format onnx -o model.onnx"))
@user_errors
def export(
    results_dir: ResultsDir,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="MODEL", help="The file to write: .pt2, .onnx or .pt "
        "(default: model.pt2, or model.onnx / model.pt as --format says).")] = None,
    fmt: Annotated[ModelFormat | None, typer.Option(
        "--format", metavar="FORMAT", help="pt2: a torch.export program (torch.export.load); "
        f"onnx: ONNX opset {ONNX_OPSET} for onnxruntime (pip install 'fmnist-ray\\[onnx]'); "
        "torchscript: for runtimes older than torch.export. Default: what -o's suffix names, "
        "else pt2.")] = None,
    trial: Annotated[str | None, typer.Option(
        metavar="ID", help="A trial id (default: the trial the sweep chose on validation).")
    ] = None,
) -> None:
    """Export a trial's best-validation weights as a model that loads without this tool
    (torch.export, ONNX or TorchScript), with a .json sidecar: config, normalisation, class
    names, test metrics."""
    if output is None:
        output = Path("model").with_suffix((fmt or ModelFormat.pt2).suffix)
    format_of(output, fmt)  # a wrong name is refused before any loading
    from fmnist_ray.model_export.export import config_from_row, export_model, sidecar_metrics
    from fmnist_ray.report.browse import find_trial, newest_checkpoint
    from fmnist_ray.results.storage import results_location
    from fmnist_ray.training.loop import TrainState

    uri, _, _ = results_location(results_dir)
    _, row = find_trial(uri, trial)
    checkpoint = newest_checkpoint(uri, row)
    state = TrainState.load(checkpoint)
    if state.best_model is None:
        raise UserError(f"{checkpoint}: written by an older version that kept no best-epoch "
                        f"weights; run the sweep again (or resume it) to export it")
    sidecar = export_model(state.best_model, config_from_row(row), sidecar_metrics(row), output,
                           fmt)
    console.print(f"exported trial {row['trial_id']} (best epoch {state.best.epoch}, test "
                  f"accuracy {state.best.test_accuracy:.4f}): {output}, {sidecar}",
                  highlight=False)


@command(epilog=(
    "Example: fmnist-ray predict model.pt2 shirt.jpg boot.png --json"))
@user_errors
def predict(
    model: Annotated[Path, typer.Argument(
        metavar="MODEL", help="An exported model: .pt2, .onnx or .pt.")],
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

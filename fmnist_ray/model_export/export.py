"""A trained model out of the tool, in one of `formats.ModelFormat` (torch.export by default,
ONNX, TorchScript) that loads without this package, with a sidecar JSON (format, config, pixel
normalisation, class names, test metrics), and predictions from it.

The exported model takes float images of shape [N, 1, 28, 28] scaled to 0-1, light garment
on a dark background as in Fashion-MNIST, and returns logits over the ten classes; the
normalisation the model was trained with is inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fmnist_ray.config import TrialConfig
from fmnist_ray.errors import UserError
from fmnist_ray.model_export import formats
from fmnist_ray.model_export.formats import ModelFormat
from fmnist_ray.training.data import CLASS_NAMES, PIXEL_MEAN, PIXEL_STD
from fmnist_ray.training.loop import build_trial_model


class _Normalized(nn.Module):
    """The trained model behind the normalisation it was trained with."""

    def __init__(self, model: nn.Module, normalize: bool):
        super().__init__()
        self.model = model
        self.mean = PIXEL_MEAN if normalize else 0.0
        self.std = PIXEL_STD if normalize else 1.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def export_model(weights: dict[str, Any], config: TrialConfig, metrics: dict[str, Any],
                 output: Path, fmt: ModelFormat | None = None) -> Path:
    """Write `output` in `fmt` (default: what its suffix names) and its sidecar JSON; return the
    sidecar's path."""
    fmt = formats.format_of(output, fmt)
    model = build_trial_model(config)
    model.load_state_dict(weights)
    wrapped = _Normalized(model.eval(), config.normalize).eval()
    output.parent.mkdir(parents=True, exist_ok=True)
    formats.write(wrapped, fmt, output)
    sidecar = sidecar_path(output)
    sidecar.write_text(json.dumps({
        "format": fmt.tag,
        "load": fmt.how_to_load.replace("MODEL", output.stem),
        **({"onnx_opset": formats.ONNX_OPSET} if fmt is ModelFormat.onnx else {}),
        "input": "float32 [N, 1, 28, 28], pixels scaled to 0-1, light garment on a dark "
                 "background; the model normalises them itself",
        "output": "logits [N, 10]; softmax for probabilities",
        "class_names": list(CLASS_NAMES),
        "normalization": {"applied_inside": config.normalize, "mean": PIXEL_MEAN,
                          "std": PIXEL_STD},
        "config": config.model_dump(mode="json"),
        **{k: v for k, v in metrics.items() if v is not None},
    }, indent=2))
    return sidecar


def config_from_row(row: pd.Series) -> TrialConfig:
    """A trial's config from its `trials.parquet` row."""
    values = {k: row[k] for k in TrialConfig.model_fields if k in row and not _missing(row[k])}
    if isinstance(values.get("hidden_sizes"), str):
        values["hidden_sizes"] = [int(s) for s in values["hidden_sizes"].split("-")]
    return TrialConfig(**{k: v.item() if hasattr(v, "item") else v for k, v in values.items()})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def load_exported(path: Path) -> tuple[formats.Logits, dict[str, Any]]:
    """An exported model (in the format its name says) and its sidecar, or a clear error."""
    fmt = formats.format_of(path)
    sidecar = sidecar_path(path)
    try:
        info = json.loads(sidecar.read_text())
    except FileNotFoundError:
        raise UserError(f"{sidecar}: not found beside {path}; export the model with "
                        f"`fmnist-ray export` (or train --save), which writes both") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{sidecar}: unreadable ({exc}); export the model again") from None
    if not isinstance(info, dict) or "class_names" not in info:
        raise UserError(f"{sidecar}: not a sidecar this tool wrote (no class_names); export "
                        f"the model again")
    if info.get("format") != fmt.tag:
        raise UserError(f"{sidecar}: describes a {info.get('format')} model, not {path} (a later "
                        f"export to the same name replaced it?); export {path.name} again")
    return formats.read(fmt, path), info


def predict(model: formats.Logits, images: np.ndarray) -> np.ndarray:
    """Class probabilities [N, 10] for uint8 images [N, 28, 28]."""
    logits = model(images.astype(np.float32)[:, None] / np.float32(255))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def sidecar_metrics(values) -> dict:
    """What a model's sidecar records of how it was measured."""
    keys = ("test_accuracy", "test_loss", "best_epoch", "best_val_accuracy", "trial_id")
    return {k: (values[k].item() if hasattr(values[k], "item") else values[k])
            for k in keys if k in values}

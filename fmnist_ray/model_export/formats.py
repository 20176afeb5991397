"""The file formats a trained model is exported in, each written and read back here.

- pt2: a `torch.export` program, `torch.export.load(path).module()` (the default);
- onnx: ONNX at opset `ONNX_OPSET`, for onnxruntime (servers, browsers, mobile); writing it
  needs `onnx` and `onnxscript`, reading it `onnxruntime` (`pip install 'fmnist-ray[onnx]'`);
- torchscript: `torch.jit.load(path)`, for runtimes older than torch.export (PyTorch has
  deprecated it: loading it warns).

Every format takes float32 images [N, 1, 28, 28] for any N and returns logits [N, 10]. Names
only at import, so that `--help` stays torch-free.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from fmnist_ray.errors import UserError

if TYPE_CHECKING:
    import numpy as np

ONNX_OPSET = 18  # onnxruntime 1.14 (2023) and later, and onnxruntime-web, run it
ONNX_INPUT, ONNX_OUTPUT = "images", "logits"

Logits = Callable[["np.ndarray"], "np.ndarray"]  # float32 images [N, 1, 28, 28] -> logits [N, 10]


class ModelFormat(str, Enum):
    pt2 = "pt2"
    onnx = "onnx"
    torchscript = "torchscript"

    @property
    def suffix(self) -> str:
        return {"pt2": ".pt2", "onnx": ".onnx", "torchscript": ".pt"}[self.value]

    @property
    def tag(self) -> str:
        """The sidecar's `format`: what wrote the file, for `predict` to check."""
        return f"fmnist-ray/{self.value}-1"

    @property
    def how_to_load(self) -> str:
        return {
            "pt2": "torch.export.load('MODEL.pt2').module()(images)",
            "onnx": f"onnxruntime.InferenceSession('MODEL.onnx').run(None, "
                    f"{{'{ONNX_INPUT}': images}})[0]",
            "torchscript": "torch.jit.load('MODEL.pt')(images)",
        }[self.value]


NAMING = ".pt2 (torch.export), .onnx (ONNX) or .pt (TorchScript)"


def format_of(path: Path, requested: ModelFormat | None = None) -> ModelFormat:
    """The format a model file's name says, which must agree with `requested` when given."""
    by_suffix = {f.suffix: f for f in ModelFormat}.get(path.suffix)
    if requested is not None and by_suffix not in (None, requested):
        raise UserError(f"{path}: a {by_suffix.value} file's name, but --format "
                        f"{requested.value}; name it {path.with_suffix(requested.suffix).name}")
    if requested is not None and by_suffix is None:
        raise UserError(f"{path}: --format {requested.value} writes a {requested.suffix} file; "
                        f"name it {path.with_suffix(requested.suffix).name}")
    if by_suffix is None:
        raise UserError(f"{path}: name the model file {NAMING}; its sidecar is the same name "
                        f"with .json")
    return by_suffix


def write(module, fmt: ModelFormat, path: Path) -> None:
    """Write an eval-mode `torch.nn.Module` on the CPU to `path` in format `fmt`."""
    import torch

    example = torch.zeros(2, 1, 28, 28)  # a batch of 2: 0 and 1 would fix the batch size
    batch = {0: torch.export.Dim("batch", min=1)}
    if fmt is ModelFormat.torchscript:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # asked for by name: it is deprecated
            torch.jit.trace(module, example).save(str(path))
    elif fmt is ModelFormat.pt2:
        torch.export.save(torch.export.export(module, (example,), dynamic_shapes=(batch,)),
                          str(path))
    else:
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise UserError(f"{path}: writing ONNX needs {exc.name}: "
                            f"pip install 'fmnist-ray[onnx]'") from None
        torch.onnx.export(module, (example,), str(path), dynamo=True, opset_version=ONNX_OPSET,
                          input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_shapes=(batch,), external_data=False, verbose=False)


def read(fmt: ModelFormat, path: Path) -> Logits:
    """The model in `path` as a function from images to logits, or a clear error."""
    try:
        if fmt is ModelFormat.onnx:
            return _read_onnx(path)
        import torch

        if fmt is ModelFormat.pt2:
            # torch.export.load logs a traceback at WARNING before its own error on a bad file;
            # the one-line error below says it instead.
            export_log = logging.getLogger("torch.export")
            level = export_log.level
            export_log.setLevel(logging.ERROR)
            try:
                module = torch.export.load(str(path)).module()
            finally:
                export_log.setLevel(level)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # see `write`
                module = torch.jit.load(str(path), map_location="cpu").eval()
    except UserError:
        raise
    except Exception as exc:  # each runtime has its own errors for a file it cannot parse
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a {fmt.value} model this tool exported ({first[:200]}); "
                        f"pass the file `fmnist-ray export` wrote") from None

    def logits(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(images)).numpy()

    return logits


def _read_onnx(path: Path) -> Logits:
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"{path}: reading ONNX needs onnxruntime: "
                        f"pip install 'fmnist-ray[onnx]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run([ONNX_OUTPUT], {ONNX_INPUT: images})[0]

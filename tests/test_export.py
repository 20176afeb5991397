"""The model out of the tool: exported TorchScript loads with plain torch, predicts like the
in-package model, and `predict` classifies picture files the way the training data looks."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fmnist_ray.cli.app import app
from fmnist_ray.config import TrialConfig
from fmnist_ray.model_export.export import export_model
from fmnist_ray.training.data import PIXEL_MEAN, PIXEL_STD, load_fashion_mnist
from fmnist_ray.training.loop import build_trial_model, train_trial

from .conftest import write_dataset

runner = CliRunner()

# Plain torch only: what a user of the exported file would write.
LOAD_AND_PREDICT = """
import gzip, json, sys
import numpy as np, torch
model = torch.jit.load(sys.argv[1]).eval()
raw = gzip.open(sys.argv[2]).read()[16:]
images = torch.from_numpy(np.frombuffer(raw, np.uint8).reshape(-1, 1, 28, 28).copy())
with torch.no_grad():
    predicted = model(images.float() / 255).argmax(1).tolist()
assert not [m for m in sys.modules if m.startswith("fmnist_ray")]
print(json.dumps(predicted))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small MLP trained on 1,000-image synthetic test data, exported to model.pt."""
    base = tmp_path_factory.mktemp("export")
    data_dir = write_dataset(base / "data", n_train=1200, n_test=1000)
    config = TrialConfig(model="mlp", hidden_sizes=[32], epochs=2, precision="fp32",
                         device="cpu")
    result = train_trial(config, load_fashion_mnist(data_dir), threads=1)
    model_path = base / "model.pt"
    export_model(result.best_model, config, {"test_accuracy": result.best.test_accuracy},
                 model_path)
    return base, data_dir, config, result, model_path


def _unzipped(path) -> bytes:
    with gzip.open(path) as handle:
        return handle.read()


def _test_images(data_dir) -> np.ndarray:
    raw = _unzipped(data_dir / "t10k-images-idx3-ubyte.gz")[16:]
    return np.frombuffer(raw, np.uint8).reshape(-1, 28, 28)


def test_exported_model_loads_without_this_package_and_predicts_the_same(trained):
    base, data_dir, config, result, model_path = trained
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, str(model_path),
                           str(data_dir / "t10k-images-idx3-ubyte.gz")],
                          capture_output=True, text=True, timeout=120, cwd=base)
    assert done.returncode == 0, done.stderr[-2000:]
    exported = json.loads(done.stdout)

    model = build_trial_model(config)
    model.load_state_dict(result.best_model)
    images = torch.from_numpy(_test_images(data_dir).copy()).float().div(255).unsqueeze(1)
    with torch.no_grad():
        in_package = model.eval()((images - PIXEL_MEAN) / PIXEL_STD).argmax(1).tolist()
    assert len(exported) == 1000 and exported == in_package
    labels = np.frombuffer(_unzipped(data_dir / "t10k-labels-idx1-ubyte.gz")[8:], np.uint8)
    accuracy = float(np.mean(np.array(exported) == labels))
    assert accuracy == pytest.approx(result.best.test_accuracy, abs=1e-9)
    sidecar = json.loads(model_path.with_suffix(".json").read_text())
    assert sidecar["class_names"][0] == "T-shirt/top"
    assert sidecar["config"]["hidden_sizes"] == [32]
    assert sidecar["normalization"] == {"applied_inside": True, "mean": PIXEL_MEAN,
                                        "std": PIXEL_STD}


def test_predict_classifies_png_and_jpeg_files_like_the_dataset(trained, tmp_path):
    _, data_dir, _, _, model_path = trained
    images = _test_images(data_dir)[:3]
    files = []
    for i, image in enumerate(images):
        dark = tmp_path / f"dark{i}.png"  # as the dataset looks
        Image.fromarray(image).save(dark)
        light = tmp_path / f"light{i}.png"  # a dark garment on white, in colour
        Image.fromarray(255 - image).convert("RGB").save(light)
        files += [dark, light]
    from_files = runner.invoke(app, ["predict", str(model_path), *map(str, files), "--json"])
    assert from_files.exit_code == 0, from_files.output
    from_idx = runner.invoke(app, ["predict", str(model_path),
                                   str(data_dir / "t10k-images-idx3-ubyte.gz"), "--json"])
    expected = [row["class"] for row in json.loads(from_idx.stdout)[:3]]
    predicted = [row["class"] for row in json.loads(from_files.stdout)]
    assert predicted == [c for c in expected for _ in (0, 1)]  # the same, dark or inverted
    assert all(0.1 <= row["probability"] <= 1 for row in json.loads(from_files.stdout))

    big = tmp_path / "big.jpg"  # any size: resized to 28x28
    Image.fromarray(images[0]).resize((300, 200)).save(big)
    text = runner.invoke(app, ["predict", str(model_path), str(big)])
    assert text.exit_code == 0 and text.stdout.startswith(f"{big}: ")


def test_train_save_writes_a_model_and_predict_refuses_what_is_not_one(synthetic_dir,
                                                                       tmp_path):
    saved = tmp_path / "m.pt"
    done = runner.invoke(app, ["train", "--model", "mlp", "--hidden", "16", "--epochs", "1",
                               "--data-dir", str(synthetic_dir), "--save", str(saved)])
    assert done.exit_code == 0, done.output
    assert saved.is_file() and saved.with_suffix(".json").is_file()
    assert f"model saved: {saved}" in done.stdout
    not_a_model = tmp_path / "x.pt"
    not_a_model.write_bytes(b"junk")
    not_a_model.with_suffix(".json").write_text("{}")
    refused = runner.invoke(app, ["predict", str(not_a_model), str(saved)])
    assert refused.exit_code == 2
    assert refused.stderr.startswith(f"error: {not_a_model}: not a model this tool exported")

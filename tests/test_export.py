"""The model out of the tool: each export format (torch.export, ONNX, TorchScript) loads in a
fresh process without this package and without warnings, predicts like the in-package model
on the 10,000 real test images, and `predict` reads every format and classifies picture files
the way the training data looks."""

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
from fmnist_ray.errors import UserError
from fmnist_ray.model_export.export import export_model
from fmnist_ray.model_export.formats import ONNX_OPSET, ModelFormat
from fmnist_ray.training.data import DEBIAN_DIR, PIXEL_MEAN, PIXEL_STD, load_fashion_mnist
from fmnist_ray.training.loop import build_trial_model, train_trial

from .conftest import real_data

runner = CliRunner()
LOGIT_TOLERANCE = 1e-4  # absolute, on logits of order 10: float32 kernels differ by ~1e-6
TEST_IMAGES = DEBIAN_DIR / "t10k-images-idx3-ubyte.gz"

# What a user of each exported file would write: plain torch or plain onnxruntime. Importing
# this package fails in these processes, so a file that needed it could not load.
PRELUDE = """
import gzip, sys
import numpy as np
sys.modules["fmnist_ray"] = None
raw = gzip.open(sys.argv[2]).read()[16:]
images = np.frombuffer(raw, np.uint8).reshape(-1, 1, 28, 28).astype(np.float32) / 255
"""
LOADERS = {
    ModelFormat.pt2: """
import torch
model = torch.export.load(sys.argv[1]).module()
with torch.no_grad():
    logits = model(torch.from_numpy(images)).numpy()
""",
    ModelFormat.onnx: """
sys.modules["torch"] = None  # onnxruntime alone
import onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
logits = session.run(None, {"images": images})[0]
""",
    ModelFormat.torchscript: """
import torch
model = torch.jit.load(sys.argv[1]).eval()
with torch.no_grad():
    logits = model(torch.from_numpy(images)).numpy()
""",
}
SAVE = "np.save(sys.argv[3], logits)\n"
# TorchScript is kept for older runtimes; PyTorch deprecates it with this one warning.
TORCHSCRIPT_WARNING = "`torch.jit.load` is deprecated"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small MLP trained for one epoch on the real data, exported in every format (each in
    its own folder: a sidecar is the model's name with .json), and its in-package logits."""
    base = tmp_path_factory.mktemp("export")
    config = TrialConfig(model="mlp", hidden_sizes=[32], epochs=1, batch_size=256,
                         precision="fp32", device="cpu")
    result = train_trial(config, load_fashion_mnist(DEBIAN_DIR), threads=1)
    models = {}
    for fmt in ModelFormat:
        models[fmt] = base / fmt.value / f"model{fmt.suffix}"
        export_model(result.best_model, config, {"test_accuracy": result.best.test_accuracy},
                     models[fmt])
    model = build_trial_model(config)
    model.load_state_dict(result.best_model)
    images = torch.from_numpy(_test_images().copy()).float().div(255).unsqueeze(1)
    with torch.no_grad():
        logits = model.eval()((images - PIXEL_MEAN) / PIXEL_STD).numpy()
    return base, result, models, logits


def _test_images() -> np.ndarray:
    with gzip.open(TEST_IMAGES) as handle:
        return np.frombuffer(handle.read()[16:], np.uint8).reshape(-1, 28, 28)


def _test_labels() -> np.ndarray:
    with gzip.open(DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz") as handle:
        return np.frombuffer(handle.read()[8:], np.uint8)


def _load_in_fresh_process(fmt, model_path, out, *warning_filters):
    return subprocess.run(
        [sys.executable, "-W", "error", *warning_filters, "-c", PRELUDE + LOADERS[fmt] + SAVE,
         str(model_path), str(TEST_IMAGES), str(out)],
        capture_output=True, text=True, timeout=300, cwd=out.parent)


@real_data
@pytest.mark.parametrize("fmt", [ModelFormat.pt2, ModelFormat.onnx])
def test_each_format_loads_without_this_package_or_a_warning_and_predicts_the_same(
        trained, fmt, tmp_path):
    _, result, models, in_package = trained
    done = _load_in_fresh_process(fmt, models[fmt], tmp_path / "logits.npy")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""  # nothing printed: no warning, not even onnxruntime's own log
    exported = np.load(tmp_path / "logits.npy")
    assert exported.shape == (10_000, 10)
    np.testing.assert_allclose(exported, in_package, rtol=0, atol=LOGIT_TOLERANCE)
    assert (exported.argmax(1) == in_package.argmax(1)).all()
    accuracy = float(np.mean(exported.argmax(1) == _test_labels()))
    sidecar = json.loads(models[fmt].with_suffix(".json").read_text())
    assert accuracy == pytest.approx(sidecar["test_accuracy"], abs=1e-9)
    assert sidecar["test_accuracy"] == result.best.test_accuracy


@real_data
def test_torchscript_loads_with_only_its_deprecation_warning_and_predicts_the_same(
        trained, tmp_path):
    _, _, models, in_package = trained
    out = tmp_path / "logits.npy"
    strict = _load_in_fresh_process(ModelFormat.torchscript, models[ModelFormat.torchscript], out)
    assert strict.returncode != 0 and f"FutureWarning: {TORCHSCRIPT_WARNING}" in strict.stderr
    done = _load_in_fresh_process(ModelFormat.torchscript, models[ModelFormat.torchscript], out,
                                  "-W", f"ignore:{TORCHSCRIPT_WARNING}:FutureWarning")
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(out), in_package, rtol=0, atol=LOGIT_TOLERANCE)


@real_data
def test_every_format_carries_the_same_sidecar_and_onnx_states_its_opset(trained):
    import onnx

    _, _, models, _ = trained
    sidecars = {fmt: json.loads(path.with_suffix(".json").read_text())
                for fmt, path in models.items()}
    assert {fmt: s["format"] for fmt, s in sidecars.items()} == {
        ModelFormat.pt2: "fmnist-ray/pt2-1", ModelFormat.onnx: "fmnist-ray/onnx-1",
        ModelFormat.torchscript: "fmnist-ray/torchscript-1"}
    assert sidecars[ModelFormat.onnx]["onnx_opset"] == ONNX_OPSET == 18
    assert "torch.export.load('model.pt2')" in sidecars[ModelFormat.pt2]["load"]
    common = [{k: v for k, v in s.items() if k not in ("format", "load", "onnx_opset")}
              for s in sidecars.values()]
    assert common[0] == common[1] == common[2]
    assert common[0]["class_names"][0] == "T-shirt/top"
    assert common[0]["config"]["hidden_sizes"] == [32]
    assert common[0]["normalization"] == {"applied_inside": True, "mean": PIXEL_MEAN,
                                          "std": PIXEL_STD}
    written = onnx.load(str(models[ModelFormat.onnx]))
    assert {o.domain: o.version for o in written.opset_import}[""] == ONNX_OPSET


@real_data
def test_predict_reads_every_format_it_writes(trained):
    _, _, models, in_package = trained
    names = json.loads(models[ModelFormat.pt2].with_suffix(".json").read_text())["class_names"]
    expected = [names[i] for i in in_package.argmax(1)]
    for fmt, path in models.items():
        done = runner.invoke(app, ["predict", str(path), str(TEST_IMAGES), "--json"])
        assert done.exit_code == 0, (fmt, done.output)
        assert [row["class"] for row in json.loads(done.stdout)] == expected, fmt


@real_data
def test_predict_classifies_png_and_jpeg_files_like_the_dataset(trained, tmp_path):
    _, _, models, _ = trained
    model_path = models[ModelFormat.pt2]
    images = _test_images()[:3]
    files = []
    for i, image in enumerate(images):
        dark = tmp_path / f"dark{i}.png"  # as the dataset looks
        Image.fromarray(image).save(dark)
        light = tmp_path / f"light{i}.png"  # a dark garment on white, in colour
        Image.fromarray(255 - image).convert("RGB").save(light)
        files += [dark, light]
    from_files = runner.invoke(app, ["predict", str(model_path), *map(str, files), "--json"])
    assert from_files.exit_code == 0, from_files.output
    from_idx = runner.invoke(app, ["predict", str(model_path), str(TEST_IMAGES), "--json"])
    expected = [row["class"] for row in json.loads(from_idx.stdout)[:3]]
    predicted = [row["class"] for row in json.loads(from_files.stdout)]
    assert predicted == [c for c in expected for _ in (0, 1)]  # the same, dark or inverted
    assert all(0.1 <= row["probability"] <= 1 for row in json.loads(from_files.stdout))

    big = tmp_path / "big.jpg"  # any size, one image alone: resized to 28x28, a batch of 1
    Image.fromarray(images[0]).resize((300, 200)).save(big)
    for path in models.values():
        text = runner.invoke(app, ["predict", str(path), str(big)])
        assert text.exit_code == 0 and text.stdout.startswith(f"{big}: "), text.output


def test_train_save_writes_a_model_and_predict_refuses_what_is_not_one(synthetic_dir,
                                                                       tmp_path):
    saved = tmp_path / "m.pt2"
    done = runner.invoke(app, ["train", "--model", "mlp", "--hidden", "16", "--epochs", "1",
                               "--data-dir", str(synthetic_dir), "--save", str(saved)])
    assert done.exit_code == 0, done.output
    assert saved.is_file() and saved.with_suffix(".json").is_file()
    assert f"model saved: {saved}" in done.stdout
    sidecar = saved.with_suffix(".json").read_text()
    for fmt in ModelFormat:
        not_a_model = tmp_path / f"x{fmt.suffix}"
        not_a_model.write_bytes(b"junk")
        not_a_model.with_suffix(".json").write_text(sidecar.replace("pt2-1", f"{fmt.value}-1"))
        refused = runner.invoke(app, ["predict", str(not_a_model), str(saved)])
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.startswith(
            f"error: {not_a_model}: not a {fmt.value} model this tool exported"), refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


def test_bad_names_formats_and_sidecars_get_one_line_each(synthetic_dir, tmp_path,
                                                          monkeypatch):
    def error(*args):
        done = runner.invoke(app, list(args))
        assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1, done.output
        return done.stderr

    assert "m.pt2: a pt2 file's name, but --format onnx; name it m.onnx" in error(
        "export", "results/x", "--format", "onnx", "-o", "m.pt2")
    assert "m.bin: --format torchscript writes a .pt file; name it m.pt" in error(
        "export", "results/x", "--format", "torchscript", "-o", "m.bin")
    assert "m.bin: name the model file .pt2 (torch.export), .onnx (ONNX) or .pt" in error(
        "export", "results/x", "-o", "m.bin")
    assert "m.h5: name the model file .pt2" in error("predict", "m.h5", "x.png")

    saved = tmp_path / "m.pt2"
    runner.invoke(app, ["train", "--model", "mlp", "--hidden", "8", "--epochs", "1",
                        "--data-dir", str(synthetic_dir), "--save", str(saved)])
    replaced = tmp_path / "m.onnx"  # exported to the same name: m.json now describes m.pt2
    replaced.write_bytes(b"junk")
    assert (f"m.json: describes a fmnist-ray/pt2-1 model, not {replaced} (a later export to "
            f"the same name replaced it?); export m.onnx again") in error(
        "predict", str(replaced), str(saved))

    # Without the optional extra: one line naming it, for reading and for writing.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    replaced.with_suffix(".json").write_text(
        saved.with_suffix(".json").read_text().replace("pt2-1", "onnx-1"))
    assert "reading ONNX needs onnxruntime: pip install 'fmnist-ray[onnx]'" in error(
        "predict", str(replaced), str(saved))
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    config = TrialConfig(model="mlp", hidden_sizes=[8])
    with pytest.raises(UserError, match=r"writing ONNX needs onnxscript: pip install "):
        export_model(build_trial_model(config).state_dict(), config, {}, tmp_path / "n.onnx")


def test_onnx_export_prints_nothing(tmp_path, capfd):
    """torch.onnx's exporter reports its steps on stdout unless told not to."""
    config = TrialConfig(model="cnn", width=4)
    export_model(build_trial_model(config).state_dict(), config, {}, tmp_path / "m.onnx")
    assert capfd.readouterr() == ("", "")
    assert (tmp_path / "m.onnx").stat().st_size > 1000

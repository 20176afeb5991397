"""What makes CPU training steps faster keeps their meaning: dropout's rate and scale, the
optimizers' choice of kernel, the allocator setting, and the achieved-vs-peak benchmark."""

import json
import subprocess
import sys

import pytest
import torch

from fmnist_ray.config import OPTIMIZERS, TrialConfig
from fmnist_ray.training.data import DEBIAN_DIR
from fmnist_ray.training.dropout import Dropout, keep_mask
from fmnist_ray.training.loop import build_optimizer
from fmnist_ray.training.memory import keep_freed_memory
from fmnist_ray.training.models import build_model

from .conftest import REPO


@pytest.mark.parametrize("p", [0.05, 0.15, 0.3, 0.5])
def test_the_mask_drops_p_of_the_elements_and_keeps_the_mean(p):
    torch.manual_seed(0)
    x = torch.ones(1_000_000)
    mask = keep_mask(x, p)
    dropped = (mask == 0).double().mean().item()
    assert dropped == pytest.approx(p, abs=0.002)  # 1M draws: SD 0.0005
    kept = mask[mask != 0].unique()
    assert len(kept) == 1 and kept.item() == pytest.approx(1 / (1 - p), rel=1e-4)
    assert mask.mean().item() == pytest.approx(1.0, abs=0.005)


def test_every_bit_of_the_draws_is_used_evenly():
    """A random_ without a range leaves the top bit of every int64 at 0: one mask number in
    four would then never fall below the threshold."""
    torch.manual_seed(1)
    mask = keep_mask(torch.ones(400_000), 0.5).view(-1, 4)
    for column in mask.T:
        assert (column == 0).double().mean().item() == pytest.approx(0.5, abs=0.01)


def test_dropout_keeps_the_layout_follows_the_seed_and_is_identity_in_eval():
    x = torch.randn(8, 6, 5, 5).contiguous(memory_format=torch.channels_last)
    layer = Dropout(0.3)
    torch.manual_seed(2)
    first = layer(x)
    torch.manual_seed(2)
    assert torch.equal(layer(x), first)
    assert first.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(first[first != 0], (x * (1 / (1 - round(0.3 * 65536) / 65536)))[first != 0])
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_the_mask_built_from_bit_patterns_equals_the_scaled_comparison(dtype):
    x = torch.ones(4, 8, 9, 9, dtype=dtype).contiguous(memory_format=torch.channels_last)
    for p in (0.05, 0.15, 0.5, 0.77):
        torch.manual_seed(4)
        mask = keep_mask(x, p)
        torch.manual_seed(4)
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None)
        dropped = round(p * 65536)
        expected = (words.view(torch.int16)[:x.numel()] >= dropped - 32768).to(dtype).mul_(
            65536 / (65536 - dropped))
        assert mask.dtype == dtype and mask.stride() == x.stride()
        assert torch.equal(mask.flatten(), expected) or torch.equal(
            mask.permute(0, 2, 3, 1).flatten(), expected)


def _relu_before_pool(model: torch.nn.Sequential) -> torch.nn.Sequential:
    """The same layers with each ReLU that directly follows a max-pool moved before it: the
    order the study's models were written in."""
    layers = list(model)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], torch.nn.MaxPool2d) and isinstance(layers[i + 1], torch.nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("name", ["cnn", "deep_cnn_bn"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_pooling_before_relu_gives_the_same_outputs_and_gradients_bit_for_bit(name, dtype):
    torch.manual_seed(6)
    model = build_model(name, dropout=0.3).to(memory_format=torch.channels_last)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model) == 2
    reference = _relu_before_pool(build_model(name, dropout=0.3)).to(
        memory_format=torch.channels_last)
    assert [type(m) for m in reference] != [type(m) for m in model]
    reference.load_state_dict(model.state_dict())  # the parameters kept their positions
    # A blank half makes ties inside pooling windows common, the case where order could matter.
    x = torch.randn(16, 1, 28, 28)
    x[:, :, :, :14] = 0.5
    x = x.contiguous(memory_format=torch.channels_last)
    outputs, grads = [], []
    for net in (model, reference):
        torch.manual_seed(7)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = net(x)
        out.float().square().mean().backward()
        outputs.append(out)
        grads.append([p.grad for p in net.parameters()])
    assert torch.equal(outputs[0], outputs[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_dropout_gradient_is_the_mask():
    x = torch.randn(64, 32, requires_grad=True)
    torch.manual_seed(3)
    y = Dropout(0.25)(x)
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_cpu_optimizers_use_the_fused_kernel_where_one_exists(name):
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = build_optimizer(TrialConfig(optimizer=name, lr=0.1), params)
    fused = optimizer.param_groups[0].get("fused") or False
    assert fused == (name in ("adam", "adamw", "adagrad", "sgd_momentum", "nesterov"))


def test_freed_memory_is_kept_once_per_process():
    assert keep_freed_memory() is keep_freed_memory()
    if sys.platform == "linux":
        assert keep_freed_memory() is True


@pytest.mark.skipif(not (DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="needs the installed Fashion-MNIST")
def test_achieved_peak_counts_flops_and_measures_the_peak():
    done = subprocess.run([sys.executable, "benchmarks/achieved_peak.py", "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["peak_gflops"]["bf16"] > 0 and result["peak_gflops"]["fp32"] > 0
    cases = {(c["model"], c["batch_size"]): c for c in result["cases"]}
    assert len(cases) == 9
    # 784*256 + 256*128 + 128*10 multiply-adds forward, twice that backward (no input grad)
    mlp = 2 * (784 * 256 + 256 * 128 + 128 * 10)
    assert cases["mlp 256-128", 64]["mflop_per_image"] * 1e6 == pytest.approx(
        mlp * 3 - 2 * 784 * 256, rel=1e-6)
    assert all(c["gflops"] > 0 for c in cases.values())

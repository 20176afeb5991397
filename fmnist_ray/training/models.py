"""The study's architectures, built by name from a registry.

Every model takes 1 x 28 x 28 images, returns 10 logits, and has dropout as a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from fmnist_ray.training.dropout import Dropout

NUM_CLASSES = 10


def _pool_then_relu() -> list[nn.Module]:
    """Max-pooling before the ReLU that the study's models put before it: ReLU is monotone, so
    max and ReLU commute and both the outputs and the gradients are the same bit for bit, with
    the ReLU applied to a quarter of the values (`cnn` steps 5-11% faster on the CPU,
    BENCHMARKS.md). The parameters keep their positions, so saved weights load unchanged."""
    return [nn.MaxPool2d(2), nn.ReLU()]


def mlp(hidden_sizes: Sequence[int] = (512,), dropout: float = 0.0, **_: object) -> nn.Module:
    """Fully connected network: one Linear-ReLU(-Dropout) block per hidden size."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, NUM_CLASSES))
    return nn.Sequential(*layers)


def cnn(width: int = 32, dropout: float = 0.0, **_: object) -> nn.Module:
    """Two conv + max-pool stages and a dense head: the study's plain CNN."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), *_pool_then_relu(),
        nn.Conv2d(width, 2 * width, 3, padding=1), *_pool_then_relu(),
        nn.Flatten(),
        nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(), Dropout(dropout),
        nn.Linear(128, NUM_CLASSES),
    )


def _conv_bn(c_in: int, c_out: int, relu: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
    return [*layers, nn.ReLU()] if relu else layers


def deep_cnn_bn(width: int = 32, dropout: float = 0.0, **_: object) -> nn.Module:
    """Two stages of two conv-BN-ReLU layers each, then a BN dense head: the study's best kind."""
    return nn.Sequential(
        *_conv_bn(1, width), *_conv_bn(width, width, relu=False), *_pool_then_relu(),
        Dropout(dropout / 2),
        *_conv_bn(width, 2 * width), *_conv_bn(2 * width, 2 * width, relu=False),
        *_pool_then_relu(), Dropout(dropout / 2),
        nn.Flatten(),
        nn.Linear(2 * width * 7 * 7, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
        Dropout(dropout),
        nn.Linear(256, NUM_CLASSES),
    )


class _ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (a strided 1x1 conv where the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet(width: int = 32, depth: int = 1, dropout: float = 0.0, **_: object) -> nn.Module:
    """A small ResNet: three stages (28, 14, 7 px; width, 2x, 4x channels) of `depth` blocks.

    width 16-32 and depth 1-2 train on a CPU; wider and deeper is the GPU end of the family
    (width 64, depth 3 is close to ResNet-20 in shape).
    """
    layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1, bias=False),
                               nn.BatchNorm2d(width), nn.ReLU()]
    channels = width
    for stage in range(3):
        for block in range(depth):
            out = width * 2 ** stage
            layers.append(_ResidualBlock(channels, out, 2 if stage and not block else 1))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), Dropout(dropout),
               nn.Linear(channels, NUM_CLASSES)]
    return nn.Sequential(*layers)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "cnn": cnn,
    "deep_cnn_bn": deep_cnn_bn,
    "resnet": resnet,
}


def build_model(name: str, **options: object) -> nn.Module:
    """Build a registered model; unknown names raise KeyError (configs are validated earlier)."""
    return MODELS[name](**options)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

import pytest
import torch

from fmnist_ray.training.models import MODELS, build_model, count_parameters


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_maps_images_to_ten_logits(name):
    model = build_model(name, dropout=0.3).eval()
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, 10)


def test_registry_builds_exactly_the_names_specs_accept():
    from fmnist_ray import config

    assert tuple(MODELS) == config.MODELS


@pytest.mark.parametrize(("name", "options", "expected"), [
    ("mlp", {"hidden_sizes": [256]}, 784 * 256 + 256 + 256 * 10 + 10),
    ("mlp", {"hidden_sizes": [512, 256]}, 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10),
    ("cnn", {"width": 32}, (9 * 32 + 32) + (9 * 32 * 64 + 64) + (64 * 49 * 128 + 128)
     + (128 * 10 + 10)),
])
def test_parameter_counts(name, options, expected):
    assert count_parameters(build_model(name, **options)) == expected


def test_deep_cnn_has_batch_norm_and_more_conv_layers_than_cnn():
    deep, plain = build_model("deep_cnn_bn"), build_model("cnn")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in deep.modules())
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in x.modules()) for x in (deep, plain)]
    assert convs == [4, 2]


def test_dropout_is_active_in_training_only():
    model = build_model("mlp", hidden_sizes=[64], dropout=0.5)
    x = torch.rand(8, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_resnet_width_and_depth_scale_it():
    small, deeper, wider = (count_parameters(build_model("resnet", width=w, depth=d))
                            for w, d in ((16, 1), (16, 2), (32, 1)))
    assert small < deeper and small < wider
    blocks = sum(type(m).__name__ == "_ResidualBlock"
                 for m in build_model("resnet", depth=3).modules())
    assert blocks == 9

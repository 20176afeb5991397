import math
import subprocess
import sys

import pytest
import torch

from fmnist_ray.config import OPTIMIZERS, TrialConfig
from fmnist_ray.training.data import load_fashion_mnist
from fmnist_ray.training.loop import TrainState, build_optimizer, train_trial


@pytest.fixture(scope="module")
def data(synthetic_dir):
    return load_fashion_mnist(synthetic_dir)


def test_loss_falls_and_accuracy_rises(data):
    config = TrialConfig(model="mlp", hidden_sizes=[64], epochs=4, batch_size=32, lr=3e-3)
    result = train_trial(config, data)
    losses = [m.train_loss for m in result.history]
    assert result.status == "completed" and result.epochs_run == 4
    assert losses[-1] < losses[0] / 2
    assert result.best.val_accuracy > 0.9
    assert result.best.test_accuracy > 0.9
    assert sum(map(sum, result.best.confusion)) == 300


def test_test_metrics_come_from_the_best_validation_epoch(data):
    seen = []
    config = TrialConfig(model="mlp", hidden_sizes=[32], epochs=3, batch_size=64)
    result = train_trial(config, data, on_epoch=lambda m, s: seen.append((m, s.best)))
    best_epoch = max(seen, key=lambda pair: pair[0].val_accuracy)[0].epoch
    assert result.best.epoch == best_epoch
    assert [m.epoch for m, _ in seen] == [1, 2, 3]
    assert all(m.images_per_second > 0 and m.epoch_seconds > 0 for m, _ in seen)


AUGMENTED_AND_SCHEDULED = {"augment_crop": 2, "augment_flip": True, "augment_erasing": 0.5,
                           "schedule": "onecycle", "label_smoothing": 0.1, "ema": 0.9}


@pytest.mark.parametrize(("model", "extra"), [
    ("mlp", {}), ("deep_cnn_bn", {}), ("resnet", AUGMENTED_AND_SCHEDULED),
    ("mlp", {**AUGMENTED_AND_SCHEDULED, "schedule": "cosine", "warmup_epochs": 1.5}),
])
def test_resume_from_saved_state_equals_an_uninterrupted_run(data, tmp_path, model, extra):
    config = TrialConfig(model=model, hidden_sizes=[32], width=4, dropout=0.3, epochs=3,
                         batch_size=128, seed=7, **extra)
    full = train_trial(config, data)

    def save_after_first_epoch(metrics, state):
        if metrics.epoch == 1:
            state.save(tmp_path / "state.pt")
            raise KeyboardInterrupt  # the run dies here

    with pytest.raises(KeyboardInterrupt):
        train_trial(config, data, on_epoch=save_after_first_epoch)
    resumed = train_trial(config, data, start=TrainState.load(tmp_path / "state.pt"))
    assert [m.epoch for m in resumed.history] == [1, 2, 3]
    for a, b in zip(full.history, resumed.history, strict=True):
        assert (a.train_loss, a.val_loss, a.val_accuracy) == (b.train_loss, b.val_loss,
                                                              b.val_accuracy)
    assert full.best.test_loss == resumed.best.test_loss


def test_a_nan_loss_ends_the_run_as_diverged(data):
    config = TrialConfig(model="mlp", hidden_sizes=[64], optimizer="sgd_momentum", lr=10.0,
                         epochs=5)
    result = train_trial(config, data)
    assert result.status == "diverged"
    assert result.epochs_run == 1
    assert not math.isfinite(result.history[-1].train_loss)
    assert result.best.test_accuracy is None  # no sound epoch to evaluate


def test_an_exploding_finite_loss_also_counts_as_diverged(data):
    config = TrialConfig(model="cnn", width=4, optimizer="sgd", lr=50.0, epochs=3)
    result = train_trial(config, data)
    assert result.status == "diverged"
    assert math.isfinite(result.history[-1].train_loss)
    assert result.history[-1].train_loss > 23


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_builds(name):
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = build_optimizer(TrialConfig(optimizer=name, lr=0.1), params)
    assert optimizer.param_groups[0]["lr"] == 0.1
    if name == "nesterov":
        assert optimizer.param_groups[0]["nesterov"] is True


def test_channels_last_trains_the_same_cnn(data):
    """memory_format changes how tensors are laid out, not what the model learns."""
    base = dict(model="cnn", width=4, epochs=1, batch_size=128, seed=3, precision="fp32")
    plain = train_trial(TrialConfig(**base, memory_format="contiguous"), data)
    packed = train_trial(TrialConfig(**base, memory_format="channels_last"), data)
    assert packed.history[0].train_loss == pytest.approx(plain.history[0].train_loss, rel=1e-4)
    assert packed.best.val_accuracy == pytest.approx(plain.best.val_accuracy, abs=1e-3)


def test_auto_memory_format_is_channels_last_for_convolutional_models():
    from fmnist_ray.training.loop import resolve_memory_format

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_memory_format(TrialConfig(model="cnn"), cuda) == "channels_last"
    assert resolve_memory_format(TrialConfig(model="deep_cnn_bn"), cuda) == "channels_last"
    assert resolve_memory_format(TrialConfig(model="mlp"), cuda) == "contiguous"
    assert resolve_memory_format(TrialConfig(model="resnet"), cpu) == "channels_last"
    narrow = TrialConfig(model="resnet", width=4, memory_format="channels_last")
    assert resolve_memory_format(narrow, cpu) == "contiguous"  # avoids a PyTorch CPU crash
    assert resolve_memory_format(narrow, cuda) == "channels_last"
    assert resolve_memory_format(TrialConfig(model="mlp"), cpu) == "contiguous"
    assert resolve_memory_format(TrialConfig(model="cnn", memory_format="contiguous"),
                                 cpu) == "contiguous"


def test_augmentation_schedule_and_average_change_training_but_still_learn(data):
    base = TrialConfig(model="mlp", hidden_sizes=[64], epochs=4, batch_size=32, lr=3e-3)
    plain = train_trial(base, data)
    # The synthetic classes are bands 2 px apart: a shift would change the class, so no crop.
    tuned = train_trial(base.model_copy(update={**AUGMENTED_AND_SCHEDULED, "augment_crop": 0}),
                        data)
    assert plain.history[0].train_loss != tuned.history[0].train_loss
    assert tuned.best.val_accuracy > 0.85


def test_the_weight_average_is_what_gets_evaluated(data):
    config = TrialConfig(model="mlp", hidden_sizes=[32], epochs=2, batch_size=64, ema=0.99)
    states = []
    train_trial(config, data, on_epoch=lambda m, s: states.append(s))
    assert states[-1].ema is not None
    assert any(not torch.equal(states[-1].ema[k], states[-1].model[k]) for k in states[-1].ema)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizers_without_compile_guards_train_bit_for_bit_like_torchs_own(name):
    def train(step_with_torchs_own: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        optimizer = build_optimizer(TrialConfig(optimizer=name, lr=0.05, weight_decay=1e-3),
                                    model.parameters())
        state = optimizer.state_dict()  # and back: checkpoints go through both
        optimizer.load_state_dict(state)
        for _ in range(5):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(torch.randn(8, 6)),
                                              torch.randint(3, (8,))).backward()
            if step_with_torchs_own:
                type(optimizer).step(optimizer)
            else:
                optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    for ours, torchs in zip(train(False), train(True), strict=True):
        assert torch.equal(ours, torchs)


def test_training_does_not_import_torch_compile(tmp_path, synthetic_dir):
    """A trial worker or `fmnist-ray train` does not pay ~1.5 s for torch._dynamo."""
    code = (
        "import sys\n"
        "from fmnist_ray.config import TrialConfig\n"
        "from fmnist_ray.training.data import load_fashion_mnist\n"
        "from fmnist_ray.training.loop import TrainState, train_trial\n"
        f"data = load_fashion_mnist({str(synthetic_dir)!r})\n"
        "config = TrialConfig(model='cnn', width=4, optimizer='adamw', epochs=2, ema=0.9)\n"
        "states = []\n"
        "train_trial(config, data, on_epoch=lambda metrics, state: states.append(state))\n"
        "train_trial(config, data, start=states[0])\n"
        "print(sorted(m for m in sys.modules if m.startswith('torch._dynamo')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"

import torch

from fmnist_ray.config import TrialConfig
from fmnist_ray.training.augment import Augmenter
from fmnist_ray.training.schedules import lr_factor


def _augmenter(seed=0, **options) -> Augmenter:
    """An augmenter with one epoch of draws for 2,000 images."""
    augmenter = Augmenter(TrialConfig(**options), torch.Generator().manual_seed(seed))
    augmenter.begin_epoch(2000, torch.device("cpu"))
    return augmenter


def _images(n=256) -> torch.Tensor:
    """n copies of one random image with no black pixels (so padding is recognisable)."""
    image = torch.randint(1, 256, (28, 28), generator=torch.Generator().manual_seed(1))
    return image.to(torch.uint8).expand(n, 28, 28).clone()


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`image` moved down dy and right dx pixels, black where nothing moved in."""
    out = torch.zeros_like(image)
    out[max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = \
        image[max(-dy, 0):28 - max(dy, 0), max(-dx, 0):28 - max(dx, 0)]
    return out


def test_no_options_means_no_augmentation():
    assert not _augmenter().enabled
    assert _augmenter(augment_flip=True).enabled


def test_crop_shifts_each_image_within_the_padding_and_fills_black():
    raw = _images()
    out = _augmenter(augment_crop=3).geometric(raw)
    assert out.shape == raw.shape and out.dtype == torch.uint8
    shifts = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]
    found = []
    for image in out:
        matches = [s for s in shifts if torch.equal(image, _shifted(raw[0], *s))]
        assert len(matches) == 1
        found.append(matches[0])
    assert len(set(found)) > 30  # most of the 49 shifts occur in 256 draws


def test_flip_mirrors_about_half_of_the_images():
    raw = _images(1000)
    out = _augmenter(augment_flip=True).geometric(raw)
    flipped = torch.tensor([torch.equal(a, b.flip(-1)) for a, b in zip(out, raw, strict=True)])
    kept = torch.tensor([torch.equal(a, b) for a, b in zip(out, raw, strict=True)])
    assert bool((flipped | kept).all()) and 400 < int(flipped.sum()) < 600


def test_erasing_blanks_one_rectangle_in_the_chosen_share_of_images():
    x = torch.ones(2000, 1, 28, 28)
    out = _augmenter(augment_erasing=0.25).erase(x)
    erased = (out == 0).flatten(1)
    hit = erased.any(1)
    assert 400 < int(hit.sum()) < 600
    areas = erased.sum(1)[hit].float() / 784
    assert float(areas.min()) >= 0.005 and float(areas.max()) <= 0.5
    for image in out[hit][:50, 0]:
        rows, cols = torch.nonzero(image == 0).unbind(1)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(box) == len(rows)  # one solid rectangle


def test_same_generator_state_gives_the_same_augmentation():
    raw = _images(64)
    options = {"augment_crop": 2, "augment_flip": True}
    assert torch.equal(_augmenter(5, **options).geometric(raw),
                       _augmenter(5, **options).geometric(raw))
    assert not torch.equal(_augmenter(5, **options).geometric(raw),
                           _augmenter(6, **options).geometric(raw))


def test_schedules_start_peak_and_end_where_documented():
    total = 1000
    assert lr_factor("constant", 0, total, 0) == 1.0
    assert lr_factor("constant", 9, total, 100) == 0.1
    assert lr_factor("cosine", 0, total, 0) == 1.0
    assert abs(lr_factor("cosine", 500, total, 0) - 0.5) < 1e-9
    assert lr_factor("cosine", total - 1, total, 0) < 1e-4
    assert abs(lr_factor("onecycle", 0, total, 0) - 1 / 25) < 1e-9
    assert lr_factor("onecycle", 300, total, 0) == 1.0
    assert lr_factor("onecycle", total - 1, total, 0) < 1e-4
    factors = [lr_factor("onecycle", s, total, 0) for s in range(total)]
    peak = factors.index(max(factors))
    assert factors[:peak] == sorted(factors[:peak])
    assert factors[peak:] == sorted(factors[peak:], reverse=True)


def test_a_batch_reads_its_own_columns_of_the_epochs_draws():
    raw = _images(64)
    augmenter = _augmenter(3, augment_crop=2, augment_flip=True)
    whole = augmenter.geometric(raw.repeat(2, 1, 1))
    assert torch.equal(augmenter.geometric(raw, at=64), whole[64:])
    assert not torch.equal(augmenter.geometric(raw, at=0), whole[64:])

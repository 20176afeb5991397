"""Training-batch augmentation on the training device: random crop, flip and erasing.

Whole batches at once, no per-image Python. The random numbers come from one CPU generator
(the run's shuffle generator), so a resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fmnist_ray.config import TrialConfig

# Random erasing's rectangle: a share of the image's area and an aspect ratio (log-uniform).
ERASE_AREA = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)


class Augmenter:
    """The augmentations a trial config asks for; `enabled` is False when it asks for none.

    `begin_epoch` draws the random numbers of a whole epoch at once (one copy to the device,
    not one per batch); a batch then reads its images' columns, from position `at` on.
    """

    # Rows of the per-epoch draws, one column per training image.
    CROP_Y, CROP_X, FLIP, ERASE, AREA, RATIO, TOP, LEFT = range(8)

    def __init__(self, config: TrialConfig, generator: torch.Generator):
        self.crop = config.augment_crop
        self.flip = config.augment_flip
        self.erasing = config.augment_erasing
        self.generator = generator
        self.enabled = bool(self.crop or self.flip or self.erasing)
        self.draws = torch.empty(8, 0)

    def begin_epoch(self, n: int, device: torch.device) -> None:
        """Draw uniform [0, 1) numbers for `n` images (always all rows, so the generator
        advances the same way whatever is enabled)."""
        self.draws = torch.rand(8, n, generator=self.generator).to(device)

    def geometric(self, raw: torch.Tensor, at: int = 0) -> torch.Tensor:
        """Crop and flip a uint8 batch (N, H, W); black padding matches the background."""
        n, h, w = raw.shape
        device = raw.device
        draws = self.draws[:, at:at + n]
        if self.crop:
            pad = self.crop
            padded = F.pad(raw, (pad, pad, pad, pad))
            offsets = (draws[[self.CROP_Y, self.CROP_X]] * (2 * pad + 1)).long()
            rows = offsets[0, :, None] + torch.arange(h, device=device)
            cols = offsets[1, :, None] + torch.arange(w, device=device)
            batch = torch.arange(n, device=device)[:, None, None]
            raw = padded[batch, rows[:, :, None], cols[:, None, :]]
        if self.flip:
            flipped = draws[self.FLIP] < 0.5
            raw = torch.where(flipped[:, None, None], raw.flip(-1), raw)
        return raw

    def erase(self, x: torch.Tensor, at: int = 0) -> torch.Tensor:
        """Set one random rectangle of some images (N, 1, H, W, standardized) to the mean, 0.

        The rectangle's area and aspect ratio are drawn as torchvision's RandomErasing draws
        them; where it would not fit, it is clipped to the image instead of drawn again.
        """
        if not self.erasing:
            return x
        n, _, h, w = x.shape
        device = x.device
        draws = self.draws[:, at:at + n]
        chosen = draws[self.ERASE] < self.erasing
        area = h * w * (ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * draws[self.AREA])
        log_lo, log_hi = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * draws[self.RATIO])
        eh = torch.sqrt(area * ratio).round().clamp(1, h)
        ew = torch.sqrt(area / ratio).round().clamp(1, w)
        top = ((h - eh + 1) * draws[self.TOP]).floor()
        left = ((w - ew + 1) * draws[self.LEFT]).floor()
        rows = torch.arange(h, device=device)[None, :]
        cols = torch.arange(w, device=device)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
        mask = in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None]
        return x.masked_fill(mask[:, None], 0.0)

"""Images to classify, made to look like Fashion-MNIST: 28x28 grey, light garment on black.

PNG / JPEG of any size and colour are made grey, inverted when their background is light (a
photo on white), padded to a square with their background and resized; IDX files (`.gz`, as
the dataset ships) are read as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist_ray.errors import UserError
from fmnist_ray.training.data import IdxFile, read_idx

SIZE = 28
IDX_IMAGES = IdxFile(name="", magic=2051, count=-1, sha256="")  # any count, not checksummed


def _picture(path: Path) -> np.ndarray:
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                grey = ImageOps.exif_transpose(opened).convert("L")
    except FileNotFoundError:
        raise UserError(f"{path}: not found; check the path") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = str(exc).split(",")[0]  # "Image size (N pixels) exceeds limit of M pixels"
        raise UserError(f"{path}: too large to read safely ({size}); pass a smaller copy (a "
                        f"photo of one garment needs far fewer pixels, e.g. 1000x1000)") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path}: not an image ({exc}); pass PNG or JPEG files, or an IDX .gz "
                        f"file") from None
    pixels = np.asarray(grey)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 127:  # a light background: Fashion-MNIST garments are light on black
        grey = ImageOps.invert(grey)
    side = max(grey.size)
    square = Image.new("L", (side, side), 0)
    square.paste(grey, ((side - grey.width) // 2, (side - grey.height) // 2))
    if side != SIZE:
        square = square.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(square, dtype=np.uint8)


def read_images(paths: list[Path]) -> tuple[list[str], np.ndarray]:
    """Labels (a path, or `path[i]` inside an IDX file) and uint8 images [N, 28, 28]."""
    labels: list[str] = []
    arrays: list[np.ndarray] = []
    for path in paths:
        if path.name.endswith(".gz"):
            images = read_idx(path, IDX_IMAGES)
            if images.ndim != 3:
                raise UserError(f"{path}: an IDX file of labels, not images; pass the "
                                f"*-images-idx3-ubyte.gz file")
            labels += [f"{path}[{i}]" for i in range(len(images))]
            arrays.append(images)
        else:
            labels.append(str(path))
            arrays.append(_picture(path)[None])
    if not arrays:
        raise UserError("no images given; pass PNG/JPEG files or an IDX .gz file")
    return labels, np.concatenate(arrays)

"""Find, verify and load Fashion-MNIST from its four original IDX `.gz` files.

Search order: an explicit directory (``--data-dir`` / ``FMNIST_DATA``), Debian's
``dataset-fashion-mnist`` package, then a user cache directory that a one-time download fills.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from fmnist_ray.errors import UserError

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Mean and std of the 60k training pixels scaled to [0, 1].
PIXEL_MEAN = 0.2860
PIXEL_STD = 0.3530
VALIDATION_SIZE = 6_000
SPLIT_SEED = 20_200_523  # fixed, so every trial and every run sees the same validation images

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fmnist-ray"
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)


@dataclass(frozen=True)
class IdxFile:
    """One of the four original files: its name, IDX magic number, and official contents."""

    name: str
    magic: int
    count: int
    sha256: str  # of the decompressed content, so a recompressed copy still verifies


FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte.gz", 2051, 60_000,
                            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train_labels": IdxFile("train-labels-idx1-ubyte.gz", 2049, 60_000,
                            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test_images": IdxFile("t10k-images-idx3-ubyte.gz", 2051, 10_000,
                           "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte.gz", 2049, 10_000,
                           "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}


@dataclass(frozen=True)
class FashionMNIST:
    """The dataset as uint8 arrays (images N x 28 x 28, labels N), split into train/val/test."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    verified_copy: str | None = None  # the cache it was mapped from, verified by an earlier run

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_labels), "val": len(self.val_labels),
                "test": len(self.test_labels)}


def _has_all_files(directory: Path) -> bool:
    return all((directory / f.name).is_file() for f in FILES.values())


def find_data_dir(data_dir: Path | str | None = None, download: bool = True) -> Path:
    """Return the directory holding the four files, downloading them once if nowhere else has them.

    An explicit directory (argument or ``FMNIST_DATA``) is never substituted: if files are
    missing there, that is an error naming the file.
    """
    explicit = data_dir or os.environ.get("FMNIST_DATA")
    if explicit:
        directory = Path(explicit).expanduser()
        missing = [f.name for f in FILES.values() if not (directory / f.name).is_file()]
        if missing:
            raise UserError(
                f"{directory / missing[0]}: file not found; put the four Fashion-MNIST .gz files "
                f"there or drop --data-dir/FMNIST_DATA to use the installed copy"
            )
        return directory
    for directory in (DEBIAN_DIR, CACHE_DIR):
        if _has_all_files(directory):
            return directory
    if not download:
        raise UserError(
            "Fashion-MNIST not found; install it with `apt-get install dataset-fashion-mnist` "
            "or pass --data-dir DIR"
        )
    return _download(CACHE_DIR)


def _download(directory: Path) -> Path:
    """Fetch the four files into ``directory`` once, under a lock so concurrent runs don't race."""
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / ".download.lock")):
        for spec in FILES.values():
            target = directory / spec.name
            if target.is_file():
                continue
            errors = []
            for mirror in MIRRORS:
                try:
                    with urllib.request.urlopen(mirror + spec.name, timeout=60) as response, \
                            tempfile.NamedTemporaryFile(dir=directory, delete=False) as tmp:
                        shutil.copyfileobj(response, tmp)
                    os.replace(tmp.name, target)
                    break
                except OSError as exc:
                    errors.append(f"{mirror}: {exc}")
            else:
                raise UserError(
                    f"could not download {spec.name} ({'; '.join(errors)}); install "
                    f"`dataset-fashion-mnist` or pass --data-dir DIR with the four files"
                )
    return directory


def _repair_hint(path: Path) -> str:
    if path.parent == DEBIAN_DIR:
        return "reinstall it with `apt-get install --reinstall dataset-fashion-mnist`"
    if path.parent == CACHE_DIR:
        return "delete it and the next run downloads it again"
    return "replace it with an intact copy of the original Fashion-MNIST file"


def read_idx(path: Path, spec: IdxFile) -> np.ndarray:
    """Read and verify one IDX `.gz` file: magic number, declared shape, length, checksum."""
    fix = _repair_hint(path)
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; {fix}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: not a readable gzip file ({exc}); {fix}") from None
    header_len = 16 if spec.magic == 2051 else 8
    if len(raw) < header_len:
        raise UserError(f"{path}: truncated IDX header ({len(raw)} bytes); {fix}")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != spec.magic:
        raise UserError(f"{path}: IDX magic number is {magic}, expected {spec.magic}; {fix}")
    shape = (count,)
    if spec.magic == 2051:
        rows, cols = struct.unpack(">II", raw[8:16])
        if (rows, cols) != (28, 28):
            raise UserError(f"{path}: images are {rows}x{cols}, expected 28x28; {fix}")
        shape = (count, 28, 28)
    expected = header_len + int(np.prod(shape))
    if len(raw) != expected:
        raise UserError(
            f"{path}: holds {len(raw)} bytes but its header declares {count} items "
            f"({expected} bytes): the file is truncated or corrupt; {fix}"
        )
    if count == spec.count and hashlib.sha256(raw).hexdigest() != spec.sha256:
        raise UserError(f"{path}: checksum does not match the official Fashion-MNIST file; {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


# The verified, split arrays of the official dataset, kept as .npy files that later runs map
# in milliseconds; a stamp of the source files (size, mtime) says when to verify them again.
VERIFIED_FORMAT = 1
SPLITS = ("train_images", "train_labels", "val_images", "val_labels", "test_images",
          "test_labels")


def _verified_dir(directory: Path) -> Path:
    key = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return CACHE_DIR / "verified" / key


def _stamp(directory: Path) -> dict:
    files = {}
    for spec in FILES.values():
        info = (directory / spec.name).stat()
        files[spec.name] = [info.st_size, info.st_mtime_ns]
    return {"format": VERIFIED_FORMAT, "source": str(directory.resolve()), "files": files,
            "split_seed": SPLIT_SEED, "val_size": VALIDATION_SIZE}


def _load_verified(directory: Path) -> FashionMNIST | None:
    """The arrays verified by an earlier run, if the source files have not changed since."""
    cache = _verified_dir(directory)
    try:
        if json.loads((cache / "stamp.json").read_text()) != _stamp(directory):
            return None
        arrays = {name: np.load(cache / f"{name}.npy", mmap_mode="r") for name in SPLITS}
    except (OSError, ValueError):
        return None
    return FashionMNIST(**arrays, source=str(directory), verified_copy=str(cache))


def _save_verified(directory: Path, dataset: FashionMNIST) -> None:
    """Keep the verified arrays for later runs; best effort (a read-only cache costs speed)."""
    cache = _verified_dir(directory)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "stamp.json").unlink(missing_ok=True)  # invalid while the arrays change
        for name in SPLITS:
            tmp = cache / f"{name}.{os.getpid()}.tmp.npy"
            np.save(tmp, getattr(dataset, name))
            os.replace(tmp, cache / f"{name}.npy")
        tmp = cache / f"stamp.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(_stamp(directory)))
        os.replace(tmp, cache / "stamp.json")  # written last: it vouches for the arrays
    except OSError:
        return


def fingerprint(data: FashionMNIST) -> str:
    """A checksum of the split arrays: results are reused only for trials on the same data."""
    digest = hashlib.blake2b(digest_size=16)
    for name in SPLITS:
        array = np.ascontiguousarray(getattr(data, name))
        digest.update(f"{name}{array.shape}{array.dtype}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _split_validation(images: np.ndarray, labels: np.ndarray, val_size: int):
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    val_idx, train_idx = np.sort(order[:val_size]), np.sort(order[val_size:])
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]


def load_fashion_mnist(
    data_dir: Path | str | None = None, download: bool = True, val_size: int | None = None
) -> FashionMNIST:
    """Load and verify the dataset, splitting a fixed, seeded validation set from training data.

    ``val_size`` defaults to 6,000 of the 60k training images (10% for smaller custom files).
    The official dataset is verified once: its split arrays are kept in the user cache and
    mapped by later runs until a source file changes (size or modification time).
    """
    directory = find_data_dir(data_dir, download=download)
    if val_size in (None, VALIDATION_SIZE) and (cached := _load_verified(directory)):
        return cached
    arrays = {key: read_idx(directory / spec.name, spec) for key, spec in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise UserError(
                f"{directory / FILES[split + '_labels'].name}: {len(labels)} labels for "
                f"{len(images)} images; the {split} files do not belong together"
            )
        if labels.size and labels.max() > 9:
            raise UserError(
                f"{directory / FILES[split + '_labels'].name}: label {int(labels.max())} is "
                f"outside 0-9; replace the file with the original"
            )
    n_train = len(arrays["train_labels"])
    if val_size is None:
        val_size = VALIDATION_SIZE if n_train == 60_000 else max(1, n_train // 10)
    if not 0 < val_size < n_train:
        raise UserError(f"validation size {val_size} must be between 1 and {n_train - 1}")
    train_x, train_y, val_x, val_y = _split_validation(
        arrays["train_images"], arrays["train_labels"], val_size
    )
    dataset = FashionMNIST(train_x, train_y, val_x, val_y,
                           arrays["test_images"], arrays["test_labels"], source=str(directory))
    official = all(len(arrays[key]) == spec.count for key, spec in FILES.items())
    if official and val_size == VALIDATION_SIZE:  # every file matched its official checksum
        _save_verified(directory, dataset)
    return dataset


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (images N x 28 x 28 or labels N)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 2051 if array.ndim == 3 else 2049
    header = struct.pack(">II", magic, array.shape[0])
    if array.ndim == 3:
        header += struct.pack(">II", *array.shape[1:])
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(header + array.tobytes())

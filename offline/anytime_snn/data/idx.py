"""IDX files (the format of the original MNIST and Fashion-MNIST) and the Fashion-MNIST loader."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_COMMAND = "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), or pass the directory holding " \
                  "the four *-ubyte.gz files with --data-path"
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """Read an unsigned-byte IDX array (optionally gzipped)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise DataError(f"{path}: only unsigned-byte IDX files are supported, got type 0x{dtype_code:02x}")
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise DataError(f"{path}: header says shape {shape}, file has {len(data) - header} data bytes")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape).copy()


def load_fashion_mnist(split: str = "train", path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) from the official idx files."""
    if split not in FASHION_FILES:
        raise DataError(f"Fashion-MNIST has splits {list(FASHION_FILES)}, got {split!r}")
    root = Path(path) if path else Path(os.environ.get("ANYTIME_SNN_FASHION_MNIST", FASHION_DIR))
    img_file, lab_file = (root / name for name in FASHION_FILES[split])
    if not img_file.is_file() or not lab_file.is_file():
        raise DataError(f"Fashion-MNIST is not installed ({img_file} is missing). Provide it with: {FASHION_COMMAND}")
    images, labels = read_idx(img_file), read_idx(lab_file)
    if images.ndim != 3 or labels.shape != (len(images),):
        raise DataError(f"Fashion-MNIST {split}: images {images.shape} do not match labels {labels.shape}")
    return images, labels.astype(np.int64)

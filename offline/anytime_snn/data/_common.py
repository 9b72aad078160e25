"""Shared pieces of the data package: the cache directory, the Dataset record, hashing."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError


def data_root() -> Path:
    """Cache directory for converted data sets: ``$ANYTIME_SNN_DATA`` or ``~/.cache/anytime-snn``."""
    env = os.environ.get("ANYTIME_SNN_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "anytime-snn"


@dataclass
class Dataset:
    """Images (N, H, W, C) uint8, labels (N,) int64 in [0, len(label_names)), and the class names."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]

    def __post_init__(self) -> None:
        if self.images.ndim == 3:
            self.images = self.images[..., None]
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(f"{self.name}: images must be uint8 (N, H, W[, C]), got {self.images.dtype} "
                            f"{self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise DataError(f"{self.name}: {len(self.images)} images but labels of shape {self.labels.shape}")
        self.labels = self.labels.astype(np.int64, copy=False)
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.label_names)):
            raise DataError(f"{self.name}: labels must lie in [0, {len(self.label_names)}), got "
                            f"[{self.labels.min()}, {self.labels.max()}]")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, index) -> "Dataset":
        return Dataset(self.name, self.split, self.images[index], self.labels[index], self.label_names)

    def hash(self) -> str:
        return dataset_hash(self.images, self.labels)

    def pixels01(self) -> np.ndarray:
        """Images as float32 intensities in [0, 1], (N, H, W, C)."""
        return self.images.astype(np.float32) / np.float32(255.0)


def dataset_hash(images: np.ndarray, labels: np.ndarray) -> str:
    """``sha256:`` + hex digest of the image and label bytes (shape and dtype included)."""
    h = hashlib.sha256()
    for arr in (images, labels):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.data)
    return "sha256:" + h.hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_npz(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``images``/``labels`` atomically (a crash never leaves a half-written cache file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels)
    os.replace(tmp, path)


def load_npz_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["images"], z["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"cannot read {path}: {e}") from None

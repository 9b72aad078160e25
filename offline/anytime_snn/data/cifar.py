"""CIFAR-10 / CIFAR-100 from the official "python version" batch directories at a user-given path.

``cifar-10-batches-py/``: ``data_batch_1..5``, ``test_batch``, ``batches.meta``.
``cifar-100-python/``: ``train``, ``test``, ``meta`` (fine labels are used).
Each batch is a pickled dict with ``data`` (N, 3072) uint8 (RGB planes) and labels; it is read with
a restricted unpickler that only admits containers and NumPy arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._safe_pickle import UnsafePickleError, safe_loads

HOWTO = ("download the 'python version' archive from https://www.cs.toronto.edu/~kriz/cifar.html, extract it, "
         "and pass the extracted directory with --data-path (e.g. --data-path ~/data/cifar-10-batches-py)")
_LAYOUT = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "labels": "labels", "names": "label_names"},
    "cifar100": {"train": ["train"], "test": ["test"], "meta": "meta", "labels": "fine_labels",
                 "names": "fine_label_names"},
}


def _get(d: dict, key: str):
    for k in (key, key.encode()):
        if k in d:
            return d[k]
    raise DataError(f"CIFAR batch has no {key!r} entry (keys: {list(d)[:8]})")


def _text(s) -> str:
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)


def read_batch(path: Path, labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> images uint8 (N, 32, 32, 3), labels int64 (N,)."""
    try:
        obj = safe_loads(Path(path).read_bytes())
    except (OSError, EOFError, UnsafePickleError, ValueError) as e:
        raise DataError(f"cannot read CIFAR batch {path}: {e}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR batch (expected a dict, got {type(obj).__name__})")
    data = np.asarray(_get(obj, "data"))
    labels = np.asarray(_get(obj, labels_key), np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DataError(f"{path}: expected uint8 data (N, 3072) and N labels, got {data.dtype} {data.shape} "
                        f"and {labels.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def load_cifar(path: str | os.PathLike | None, split: str = "train", variant: str = "cifar10"
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, 32, 32, 3) uint8, labels (N,) int64 and the class names."""
    if variant not in _LAYOUT:
        raise DataError(f"variant must be one of {list(_LAYOUT)}, got {variant!r}")
    layout = _LAYOUT[variant]
    if split not in ("train", "test"):
        raise DataError(f"CIFAR has splits ['train', 'test'], got {split!r}")
    if path is None:
        raise DataError(f"{variant} needs the location of its batch files: {HOWTO}")
    root = Path(path).expanduser()
    files = [root / name for name in layout[split]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{variant} batch file {missing[0]} is missing: {HOWTO}")
    parts = [read_batch(f, layout["labels"]) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    n_classes = 10 if variant == "cifar10" else 100
    names = [str(i) for i in range(n_classes)]
    meta = root / layout["meta"]
    if meta.is_file():
        try:
            names = [_text(s) for s in _get(safe_loads(meta.read_bytes()), layout["names"])]
        except (UnsafePickleError, EOFError, ValueError) as e:
            raise DataError(f"cannot read CIFAR meta file {meta}: {e}") from None
    if len(names) != n_classes:
        raise DataError(f"{meta}: expected {n_classes} class names, got {len(names)}")
    return images, labels, names

"""Data sets: MNIST (offline, cached), Fashion-MNIST, CIFAR-10/100 batches, a user's npz or image folder.

:func:`load_dataset` returns a :class:`Dataset` with images (N, H, W, C) uint8 and labels int64 for
any source; the per-source loaders return plain arrays. A missing data set raises
:class:`~anytime_snn.errors.DataError` whose message holds the command that provides it.
"""

from __future__ import annotations

import os

from ..errors import DataError
from ._common import Dataset, data_root, dataset_hash
from .cifar import load_cifar
from .idx import FASHION_LABELS, load_fashion_mnist, read_idx
from .mnist import LABEL_NAMES as MNIST_LABELS
from .mnist import fetch_mnist, load_mnist
from .splits import stratified_subset, validation_split
from .user import load_image_folder, load_npz

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "npz", "folder")


def load_dataset(name: str, split: str = "train", path: str | os.PathLike | None = None, *,
                 limit: int | None = None) -> Dataset:
    """Load data set ``name`` (one of :data:`DATASETS`), split 'train' or 'test'.

    ``path`` locates CIFAR batch directories, npz files and image folders (for a folder, ``path/<split>``
    is used when it exists); ``limit`` keeps the first ``limit`` examples.
    """
    name = name.lower().replace("_", "-")
    if name == "mnist":
        images, labels = load_mnist(split)
        names = MNIST_LABELS
    elif name in ("fashion-mnist", "fashion"):
        images, labels = load_fashion_mnist(split, path)
        names, name = FASHION_LABELS, "fashion-mnist"
    elif name in ("cifar10", "cifar-10", "cifar100", "cifar-100"):
        name = name.replace("-", "")
        images, labels, names = load_cifar(path, split, name)
    elif name == "npz":
        if path is None:
            raise DataError("the npz data set needs --data-path FILE.npz (arrays 'images' and 'labels')")
        images, labels, names = load_npz(path, split)
        names = names or [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
    elif name == "folder":
        if path is None:
            raise DataError("the folder data set needs --data-path DIR (DIR/<class>/<image>.png)")
        sub = os.path.join(path, split)
        images, labels, names = load_image_folder(sub if os.path.isdir(sub) else path)
    else:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Dataset(name=name, split=split, images=images, labels=labels, label_names=list(names))


__all__ = [
    "DATASETS", "Dataset", "data_root", "dataset_hash", "fetch_mnist", "load_cifar", "load_dataset",
    "load_fashion_mnist", "load_image_folder", "load_mnist", "load_npz", "read_idx", "stratified_subset",
    "validation_split",
]

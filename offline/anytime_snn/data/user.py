"""A user's own data: an ``.npz`` file or a folder of images with one sub-folder per class."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm")


def load_npz(path: str | os.PathLike, split: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Arrays ``images`` (N, H, W[, C]) uint8 (or float in [0, 1]) and ``labels`` (N,) integers.

    With ``split``, the keys ``{split}_images``/``{split}_labels`` are used when present (e.g. ``train_images``).
    An optional ``label_names`` string array names the classes. Never unpickles (allow_pickle=False).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            ik, lk = "images", "labels"
            if split and f"{split}_images" in keys:
                ik, lk = f"{split}_images", f"{split}_labels"
            if ik not in keys or lk not in keys:
                raise DataError(f"{path} must contain arrays 'images' and 'labels' (or '<split>_images' and "
                                f"'<split>_labels'); it has {sorted(keys)}")
            images, labels = z[ik], z[lk]
            names = [str(s) for s in z["label_names"]] if "label_names" in keys else None
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as an npz file without pickles: {e}") from None
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating) or not np.all(np.isfinite(images)) \
                or images.min() < 0 or images.max() > 1:
            raise DataError(f"{path}: images must be uint8, or floats in [0, 1]; got {images.dtype}")
        images = np.round(images * 255).astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
        raise DataError(f"{path}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    return images, labels.astype(np.int64), names


def load_image_folder(path: str | os.PathLike, *, size: tuple[int, int] | None = None, color: str = "mono"
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``path/<class name>/*.png`` -> images (N, H, W, C) uint8, labels, class names (sorted folder names).

    Images are converted to ``color`` ('mono' or 'rgb') and resized to ``size`` (H, W) if given; without
    ``size`` all images must share one size.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class sub-folders (expected {root}/<class>/<image>.png)")
    images, labels = [], []
    for k, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if color == "mono" else "RGB")
                    if size is not None:
                        im = im.resize((size[1], size[0]), Image.BILINEAR)
                    arr = np.asarray(im, np.uint8)
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read image {f}: {e}") from None
            images.append(arr if arr.ndim == 3 else arr[..., None])
            labels.append(k)
    if not images:
        raise DataError(f"{root} has class folders but no images ({', '.join(IMAGE_SUFFIXES)})")
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise DataError(f"images in {root} have different sizes {sorted(shapes)[:3]}; pass a size to resize them")
    return np.stack(images), np.asarray(labels, np.int64), classes

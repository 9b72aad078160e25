"""NumPy building blocks shared by the simulators: TF-exact convolutions, zero padding, max-pool windows
and synaptic fan-out."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..model import kinds
from ..model.layers import Layer, output_shape, same_padding


def pad_input(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Zero-pad a (N, H, W, C) batch as TensorFlow does for the layer's padding (extra pixel bottom/right)."""
    if layer.padding == "valid":
        return x
    kh, kw = layer.weights.shape[:2]
    (pt, pb), (pl, pr) = (same_padding(x.shape[1], kh, layer.strides[0]),
                          same_padding(x.shape[2], kw, layer.strides[1]))
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def windows(x: np.ndarray, layer: Layer) -> np.ndarray:
    """(N, Ho, Wo, C, kh, kw) view of the padded input's receptive fields."""
    kh, kw = layer.weights.shape[:2]
    sh, sw = layer.strides
    xp = pad_input(x, layer)
    return sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]


def linear(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The layer's synaptic map without bias for a batch ``x`` of shape (N, *in_shape)."""
    if layer.kind == "dense":
        return x @ layer.weights
    win = windows(x, layer)
    if layer.kind == "conv2d":
        return np.einsum("nhwcij,ijco->nhwo", win, layer.weights, optimize=True)
    if layer.kind == "depthwise_conv2d":
        return np.einsum("nhwcij,ijc->nhwc", win, layer.weights[..., 0], optimize=True)
    raise ValueError(f"no synaptic map for layer kind {layer.kind!r}")


def fanout(layer: Layer, in_shape: tuple[int, ...]) -> np.ndarray:
    """Number of non-zero outgoing synapses into ``layer`` of every neuron of its input (int64, in_shape).

    A spike of input neuron j causes ``fanout[j]`` synaptic events. Each kind defines its own in the kind
    table (for convolutions it depends on the position: borders, stride, padding).
    """
    return kinds.fanout(layer, in_shape)


def zero_pad(x: np.ndarray, layer: Layer) -> np.ndarray:
    """A (N, H, W, C) batch padded with ``layer.pad`` = ((top, bottom), (left, right)) zeros."""
    (t, b), (l, r) = layer.pad
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))


def pool_index(layer: Layer, in_shape: tuple[int, ...]) -> np.ndarray:
    """(n_out, ph*pw) flat input index of every window element of a max pool (C order), -1 for padding.

    Windows follow TensorFlow (``same``: odd extra pixel bottom/right); within a window, elements are in
    row-major order of the kernel offsets.
    """
    h, w, c = in_shape
    (ph, pw), (sh, sw) = layer.pool_size, layer.strides
    ho, wo, _ = output_shape(layer, in_shape)
    pt = same_padding(h, ph, sh)[0] if layer.padding == "same" else 0
    pl = same_padding(w, pw, sw)[0] if layer.padding == "same" else 0
    oi, oj, oc = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(c), indexing="ij")
    cols = []
    for a in range(ph):
        for b in range(pw):
            y, z = oi * sh + a - pt, oj * sw + b - pl
            ok = (y >= 0) & (y < h) & (z >= 0) & (z < w)
            cols.append(np.where(ok, (y * w + z) * c + oc, -1).ravel())
    return np.stack(cols, axis=1).astype(np.int64)


def max_pool(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The ANN max pool of a non-negative (N, H, W, C) batch (padding counts as 0, which is TF's -inf here)."""
    idx = pool_index(layer, x.shape[1:])
    flat = np.concatenate([x.reshape(len(x), -1), np.zeros((len(x), 1), x.dtype)], axis=1)
    return flat[:, idx].max(axis=2).reshape(len(x), *output_shape(layer, x.shape[1:]))


def skip_fanout(layer: Layer, out_shape: tuple[int, ...]) -> np.ndarray:
    """Events per spike of the residual source of ``layer``: 1 where the neuron's skip weight is non-zero."""
    return (np.broadcast_to(layer.skip_weights, out_shape) != 0).astype(np.int64).ravel()

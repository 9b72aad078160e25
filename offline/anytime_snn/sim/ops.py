"""NumPy building blocks shared by the simulators: TF-exact convolutions and synaptic fan-out."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..model.layers import Layer, same_padding


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

    A spike of input neuron j causes ``fanout[j]`` synaptic events. For convolutions this depends on
    the position (borders, stride, padding): it is the transposed convolution of an all-ones output
    with the kernel's non-zero mask.
    """
    w = layer.weights
    if layer.kind == "dense":
        return np.count_nonzero(w, axis=1).astype(np.int64).reshape(in_shape)
    h, wd, c = in_shape
    kh, kw = w.shape[:2]
    sh, sw = layer.strides
    per_offset = np.count_nonzero(w, axis=3) if layer.kind == "conv2d" else (w[..., 0] != 0).astype(np.int64)
    if layer.padding == "same":
        (pt, pb), (pl, pr) = same_padding(h, kh, sh), same_padding(wd, kw, sw)
    else:
        pt = pb = pl = pr = 0
    hp, wp = h + pt + pb, wd + pl + pr
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    acc = np.zeros((hp, wp, c), np.int64)
    for a in range(kh):
        for b in range(kw):
            acc[a:a + sh * (ho - 1) + 1:sh, b:b + sw * (wo - 1) + 1:sw, :] += per_offset[a, b]
    return acc[pt:pt + h, pl:pl + wd, :]

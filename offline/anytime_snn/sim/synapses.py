"""Event-driven synapses of every weighted layer kind (numba): what one input event adds to a layer's current.

A spike (or a non-zero analog input) of input neuron j = (y, x, c) of a convolution adds the kernel
slice ``k[ky, kx, c, :]`` to the output rows (oy, ox, :) of its receptive window: each a contiguous run
of C_out float32, so the inner loop vectorizes. The window is found by index arithmetic (stride and
'same' padding as offsets, no padded copies): oy ranges over ceil((y + pt - kh + 1) / sh) ..
floor((y + pt) / sh), clipped to the output, and ky = y + pt - oy * sh. Outputs are visited in
ascending order and every output at most once per event, so an output's current is summed over its
inputs in ascending input order: the order every engine here uses, whatever the blocking.

Weights are the layer's own flat float32 tensor (kh, kw, C_in, C_out) in C order, passed as a zero-offset
array: an offset added inside the index stops LLVM from vectorizing the inner loop.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..model.layers import Layer, same_padding

try:
    if os.environ.get("ANYTIME_SNN_NO_NUMBA"):
        raise ImportError("disabled by ANYTIME_SNN_NO_NUMBA")
    import numba
except ImportError:  # pragma: no cover - numba is a core dependency
    numba = None

DENSE, CONV, DEPTHWISE = 0, 1, 2
KIND_CODE = {"dense": DENSE, "conv2d": CONV, "depthwise_conv2d": DEPTHWISE}
# Geometry of a weighted layer, the integer vector every kernel here takes.
(G_KIND, G_IH, G_IW, G_IC, G_OH, G_OW, G_OC, G_KH, G_KW, G_SH, G_SW, G_PT, G_PL, G_NIN, G_NOUT, G_SIZE) = range(16)


def geometry(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    """The integer description of a weighted layer's synapses (:data:`G_KIND` ... columns)."""
    g = np.zeros(G_SIZE, np.int64)
    h, w, c = in_shape if len(in_shape) == 3 else (1, 1, in_shape[0])
    oh, ow, oc = out_shape if len(out_shape) == 3 else (1, 1, out_shape[0])
    g[[G_KIND, G_IH, G_IW, G_IC, G_OH, G_OW, G_OC]] = KIND_CODE[layer.kind], h, w, c, oh, ow, oc
    g[[G_NIN, G_NOUT]] = math.prod(in_shape), math.prod(out_shape)
    if layer.kind != "dense":
        kh, kw = layer.weights.shape[:2]
        pads = ((same_padding(h, kh, layer.strides[0])[0], same_padding(w, kw, layer.strides[1])[0])
                if layer.padding == "same" else (0, 0))
        g[[G_KH, G_KW, G_SH, G_SW, G_PT, G_PL]] = kh, kw, *layer.strides, *pads
    return g


def spike_block_current(g: np.ndarray, weights: np.ndarray, spikes: np.ndarray, out: np.ndarray) -> None:
    """out[i] = the synaptic current (no bias) of spike vector spikes[i] (k, n_in) bool through one
    layer, event-driven. ``weights``: the layer's flat float32 tensor; ``g`` from :func:`geometry`."""
    _spike_block(g, weights, spikes, out)


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True, boundscheck=False)

    @_jit
    def window(p, k, s, n):  # pragma: no cover - compiled
        """The outputs o in [0, n) whose window (size k, stride s) holds padded input position p: (lo, hi+1)."""
        lo = (p - k + s) // s  # ceil((p - k + 1) / s), floor division of possibly negative numbers
        if lo < 0:
            lo = 0
        hi = p // s + 1
        if hi > n:
            hi = n
        return lo, hi

    @_jit
    def add_event(g, w, j, out):  # pragma: no cover - compiled
        """out += the synapses of input neuron j (one spike), outputs ascending."""
        kind = g[G_KIND]
        if kind == DENSE:
            nout = g[G_NOUT]
            row = w[j * nout:(j + 1) * nout]
            for c in range(nout):
                out[c] += row[c]
            return
        ic, oc, kw, sh, sw, ow = g[G_IC], g[G_OC], g[G_KW], g[G_SH], g[G_SW], g[G_OW]
        y, rem = divmod(j, g[G_IW] * ic)
        x, c = divmod(rem, ic)
        yp, xp = y + g[G_PT], x + g[G_PL]
        y0, y1 = window(yp, g[G_KH], sh, g[G_OH])
        x0, x1 = window(xp, kw, sw, ow)
        for oy in range(y0, y1):
            ky = yp - oy * sh
            for ox in range(x0, x1):
                kx = xp - ox * sw
                if kind == CONV:
                    wb = ((ky * kw + kx) * ic + c) * oc
                    ob = (oy * ow + ox) * oc
                    wr = w[wb:wb + oc]
                    orow = out[ob:ob + oc]
                    for co in range(oc):
                        orow[co] += wr[co]
                else:
                    out[(oy * ow + ox) * oc + c] += w[(ky * kw + kx) * ic + c]

    @_jit
    def add_analog(g, w, j, value, out):  # pragma: no cover - compiled
        """out += value x the synapses of input neuron j (an analog input), outputs ascending."""
        kind = g[G_KIND]
        if kind == DENSE:
            nout = g[G_NOUT]
            row = w[j * nout:(j + 1) * nout]
            for c in range(nout):
                out[c] += value * row[c]
            return
        ic, oc, kw, sh, sw, ow = g[G_IC], g[G_OC], g[G_KW], g[G_SH], g[G_SW], g[G_OW]
        y, rem = divmod(j, g[G_IW] * ic)
        x, c = divmod(rem, ic)
        yp, xp = y + g[G_PT], x + g[G_PL]
        y0, y1 = window(yp, g[G_KH], sh, g[G_OH])
        x0, x1 = window(xp, kw, sw, ow)
        for oy in range(y0, y1):
            ky = yp - oy * sh
            for ox in range(x0, x1):
                kx = xp - ox * sw
                if kind == CONV:
                    wb = ((ky * kw + kx) * ic + c) * oc
                    ob = (oy * ow + ox) * oc
                    wr = w[wb:wb + oc]
                    orow = out[ob:ob + oc]
                    for co in range(oc):
                        orow[co] += value * wr[co]
                else:
                    out[(oy * ow + ox) * oc + c] += value * w[(ky * kw + kx) * ic + c]

    @_jit
    def add_spikes(g, w, src, out):  # pragma: no cover - compiled
        """out += the synapses of every spike in the bool vector ``src``, inputs ascending."""
        for j in range(src.shape[0]):
            if src[j]:
                add_event(g, w, j, out)

    @_jit
    def add_dense_rows(src, w, nin, nout, nb, current):  # pragma: no cover - compiled
        """current[b] += weight row j for every (b, j) with src[b, j]: row j is loaded once for the
        whole block of samples (it stays in cache across them); inputs ascending per sample."""
        for j in range(nin):
            rb = j * nout
            for b in range(nb):
                if src[b, j]:
                    for c in range(nout):
                        current[b, c] += w[rb + c]

    @_jit
    def count_events(src, fanout):  # pragma: no cover - compiled
        """Synaptic events of a spike vector: the non-zero fan-out of every input that spiked."""
        e = 0
        for j in range(src.shape[0]):
            if src[j]:
                e += fanout[j]
        return e

    @_jit
    def _spike_block(g, w, spikes, out):  # pragma: no cover - compiled
        for i in range(spikes.shape[0]):
            out[i, :] = 0
            add_spikes(g, w, spikes[i], out[i])

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
import sys

import numpy as np

from ..model.layers import Layer, same_padding

from .compiled import LANES, add_lanes, aligned, inline, jit, load_word, numba, parallel_jit

DENSE, CONV, DEPTHWISE = 0, 1, 2
GATHER = np.uint64(0x0102040810204080)  # (a word of eight 0/1 bytes x GATHER) >> 56: byte i -> bit i
LITTLE_ENDIAN = sys.byteorder == "little"  # GATHER needs byte i of a word to be its i-th lowest byte
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


def conv_rows(layer: Layer, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A conv2d kernel laid out so that one spike's window row is one contiguous run, and its tables.

    For a spike at padded column xp, the outputs ox of its window are consecutive and use kernel
    columns kx = xp - sw * ox, which step down by sw. Stored as (ky, c_in, kx by residue r = kx mod sw,
    then descending within r, c_out), the weights of consecutive ox are consecutive too: the row of
    outputs (oy, ox0 .. ox1, :) gets one contiguous run of (ox1 - ox0) x C_out weights added.
    Returns (weights flat, ytab (ih, 2): oy range of input row y, xtab (iw, 3): ox0, count, and the
    kernel-column slot of ox0).
    """
    k = np.asarray(layer.weights, np.float32)
    kh, kw, ic, oc = k.shape
    sh, sw = layer.strides
    order, start = [], {}  # kernel columns in storage order
    for r in range(sw):
        start[r] = len(order)
        order += sorted(range(r, kw, sw), reverse=True)
    rows = np.ascontiguousarray(k.transpose(0, 2, 1, 3)[:, :, order, :]).ravel()
    ytab = np.zeros((g[G_IH], 2), np.int64)
    for y in range(g[G_IH]):
        yp = y + g[G_PT]
        ytab[y] = max(0, -(-(yp - kh + 1) // sh)), min(g[G_OH], yp // sh + 1)
    xtab = np.zeros((g[G_IW], 3), np.int64)
    for x in range(g[G_IW]):
        xp = x + g[G_PL]
        x0, x1 = max(0, -(-(xp - kw + 1) // sw)), min(g[G_OW], xp // sw + 1)
        kx0 = xp - sw * x0
        xtab[x] = x0, max(x1 - x0, 0), order.index(kx0) if x1 > x0 else 0
    return rows, ytab, xtab


class Synapses:
    """One weighted layer's event-driven synapses for the streaming engine: ``block_current``."""

    def __init__(self, layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        if layer.kind not in ("conv2d", "depthwise_conv2d"):
            raise ValueError(f"Synapses serves convolutions (dense layers take row sums), got {layer.kind!r}")
        self.g = geometry(layer, in_shape, out_shape)
        self.kernel = self.weights = aligned(np.ravel(layer.weights))  # aligned: LANES-wide loads
        if layer.kind == "conv2d":
            rows, self.ytab, self.xtab = conv_rows(layer, self.g)
            self.weights = aligned(rows)
        else:
            self.ytab, self.xtab = np.zeros((0, 2), np.int64), np.zeros((0, 3), np.int64)
        n_in = int(self.g[G_NIN])
        # compile (or load from numba's cache) now, not on the first frame
        self.block_current(np.zeros((1, n_in), bool), np.empty((1, int(self.g[G_NOUT])), np.float32),
                           np.zeros(n_in, np.int64), np.zeros(1, np.int64))

    def analog_current(self, x: np.ndarray, out: np.ndarray) -> None:
        """out = the synaptic current (no bias) of analog input ``x`` (flat): the batched engine's sums."""
        _analog(self.g, self.kernel, x, out)

    def block_current(self, spikes: np.ndarray, out: np.ndarray, fanout: np.ndarray, events: np.ndarray,
                      threads: int = 1) -> int:
        """out[i] = the synaptic current (no bias) of spike vector spikes[i] (k, n_in) bool, and
        events[i] += its synaptic events (``fanout``: int64 per input); returns the number of spikes.
        With ``threads`` > 1 the k steps are shared among that many numba threads (the same floats)."""
        if threads > 1 and len(spikes) > 1:
            previous = numba.get_num_threads()
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            try:
                return _spike_block_parallel(self.g, self.weights, self.ytab, self.xtab, spikes, out, fanout, events)
            finally:
                numba.set_num_threads(previous)
        return _spike_block(self.g, self.weights, self.ytab, self.xtab, spikes, out, fanout, events)


if numba is not None:
    from numba.cpython.unsafe.numbers import trailing_zeros

    @jit
    def window(p, k, s, n):  # pragma: no cover - compiled
        """The outputs o in [0, n) whose window (size k, stride s) holds padded input position p: (lo, hi+1)."""
        lo = (p - k + s) // s  # ceil((p - k + 1) / s), floor division of possibly negative numbers
        if lo < 0:
            lo = 0
        hi = p // s + 1
        if hi > n:
            hi = n
        return lo, hi

    @jit
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

    @jit
    def add_dense_rows(src, w, nin, nout, nb, current, fanout, events, spikes):  # pragma: no cover - compiled
        """current[b] += weight row j for every (b, j) with src[b, j]: row j is loaded once for the
        whole block of samples (it stays in cache across them); inputs ascending per sample. Counts as
        it goes (the event-driven form of :func:`count_events`): events[b] += fanout[j], spikes[b] += 1."""
        for j in range(nin):
            rb = j * nout
            for b in range(nb):
                if src[b, j]:
                    events[b] += fanout[j]
                    spikes[b] += 1
                    for c in range(nout):
                        current[b, c] += w[rb + c]

    @jit
    def add_dense_all(src, w, nin, nout, nb, current):  # pragma: no cover - compiled
        """The dense path of :func:`add_dense_rows`: every row times 0 or 1, without branches. The same
        float sums in the same order (x + 0 * w == x), so the choice between the two never changes a result."""
        for j in range(nin):
            row = w[j * nout:(j + 1) * nout]
            for b in range(nb):
                f = np.float32(1.0) if src[b, j] else np.float32(0.0)
                cb = current[b]
                for c in range(nout):
                    cb[c] += f * row[c]

    @inline
    def window_run(xtab, x, oc):  # pragma: no cover - compiled
        """The outputs an input column x reaches in one window row (:func:`conv_rows`' tables): (their
        number x C_out, the offset of the first within the row, the kernel-column slot of the first)."""
        return xtab[x, 1] * oc, xtab[x, 0] * oc, xtab[x, 2]

    @inline
    def window_row(yp, oy, sh, row_size, ob0):  # pragma: no cover - compiled
        """Output row oy of the window of padded input row yp: (kernel row ky, the offset of the run of
        currents that starts at ob0 within that output row)."""
        return yp - oy * sh, oy * row_size + ob0

    @jit
    def conv_all(g, rows, ytab, xtab, src, out):  # pragma: no cover - compiled
        """The dense path of :func:`conv_spikes`: every input channel times 0 or 1, without branches or
        lists; the same float sums in the same order."""
        ih, iw, ic, oc, kw, sh, ow, pt = g[G_IH], g[G_IW], g[G_IC], g[G_OC], g[G_KW], g[G_SH], g[G_OW], g[G_PT]
        j = 0
        for y in range(ih):
            oy0, oy1 = ytab[y, 0], ytab[y, 1]
            for x in range(iw):
                length, ob0, slot = window_run(xtab, x, oc)
                for oy in range(oy0, oy1):
                    ky, ob = window_row(y + pt, oy, sh, ow * oc, ob0)
                    orow = out[ob:ob + length]
                    for c in range(ic):
                        f = np.float32(1.0) if src[j + c] else np.float32(0.0)
                        wb = ((ky * ic + c) * kw + slot) * oc
                        wrow = rows[wb:wb + length]
                        for e in range(length):
                            orow[e] += f * wrow[e]
                j += ic

    @jit
    def depthwise_all(g, w, src, out):  # pragma: no cover - compiled
        """out += the synapses of the bool spike vector ``src`` through a depthwise convolution (``w``: the
        flat (kh, kw, C) kernel). Pixel by pixel, every channel times 0 or 1 into each window output's
        contiguous run of C currents: branch-free and vectorized over channels, where one spike adds a
        single float (a 2x2 stride-2 pool window is one output). Inputs stay in ascending order for every
        output and x + 0 * w == x, so the floats are those of one add per spike."""
        ih, iw, ic, oh, ow = g[G_IH], g[G_IW], g[G_IC], g[G_OH], g[G_OW]
        kh, kw, sh, sw, pt, pl = g[G_KH], g[G_KW], g[G_SH], g[G_SW], g[G_PT], g[G_PL]
        j = 0
        for y in range(ih):
            yp = y + pt
            oy0, oy1 = window(yp, kh, sh, oh)
            for x in range(iw):
                xp = x + pl
                ox0, ox1 = window(xp, kw, sw, ow)
                srow = src[j:j + ic]
                j += ic
                for oy in range(oy0, oy1):
                    ky = yp - oy * sh
                    for ox in range(ox0, ox1):
                        wb = (ky * kw + xp - ox * sw) * ic
                        ob = (oy * ow + ox) * ic
                        wrow = w[wb:wb + ic]
                        orow = out[ob:ob + ic]
                        for c in range(ic):
                            f = np.float32(1.0) if srow[c] else np.float32(0.0)
                            orow[c] += f * wrow[c]

    @inline
    def count_events(src, fanout):  # pragma: no cover - compiled
        """(synaptic events, spikes) of the bool spike vector ``src``: the integer fan-out of every
        input that spiked, summed without branches (a vectorized integer sum; spikes are too irregular
        for branch prediction). The one definition of event counting in the compiled engines."""
        e = 0
        f = 0
        for j in range(src.shape[0]):
            s = src[j]
            e += fanout[j] if s else 0
            f += s
        return e, f

    @inline
    def spike_mask(src, j, n):  # pragma: no cover - compiled
        """Bit c of the result is src[j + c], for c < n <= 64: eight spikes at a time (a word of 0/1 bytes
        gathered into 8 bits by one multiply, :data:`GATHER`; on little-endian machines such as x86 and
        ARM), the rest one by one."""
        m = np.uint64(0)
        c = 0
        while LITTLE_ENDIAN and c + 8 <= n:
            m |= ((load_word(src, j + c) * GATHER) >> np.uint64(56)) << np.uint64(c)
            c += 8
        while c < n:
            m |= np.uint64(src[j + c]) << np.uint64(c)
            c += 1
        return m

    @jit
    def conv_spikes(g, rows, ytab, xtab, src, out, fanout):  # pragma: no cover - compiled
        """out += the synapses of every spike of ``src`` through a conv2d (``rows``, ``ytab``, ``xtab``
        from :func:`conv_rows`); returns (synaptic events, spikes), counted as it goes (the event-driven
        form of :func:`count_events`, instead of a separate pass over the spike map: docs/simulators.md).
        Pixel by pixel: the pixel's spiking channels as a bit mask (64 channels
        at a time, :func:`spike_mask`; a silent pixel costs a few instructions), then per set bit, lowest
        first, one contiguous run of weights into each row of the window: in vector adds (:func:`add_lanes`)
        when C_out is a multiple of :data:`LANES`. Spikes stay in ascending input order for every output."""
        ih, iw, ic, oc, kw, sh, ow, pt = g[G_IH], g[G_IW], g[G_IC], g[G_OC], g[G_KW], g[G_SH], g[G_OW], g[G_PT]
        lanes = oc % LANES == 0
        events = 0
        spikes = 0
        j = 0
        for y in range(ih):
            oy0, oy1 = ytab[y, 0], ytab[y, 1]
            for x in range(iw):
                for c0 in range(0, ic, 64):
                    mask = spike_mask(src, j + c0, min(64, ic - c0))
                    if mask == 0:
                        continue
                    length, ob0, slot = window_run(xtab, x, oc)
                    rest = mask
                    while rest:
                        c = c0 + np.int64(trailing_zeros(rest))
                        rest &= rest - np.uint64(1)
                        events += fanout[j + c]
                        spikes += 1
                        for oy in range(oy0, oy1):
                            ky, ob = window_row(y + pt, oy, sh, ow * oc, ob0)
                            wb = ((ky * ic + c) * kw + slot) * oc
                            if lanes:
                                for e in range(0, length, LANES):
                                    add_lanes(out, ob + e, rows, wb + e)
                            else:
                                for e in range(length):
                                    out[ob + e] += rows[wb + e]
                j += ic
        return events, spikes

    @jit
    def _analog(g, w, x, out):  # pragma: no cover - compiled
        out[:] = 0
        for j in range(x.shape[0]):
            if x[j] != 0:
                add_analog(g, w, j, x[j], out)

    @inline
    def spike_step(g, w, ytab, xtab, src, out, fanout):  # pragma: no cover - compiled
        """One step of a convolution's synaptic current from spike vector ``src``: (events, spikes)."""
        out[:] = 0
        if g[G_KIND] == CONV:
            return conv_spikes(g, w, ytab, xtab, src, out, fanout)
        depthwise_all(g, w, src, out)  # depthwise (dense layers take the streaming engine's row sums)
        return count_events(src, fanout)

    @jit
    def _spike_block(g, w, ytab, xtab, spikes, out, fanout, events):  # pragma: no cover - compiled
        count = 0
        for i in range(spikes.shape[0]):
            e, f = spike_step(g, w, ytab, xtab, spikes[i], out[i], fanout)
            events[i] += e
            count += f
        return count

    @parallel_jit
    def _spike_block_parallel(g, w, ytab, xtab, spikes, out, fanout, events):  # pragma: no cover - compiled
        count = 0
        for i in numba.prange(spikes.shape[0]):
            e, f = spike_step(g, w, ytab, xtab, spikes[i], out[i], fanout)
            events[i] += e
            count += f
        return count

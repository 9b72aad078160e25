"""Event-driven batched CPU engine (numba): the default simulator of the optimizer and the evaluator.

Why a second batched engine: spikes are sparse (about 10 % of the dense MNIST model's neurons fire
per step), so summing only the weight rows of the neurons that fired does ~10x fewer operations
than the TF engine's per-step GEMMs, which multiply every zero as well. Design:

- Samples are independent, so blocks of ``block`` samples run in parallel (numba ``prange``), each
  block for all T steps. Within a block, a dense layer's current is built input neuron by input
  neuron: weight row j is loaded once per step and added to the current of every sample of the
  block whose neuron j spiked (the row stays in cache across the samples).
- Convolutions scatter each input spike through the kernel (event-driven convolution); the first
  layer's analog current is the same scatter weighted by the pixel values, once per frame.
- Every sample's currents are summed in ascending input order from zero, then the bias is added
  (exactly the order of the streaming engine), so a sample's result does not depend on the block,
  the chunking or the number of MPI ranks: results are bit-identical across rank counts.
- Synaptic events are counted in integers (spikes x non-zero fan-out), per sample.

Supports chains of dense, conv2d, depthwise_conv2d and flatten layers with every neuron
configuration (reset mode, refractory period, synaptic delay); zero padding, max pooling and
residual inputs are not simulated here. :func:`supports` says whether a bundle can run here
(otherwise :mod:`.select` picks :class:`~anytime_snn.sim.tf_engine.TFEngine`).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..model.bundle import Bundle
from ..model.layers import Layer, output_shape, same_padding
from . import ops
from .result import EngineResult, checked_inputs

try:
    if os.environ.get("ANYTIME_SNN_NO_NUMBA"):
        raise ImportError("disabled by ANYTIME_SNN_NO_NUMBA")
    import numba
except ImportError:  # pragma: no cover - numba is a core dependency
    numba = None

SUPPORTED_KINDS = ("dense", "conv2d", "depthwise_conv2d", "flatten")
_KIND_CODE = {"dense": 0, "conv2d": 1, "depthwise_conv2d": 2}
# Columns of the per-layer integer table handed to the kernel.
(KIND, IH, IW, IC, OH, OW, OC, KH, KW, SH, SW, PT, PL, NIN, NOUT, WOFF, NOFF, FOFF, REFRAC, DELAY, SUB,
 ROFF, NCOLS) = range(23)
# Samples per block: a dense block's currents (block x neurons float32) should stay in the L2 cache.
DEFAULT_BLOCK_BYTES = 256 << 10


def unsupported(bundle: Bundle) -> list[str]:
    """The layers this engine does not simulate: other kinds, and residual (``skip``) inputs."""
    return [f"{layer.name} ({layer.kind}{', residual input' if getattr(layer, 'skip', None) else ''})"
            for layer in bundle.layers if layer.kind not in SUPPORTED_KINDS or getattr(layer, "skip", None)]


def supports(bundle: Bundle) -> bool:
    """True when this engine simulates every layer (a chain of the supported kinds) and numba is available."""
    return numba is not None and not unsupported(bundle)


def layer_row(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    """The kernel's integer description of a weighted layer's synapses (offsets left at 0)."""
    r = np.zeros(NCOLS, np.int64)
    h, w, c = (in_shape if len(in_shape) == 3 else (1, 1, in_shape[0]))
    oh, ow, oc = (out_shape if len(out_shape) == 3 else (1, 1, out_shape[0]))
    r[[KIND, IH, IW, IC, OH, OW, OC]] = _KIND_CODE[layer.kind], h, w, c, oh, ow, oc
    r[[NIN, NOUT]] = math.prod(in_shape), math.prod(out_shape)
    if layer.kind != "dense":
        kh, kw = layer.weights.shape[:2]
        pads = ((same_padding(h, kh, layer.strides[0])[0], same_padding(w, kw, layer.strides[1])[0])
                if layer.padding == "same" else (0, 0))
        r[[KH, KW, SH, SW, PT, PL]] = kh, kw, *layer.strides, *pads
    return r


def spike_block_current(row: np.ndarray, weights: np.ndarray, spikes: np.ndarray, out: np.ndarray) -> None:
    """out[i] = the synaptic current of spike vector spikes[i] through one layer, event-driven
    (each spike scattered through its synapses, inputs in ascending order). ``weights`` is the
    layer's flat float32 tensor; ``row`` from :func:`layer_row`. The streaming engine uses it for
    sparse spike blocks into convolutions."""
    _spike_block(row, weights, spikes, out)


class BatchEngine:
    """Event-driven batched simulator of a bundle; ``run(x, T)`` returns an :class:`EngineResult`.

    ``threads``: numba threads (default: all CPUs numba sees). ``block``: samples per parallel
    block (default: sized so one block's currents fit in 256 KiB).
    """

    def __init__(self, bundle: Bundle, threads: int | None = None, block: int | None = None):
        if numba is None:
            raise RuntimeError("the batched CPU engine needs numba (pip install numba)")
        bad = unsupported(bundle)
        if bad:
            raise ValueError(f"the batched CPU engine does not simulate {', '.join(bad)}; use TFEngine")
        self.threads = threads
        self._structure(bundle)
        self.block = int(block) if block else max(1, min(256, DEFAULT_BLOCK_BYTES // (4 * max(self.meta[:, NOUT]))))
        self._raster_buffer = np.empty(0, np.bool_)
        self.set_parameters(bundle)

    def _structure(self, bundle: Bundle) -> None:
        rows, shape = [], tuple(bundle.input.shape)
        woff = noff = foff = roff = 0
        self.layers, self.in_shapes, self.out_shapes = [], [], []
        for layer in bundle.layers:
            out = output_shape(layer, shape)
            if layer.weighted:
                r = layer_row(layer, shape, out)
                n = layer.neuron
                r[[NIN, NOUT, WOFF, NOFF, FOFF]] = math.prod(shape), math.prod(out), woff, noff, foff
                r[[REFRAC, DELAY, SUB, ROFF]] = n.refractory_steps, n.delay_steps, n.reset == "subtract", roff
                if rows:  # a spiking source: a ring of delay + 1 spike slots
                    roff += n.delay_steps + 1
                woff += layer.weights.size
                noff += math.prod(out)
                foff += math.prod(shape)
                rows.append(r)
                self.layers.append(layer)
                self.in_shapes.append(shape)
                self.out_shapes.append(out)
            shape = out
        self.meta = np.stack(rows)
        self.n_slots = roff
        self.num_classes = int(self.meta[-1, NOUT])
        self.n_hidden = len(rows) - 1
        self.bundle = bundle

    def set_parameters(self, bundle: Bundle) -> None:
        """Use the weights, biases, thresholds and V0 of ``bundle`` (same architecture) from now on."""
        layers = bundle.weighted_layers
        same = len(layers) == len(self.layers) and all(
            a.kind == b.kind and a.weights.shape == b.weights.shape and a.neuron == b.neuron and a.strides == b.strides
            and a.padding == b.padding for a, b in zip(layers, self.layers))
        if not same:
            raise ValueError("set_parameters needs the same architecture and neuron dynamics; build a new BatchEngine")
        flat = lambda arrays: np.ascontiguousarray(np.concatenate([a.ravel() for a in arrays]))  # noqa: E731
        self.weights = flat([layer.weights.astype(np.float32) for layer in layers])
        self.bias = flat([np.broadcast_to(l.bias, s).astype(np.float32) for l, s in zip(layers, self.out_shapes)])
        self.v0 = flat([np.broadcast_to(l.v0, s).astype(np.float32) for l, s in zip(layers, self.out_shapes)])
        self.fanout = flat([ops.fanout(l, s).astype(np.int64) for l, s in zip(layers, self.in_shapes)])
        self.thresholds = np.array([l.neuron.threshold for l in layers], np.float32)
        self.layers, self.bundle = layers, bundle

    def run(self, x: np.ndarray, timesteps: int, record_v_out: bool = False,
            record_spikes: bool = False) -> EngineResult:
        """Simulate ``x`` for ``timesteps`` steps. ``record_spikes`` also returns every hidden
        layer's spike raster (views of a buffer the next run overwrites) and the per-sample spike
        counts: what :mod:`.incremental` caches."""
        x = checked_inputs(x, self.bundle.input.shape, timesteps)
        n, t = x.shape[0], int(timesteps)
        preds = np.zeros((t, n), np.int32)
        events = np.zeros((t, n), np.int64)
        spikes = np.zeros((self.n_hidden, t, n), np.int32)
        v_out = np.zeros((t, n, self.num_classes) if record_v_out else (0, 0, 0), np.float32)
        sizes = [int(r[NOUT]) for r in self.meta[:-1]]
        raster_off = np.concatenate([[0], np.cumsum([n * t * k for k in sizes])]).astype(np.int64)
        need = int(raster_off[-1]) if record_spikes else 0
        if need > self._raster_buffer.size:  # kept between runs: fresh pages would cost a fault each
            self._raster_buffer = np.empty(need, np.bool_)
        rasters = self._raster_buffer[:need]  # every entry is written by the kernel
        if n:
            previous = numba.get_num_threads()
            if self.threads:
                numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
            try:
                _simulate(self.meta, self.thresholds, self.weights, self.bias, self.v0, self.fanout,
                        np.ascontiguousarray(x.reshape(n, -1)), t, self.block, self.n_slots, preds, events, spikes,
                        v_out, record_v_out, rasters, raster_off, record_spikes)
            finally:
                numba.set_num_threads(previous)
        return EngineResult(
            predictions=preds, events=events, layer_spikes=spikes.sum(axis=2, dtype=np.int64),
            input_events=(x.reshape(n, self.meta[0, NIN]) != 0).astype(np.int64) @ self.fanout[:self.meta[0, NIN]],
            v_out=v_out if record_v_out else None,
            spike_rasters=[rasters[a:b].reshape(n, t, k) for a, b, k in zip(raster_off, raster_off[1:], sizes)]
            if record_spikes else None,
            sample_spikes=spikes if record_spikes else None)


# ----------------------------------------------------------------------------- kernel


if numba is not None:

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def _scatter(m, weights, j, value, out):  # pragma: no cover - compiled
        """out += value x (the synapses of input neuron j of layer row m), ascending output index."""
        kind = m[KIND]
        w0 = m[WOFF]
        if kind == 0:
            nout = m[NOUT]
            base = w0 + j * nout
            for c in range(nout):
                out[c] += value * weights[base + c]
            return
        ic = m[IC]
        y, rem = divmod(j, m[IW] * ic)
        x, c = divmod(rem, ic)
        yp, xp = y + m[PT], x + m[PL]
        kh, kw, sh, sw, oh, ow, oc = m[KH], m[KW], m[SH], m[SW], m[OH], m[OW], m[OC]
        # Outputs in ascending order: oy ascending is ky descending (and likewise for x).
        for ky in range(kh - 1, -1, -1):
            r = yp - ky
            if r < 0 or r % sh:
                continue
            oy = r // sh
            if oy >= oh:
                continue
            for kx in range(kw - 1, -1, -1):
                s = xp - kx
                if s < 0 or s % sw:
                    continue
                ox = s // sw
                if ox >= ow:
                    continue
                if kind == 1:
                    wb = w0 + ((ky * kw + kx) * ic + c) * oc
                    ob = (oy * ow + ox) * oc
                    for co in range(oc):
                        out[ob + co] += value * weights[wb + co]
                else:
                    out[(oy * ow + ox) * oc + c] += value * weights[w0 + (ky * kw + kx) * ic + c]

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def _spike_block(m, weights, spikes, out):  # pragma: no cover - compiled
        for i in range(spikes.shape[0]):
            out[i, :] = 0
            for j in range(spikes.shape[1]):
                if spikes[i, j]:
                    _scatter(m, weights, j, np.float32(1.0), out[i])

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def _dense_rows(src, weights, nin, nout, nb, current):  # pragma: no cover - compiled
        """current[b] += weight row j for every (b, j) with src[b, j]; row j is loaded once for all b.

        ``weights`` is this layer's (nin x nout) slice: an offset added to the index here would stop
        LLVM from vectorizing the inner loop (measured 8x slower).
        """
        for j in range(nin):
            rb = j * nout
            for b in range(nb):
                if src[b, j]:
                    for c in range(nout):
                        current[b, c] += weights[rb + c]

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def _integrate(current, v, refractory, theta, sub, refrac, fanout, slot):  # pragma: no cover - compiled
        """NL-IAF update of one layer for one step (paper eq. 1-2); spikes into ``slot``.

        Returns per sample (spikes, synaptic events). The common case (no refractory period) is
        written without branches so that it vectorizes.
        """
        nb, nout = current.shape
        fired = np.zeros(nb, np.int64)
        events = np.zeros(nb, np.int64)
        zero = np.float32(0.0)
        for b in range(nb):
            f = 0
            e = 0
            if refrac == 0:
                for c in range(nout):
                    vk = v[b, c] + current[b, c]
                    s = vk >= theta
                    slot[b, c] = s
                    v[b, c] = (vk - theta if sub else zero) if s else vk
                    f += s
                    e += fanout[c] if s else 0
            else:
                for c in range(nout):
                    if refractory[b, c] > 0:
                        refractory[b, c] -= 1
                        slot[b, c] = False
                        continue
                    vk = v[b, c] + current[b, c]
                    s = vk >= theta
                    slot[b, c] = s
                    if s:
                        vk = vk - theta if sub else zero
                        refractory[b, c] = refrac
                        f += 1
                        e += fanout[c]
                    v[b, c] = vk
            fired[b] = f
            events[b] = e
        return fired, events

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def _simulate_block(meta, thresholds, weights, bias, v0, fanout, x, steps, b0, nb, n_slots, preds, events,
                        spikes, v_out, record, rasters, raster_off, keep):  # pragma: no cover - compiled
        """Samples b0 .. b0 + nb - 1 for all steps (serial; the parallel driver runs blocks side by side).

        State is layer-major (each layer's (nb, n) block contiguous) and every helper gets
        zero-offset slices, which is what lets LLVM vectorize the inner loops.
        """
        n_layers = meta.shape[0]
        total = meta[n_layers - 1, NOFF] + meta[n_layers - 1, NOUT]
        max_out = 0
        max_in = 1
        for i in range(n_layers):
            max_out = max(max_out, meta[i, NOUT])
            if i > 0:
                max_in = max(max_in, meta[i, NIN])
        first = meta[0]
        n0 = first[NOUT]
        last = meta[n_layers - 1]
        v_all = np.empty(nb * total, np.float32)
        ref_all = np.zeros(nb * total, np.int32)
        for i in range(n_layers):
            noff, nout = meta[i, NOFF], meta[i, NOUT]
            v = v_all[nb * noff: nb * (noff + nout)].reshape((nb, nout))
            for b in range(nb):
                v[b, :] = v0[noff:noff + nout]
        analog = np.zeros((nb, n0), np.float32)
        for b in range(nb):
            row = x[b0 + b]
            for j in range(row.shape[0]):
                if row[j] != 0:
                    _scatter(first, weights, j, row[j], analog[b])
        current_all = np.empty(nb * max_out, np.float32)
        ring = np.zeros((max(n_slots, 1), nb, max_in), np.bool_)
        for t in range(steps):
            for i in range(n_layers):
                m = meta[i]
                nout, d, noff = m[NOUT], m[DELAY], m[NOFF]
                current = current_all[:nb * nout].reshape((nb, nout))
                if i == 0:
                    if t >= d:
                        current[:, :] = analog
                    else:
                        current[:, :] = 0
                else:
                    current[:, :] = 0
                    if t >= d:
                        src = ring[m[ROFF] + (t - d) % (d + 1)]
                        nin = m[NIN]
                        if m[KIND] == 0:  # dense: one weight row, every sample that needs it
                            _dense_rows(src, weights[m[WOFF]:m[WOFF] + nin * nout], nin, nout, nb, current)
                        else:
                            for b in range(nb):
                                for j in range(nin):
                                    if src[b, j]:
                                        _scatter(m, weights, j, np.float32(1.0), current[b])
                lb = bias[noff:noff + nout]
                for b in range(nb):
                    for c in range(nout):
                        current[b, c] += lb[c]
                v = v_all[nb * noff: nb * (noff + nout)].reshape((nb, nout))
                if i == n_layers - 1:
                    for b in range(nb):
                        for c in range(nout):
                            v[b, c] += current[b, c]
                    break
                nxt = meta[i + 1]
                slot = ring[nxt[ROFF] + t % (nxt[DELAY] + 1)]
                refractory = ref_all[nb * noff: nb * (noff + nout)].reshape((nb, nout))
                fired, ev = _integrate(current, v, refractory, thresholds[i], m[SUB], m[REFRAC],
                                       fanout[nxt[FOFF]:nxt[FOFF] + nout], slot)
                for b in range(nb):
                    spikes[i, t, b0 + b] = fired[b]
                    events[t, b0 + b] += ev[b]
                if keep:  # raster of layer i: (N, steps, nout) from raster_off[i]
                    for b in range(nb):  # (no slice views: their reference counts are shared atomics)
                        base = raster_off[i] + ((b0 + b) * steps + t) * nout
                        for c in range(nout):
                            rasters[base + c] = slot[b, c]
            v = v_all[nb * last[NOFF]:].reshape((nb, last[NOUT]))
            for b in range(nb):
                best = 0
                for c in range(1, last[NOUT]):
                    if v[b, c] > v[b, best]:
                        best = c
                preds[t, b0 + b] = best
                if record:
                    v_out[t, b0 + b, :] = v[b]

    @numba.njit(cache=True, nogil=True, parallel=True)
    def _simulate(meta, thresholds, weights, bias, v0, fanout, x, steps, block, n_slots, preds, events, spikes,
                  v_out, record, rasters, raster_off, keep):  # pragma: no cover - compiled
        n = x.shape[0]
        for blk in numba.prange((n + block - 1) // block):
            b0 = blk * block
            _simulate_block(meta, thresholds, weights, bias, v0, fanout, x, steps, b0, min(block, n - b0), n_slots,
                            preds, events, spikes, v_out, record, rasters, raster_off, keep)

"""Event-driven batched CPU engine (numba): the default simulator of the optimizer and the evaluator.

Why a second batched engine: spikes are sparse (about 10 % of the dense MNIST model's neurons fire
per step), so adding only the synapses of the neurons that fired does ~10x fewer operations than
the TF engine's per-step GEMMs, which multiply every zero as well. Design:

- Samples are independent, so blocks of ``block`` samples run in parallel (numba ``prange``), each
  block for all T steps. Within a block, a dense layer's current is built input neuron by input
  neuron: weight row j is loaded once per step and added to the current of every sample of the
  block whose neuron j spiked (the row stays in cache across the samples). A convolution adds, for
  each spike, the kernel slice of that input channel to its receptive window (:mod:`.synapses`);
  the kernel and a sample's currents stay in cache.
- The first layer's analog current is the same scatter weighted by the input values, once per frame.
- Every sample's currents are summed in ascending input order from zero, then the bias is added,
  then the residual input (exactly the order of the streaming engine), so a sample's result does not
  depend on the block, the chunking or the number of MPI ranks.
- Every layer kind: each layer's output (spikes of a hidden layer, of a max pool, a zero-padded or
  flattened copy) is a ring of ``delay + 1`` per-step bool maps of its consumers' largest synaptic
  delay; flatten shares its input's ring. Zero padding writes the interior of a zero-bordered map,
  the spiking max pool keeps per-sample spike counts and the largest count of each window (a unit
  fires when that grows; the windows of an input are found by index arithmetic), a residual input
  adds the per-neuron skip weight where its (delayed) source spiked.
- Synaptic events are counted in integers (spikes x non-zero fan-out), per sample, at emission.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.bundle import Bundle
from ..model.layers import same_padding, skip_index
from . import compiled, ops, synapses
from .compiled import aligned_floats, jit, numba, parallel_jit
from .result import EngineResult, checked_inputs
from .synapses import (CONV, DENSE, DEPTHWISE, G_IC, G_IH, G_IW, G_KH, G_KIND, G_KW, G_NIN, G_NOUT, G_OC, G_OH, G_OW,
                       G_PL, G_PT, G_SH, G_SIZE, G_SW)

# Operation codes of the program (weighted kinds share synapses.KIND_CODE).
FLATTEN, ZERO_PAD, MAX_POOL = 3, 4, 5
# Columns of a program row after the synapse geometry: offsets into the flat parameter and state
# arrays, neuron dynamics, the buffers (rings of per-step bool maps) read and written.
(WOFF, WEND, NOFF, FOFF, REFRAC, DELAY, SUB, SRC, DST, SKIP, SKOFF, HID, POFF, WIDX, ROWS, YTAB, XTAB, PATH,
 NCOLS) = range(G_SIZE, G_SIZE + 19)
EVENTS, DENSE_PATH = 0, 1  # a layer's synapses: the inputs that spiked, or every input x 0 or 1 (the same sums)
PATHS = {"events": EVENTS, "dense": DENSE_PATH}
# Columns of the buffer table: offset (in neurons x slots, per sample), neurons, ring slots.
BOFF, BN, BR = range(3)
# Samples per block: a dense block's currents (block x neurons float32) should stay in the L2 cache.
DEFAULT_BLOCK_BYTES = 256 << 10


@dataclass
class Prefix:
    """What the program rows before ``op`` produced in one run on a fixed input set: enough to run the
    same inputs again from ``op`` (bit-identical) while the parameters of those rows stay the same."""

    op: int  # the first program row that runs again
    raster: np.ndarray  # (N, T, n) bool: op's source buffer at every step
    events: np.ndarray  # (T, N) int64: the synaptic events the rows before op counted
    layer_spikes: np.ndarray  # (L_hidden, T) int64: the rows of the hidden layers before op are theirs
    layers_before: int  # weighted layers before op (all hidden)


def dense_path(kind: str, n_out: int, input_rate: float) -> bool:
    """Whether a layer's dense path beats its event-driven one at this input firing rate, as measured by
    ``benchmarks/bench_paths.py`` (docs/performance.md): only for narrow dense layers (the branch on
    each input costs more than adding a few weights), from a rate of 0.3. Wide layers and convolutions
    were faster event-driven at every rate measured (up to 0.9)."""
    return kind == "dense" and n_out <= 64 and input_rate >= 0.3


def unsupported(bundle: Bundle) -> list[str]:
    """Layers this engine does not simulate: none of the kinds a bundle can hold (kept for callers)."""
    return [f"{layer.name} ({layer.kind})" for layer in bundle.layers
            if not layer.weighted and layer.kind not in ("flatten", "zero_pad2d", "max_pool2d")]


def supports(bundle: Bundle) -> bool:
    """True when numba is available (every layer kind is simulated)."""
    return numba is not None and not unsupported(bundle)


class BatchEngine:
    """Event-driven batched simulator of a bundle; ``run(x, T)`` returns an :class:`EngineResult`.

    ``threads``: numba threads (default: all CPUs numba sees). ``block``: samples per parallel
    block (default: sized so one block's currents fit in 256 KiB). ``paths``: ``auto`` chooses each
    layer's path (:func:`dense_path`) from the input firing rate measured in the previous run and
    records it in ``path_choices``; ``events`` or ``dense`` fix it. Every path computes the same floats.
    """

    def __init__(self, bundle: Bundle, threads: int | None = None, block: int | None = None, paths: str = "auto"):
        if paths not in ("auto", *PATHS):
            raise ValueError(f"paths must be auto, events or dense, got {paths!r}")
        if numba is None:
            raise RuntimeError("the batched CPU engine needs numba (pip install numba)")
        bad = unsupported(bundle)
        if bad:
            raise ValueError(f"the batched CPU engine does not simulate {', '.join(bad)}; use TFEngine")
        self.threads, self.paths = threads, paths
        self._structure(bundle)
        self.prog[:, PATH] = EVENTS if paths == "auto" else PATHS[paths]
        self.path_choices: list[dict] = []  # per weighted layer after the first: input rate, path chosen
        widest = max(self.prog[:, G_NOUT])
        self.block = int(block) if block else max(1, min(256, DEFAULT_BLOCK_BYTES // (4 * widest)))
        self._raster_buffer = np.empty(0, np.bool_)
        self._rates: dict[int, float] = {}  # program row -> input firing rate of the last run that ran it
        self.replay_points = self._replay_points()
        self.set_parameters(bundle)

    def _structure(self, bundle: Bundle) -> None:
        """The program: one row per layer from the first weighted one, and the buffer table."""
        layers = bundle.layers
        out_shapes = bundle.shapes()
        shapes = [tuple(bundle.input.shape), *out_shapes[:-1]]  # each layer's input
        first = next(k for k, layer in enumerate(layers) if layer.weighted)
        self.prefix = layers[:first]  # shape layers on the analog input (flatten, zero padding)
        self.analog_shape = shapes[first]
        buffer_of: dict[int, int] = {}  # layer index -> buffer holding its output
        bufs: list[list[int]] = []  # [offset, neurons, slots]
        rows = []
        woff = noff = foff = skoff = poff = 0
        self.layers, self.in_shapes, self.out_shapes = [], [], []
        for k in range(first, len(layers)):
            layer = layers[k]
            r = np.full(NCOLS, 0, np.int64)
            r[[SRC, DST, SKIP, HID]] = -1
            r[SRC] = buffer_of.get(k - 1, -1)
            n_in, n_out = math.prod(shapes[k]), math.prod(out_shapes[k])
            r[G_NIN], r[G_NOUT] = n_in, n_out
            if layer.weighted:
                r[:G_SIZE] = synapses.geometry(layer, shapes[k], out_shapes[k])
                n = layer.neuron
                r[[WOFF, WEND, NOFF, FOFF, REFRAC, DELAY, SUB, WIDX]] = (
                    woff, woff + layer.weights.size, noff, foff, n.refractory_steps, n.delay_steps,
                    n.reset == "subtract", len(self.layers))
                woff += layer.weights.size
                noff += n_out
                foff += n_in
                for source in (k - 1, skip_index(layers, k)):
                    if source is not None and source in buffer_of:  # a spiking source: its ring keeps delay + 1 slots
                        b = buffer_of[source]
                        bufs[b][2] = max(bufs[b][2], n.delay_steps + 1)
                if layer.skip is not None:
                    r[SKIP], r[SKOFF] = buffer_of[skip_index(layers, k)], skoff
                    skoff += n_out
                if not layer.output:
                    r[HID] = len(self.layers)
                self.layers.append(layer)
                self.in_shapes.append(shapes[k])
                self.out_shapes.append(out_shapes[k])
            elif layer.kind == "flatten":
                r[G_KIND] = FLATTEN
            else:
                ih, iw, ic = shapes[k]
                oh, ow, oc = out_shapes[k]
                r[[G_KIND, G_IH, G_IW, G_IC, G_OH, G_OW, G_OC]] = (ZERO_PAD if layer.kind == "zero_pad2d" else MAX_POOL,
                                                                   ih, iw, ic, oh, ow, oc)
                if layer.kind == "zero_pad2d":
                    (r[G_PT], _), (r[G_PL], _) = layer.pad
                else:
                    (ph, pw), (sh, sw) = layer.pool_size, layer.strides
                    pt = same_padding(ih, ph, sh)[0] if layer.padding == "same" else 0
                    pl = same_padding(iw, pw, sw)[0] if layer.padding == "same" else 0
                    r[[G_KH, G_KW, G_SH, G_SW, G_PT, G_PL]] = ph, pw, sh, sw, pt, pl
                    r[POFF] = poff
                    poff += n_in + n_out  # spike counts of the inputs, largest count of each window
            if layer.kind == "flatten" and k - 1 in buffer_of:
                buffer_of[k] = buffer_of[k - 1]  # the same bool map, read as a vector
            elif not (layer.weighted and layer.output):
                buffer_of[k] = len(bufs)
                bufs.append([0, n_out, 1])
            r[DST] = buffer_of.get(k, -1)
            rows.append(r)
        offset = 0
        for b in bufs:
            b[0] = offset
            offset += b[1] * b[2]
        self.prog = np.stack(rows)
        self.bufs = np.array(bufs, np.int64).reshape(-1, 3)
        self.ring_size, self.pool_size = offset, poff
        self.num_classes = math.prod(out_shapes[-1])
        self.n_hidden = len(self.layers) - 1
        self.bundle = bundle

    def _replay_points(self) -> list[int]:
        """The program rows a run can start at from a :class:`Prefix`: every row from there on reads only
        buffers written by rows from there on, or the row's own source buffer (which the replay fills)."""
        points = []
        for p in range(1, len(self.prog)):
            src = self.prog[p, SRC]
            written = {src}
            ok = src >= 0
            for i in range(p, len(self.prog)):
                reads = [b for b in self.prog[i, [SRC, SKIP]] if b >= 0]
                ok = ok and all(b in written for b in reads)
                if self.prog[i, G_KIND] != FLATTEN:
                    written.add(self.prog[i, DST])
            if ok:
                points.append(p)
        return points

    def layer_row(self, weighted: int) -> int:
        """The program row of weighted layer ``weighted`` (index into ``bundle.weighted_layers``)."""
        return int(np.flatnonzero((self.prog[:, G_KIND] <= DEPTHWISE) & (self.prog[:, WIDX] == weighted))[0])

    def source_size(self, op: int) -> int:
        """Neurons of program row ``op``'s source buffer (a :class:`Prefix` raster holds T of them per sample)."""
        return int(self.bufs[self.prog[op, SRC], BN])

    def set_parameters(self, bundle: Bundle) -> None:
        """Use the weights, biases, thresholds, V0 and skip weights of ``bundle`` (same architecture) from now on."""
        layers = bundle.weighted_layers
        same = len(layers) == len(self.layers) and all(
            a.kind == b.kind and a.weights.shape == b.weights.shape and a.neuron == b.neuron and a.strides == b.strides
            and a.padding == b.padding and a.skip == b.skip for a, b in zip(layers, self.layers))
        if not same or _graph(bundle) != _graph(self.bundle):

            raise ValueError("set_parameters needs the same architecture and neuron dynamics; build a new BatchEngine")
        def flat(arrays):
            return np.ascontiguousarray(np.concatenate([a.ravel() for a in arrays] or [np.zeros(0)]))
        self.weights = compiled.aligned(flat([layer.weights.astype(np.float32) for layer in layers]))
        self.bias = flat([np.broadcast_to(l.bias, s).astype(np.float32) for l, s in zip(layers, self.out_shapes)])
        self.v0 = flat([np.broadcast_to(l.v0, s).astype(np.float32) for l, s in zip(layers, self.out_shapes)])
        self.fanout = flat([ops.fanout(l, s).astype(np.int64) for l, s in zip(layers, self.in_shapes)])
        skipped = [(l, s) for l, s in zip(layers, self.out_shapes) if l.skip is not None]
        self.skip_weights = flat([np.broadcast_to(l.skip_weights, s).astype(np.float32) for l, s in skipped]
                                 ).astype(np.float32)
        self.skip_fanout = flat([ops.skip_fanout(l, s) for l, s in skipped]).astype(np.int64)
        rows, tables = [], []  # conv2d kernels as contiguous window rows, and their window tables
        for i in np.flatnonzero(self.prog[:, G_KIND] <= DEPTHWISE):
            r, layer = self.prog[i], layers[self.prog[i, WIDX]]
            if layer.kind == "conv2d":
                w, ytab, xtab = synapses.conv_rows(layer, r[:G_SIZE])
                r[ROWS] = sum(a.size for a in rows)
                r[YTAB] = sum(a.size for a in tables)
                r[XTAB] = r[YTAB] + ytab.size
                rows.append(w)
                tables += [ytab.ravel(), xtab.ravel()]
        self.rows = compiled.aligned(flat(rows))  # aligned: the conv kernels load LANES-wide vectors
        self.tables = flat(tables).astype(np.int64)
        self.thresholds = np.array([l.neuron.threshold for l in layers], np.float32)
        self.layers, self.bundle = layers, bundle

    def _choose_paths(self, spikes_per_step: np.ndarray, start: int = 0) -> None:
        """Each layer's path for the next run, from the input firing rates of this one (recorded); rows
        before ``start`` did not run and keep their rate and path."""
        self.path_choices = []
        for i in np.flatnonzero(self.prog[:, G_KIND] <= DEPTHWISE)[1:]:
            r = self.prog[i]
            if i >= start:
                self._rates[i] = float(spikes_per_step[i] / r[G_NIN])
            rate = self._rates.get(i, 0.0)
            if self.paths == "auto" and i >= start:
                r[PATH] = DENSE_PATH if dense_path(self.layers[r[WIDX]].kind, int(r[G_NOUT]), rate) else EVENTS
            self.path_choices.append({"layer": self.layers[r[WIDX]].name, "input_rate": rate,
                                      "path": "dense" if r[PATH] == DENSE_PATH else "events"})

    def analog(self, x: np.ndarray) -> np.ndarray:
        """The first weighted layer's input: ``x`` through the shape layers before it, flat (N, n)."""
        for layer in self.prefix:
            if layer.kind == "zero_pad2d":
                x = ops.zero_pad(x, layer)
        return np.ascontiguousarray(x.reshape(len(x), math.prod(self.analog_shape)), np.float32)

    def run(self, x: np.ndarray, timesteps: int, record_v_out: bool = False,
            record_spikes: bool = False, prefix: Prefix | None = None, keep: tuple[int, ...] = ()) -> EngineResult:
        """Simulate ``x`` for ``timesteps`` steps. ``record_spikes`` also returns every hidden
        layer's spike raster (views of a buffer the next run overwrites) and the per-sample spike
        counts: what :mod:`.incremental` caches.

        ``prefix``: run only the program rows from ``prefix.op`` on, replaying its source buffer (the
        same ``x`` and the same parameters before that row as the run that kept it). ``keep``: ascending
        rows of ``replay_points`` after that; the result's ``prefixes`` then let later runs start there
        (:mod:`.prefix`)."""
        x = checked_inputs(x, self.bundle.input.shape, timesteps)
        n, t = x.shape[0], int(timesteps)
        start = self._check_prefix(prefix, n, t, record_spikes)
        keep = tuple(int(k) for k in keep)
        if any(k not in self.replay_points for k in keep) or list(keep) != sorted(set(keep)) or \
                (keep and keep[0] <= start):
            raise ValueError(f"keep must hold ascending replay points after row {start}, got {keep}")
        analog = self.analog(x)
        preds = np.zeros((t, n), np.int32)
        seg = np.searchsorted(np.array(keep, np.int64), np.arange(len(self.prog)), side="right").astype(np.int64)
        parts = np.zeros((len(keep) + 1, t, n), np.int64)  # events of the rows before keep[0], ..., after keep[-1]
        spikes = np.zeros((self.n_hidden, t, n), np.int32)
        inputs = np.zeros((len(self.prog), n), np.int64)  # spikes into each weighted layer, per sample
        v_out = np.zeros((t, n, self.num_classes) if record_v_out else (0, 0, 0), np.float32)
        sizes = [math.prod(s) for s in self.out_shapes[:-1]]
        raster_off = np.concatenate([[0], np.cumsum([n * t * k for k in sizes])]).astype(np.int64)
        need = int(raster_off[-1]) if record_spikes else 0
        if need > self._raster_buffer.size:  # kept between runs: fresh pages would cost a fault each
            self._raster_buffer = np.empty(need, np.bool_)
        rasters = self._raster_buffer[:need]  # every entry is written by the kernel
        replay = prefix.raster.reshape(-1) if prefix is not None else np.zeros(1, np.bool_)
        rec_size = [n * t * self.source_size(k) for k in keep]
        rec_off = np.concatenate([[0], np.cumsum(rec_size)]).astype(np.int64)
        recorded = np.empty(max(int(rec_off[-1]), 1), np.bool_)
        if n:
            previous = numba.get_num_threads()
            if self.threads:
                numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
            try:
                _simulate(self.prog, self.bufs, self.thresholds, self.weights, self.rows, self.tables, self.bias,
                          self.v0, self.fanout, self.skip_weights, self.skip_fanout, analog, t, self.block,
                          self.ring_size, self.pool_size,
                          preds, spikes, inputs, v_out, record_v_out, rasters, raster_off, record_spikes,
                          start, seg, parts, replay, np.array(keep, np.int64), rec_off[:-1], recorded)
            finally:
                numba.set_num_threads(previous)
            self._choose_paths(inputs.sum(axis=1) / (n * t), start)
        layer_spikes = spikes.sum(axis=2, dtype=np.int64)
        before = np.zeros((t, n), np.int64)
        if prefix is not None:
            layer_spikes[:prefix.layers_before] = prefix.layer_spikes[:prefix.layers_before]
            before += prefix.events
        kept = []
        for k, part, a, b in zip(keep, parts, rec_off, rec_off[1:]):
            before += part
            kept.append(Prefix(k, recorded[a:b].reshape(n, t, -1), before.copy(), layer_spikes.copy(),
                               int(np.count_nonzero(self.prog[:k, G_KIND] <= DEPTHWISE))))
        return EngineResult(
            predictions=preds, events=before + parts[-1], layer_spikes=layer_spikes,
            input_events=(analog != 0).astype(np.int64) @ self.fanout[:self.prog[0, G_NIN]],
            v_out=v_out if record_v_out else None,
            spike_rasters=[rasters[a:b].reshape(n, t, k) for a, b, k in zip(raster_off, raster_off[1:], sizes)]
            if record_spikes else None,
            sample_spikes=spikes if record_spikes else None, prefixes=kept)

    def _check_prefix(self, prefix: Prefix | None, n: int, t: int, record_spikes: bool) -> int:
        """The first program row to run (ValueError for a prefix this run cannot use)."""
        if prefix is None:
            return 0
        if record_spikes:
            raise ValueError("record_spikes needs a full run (the rows before the prefix record nothing)")
        if prefix.op not in self.replay_points:
            raise ValueError(f"program row {prefix.op} is not a replay point ({self.replay_points})")
        shape = (n, t, self.source_size(prefix.op))
        if prefix.raster.shape != shape or prefix.raster.dtype != np.bool_ or prefix.events.shape != (t, n):
            raise ValueError(f"the prefix is for another input set: raster {prefix.raster.shape}, expected {shape}")
        return prefix.op


def _graph(bundle: Bundle) -> list[tuple]:
    """What the program takes from a bundle's shape layers (flatten is only a reshape)."""
    return [(l.kind, l.pad, l.pool_size, l.strides, l.padding) if not l.weighted else ("weighted",)
            for l in bundle.layers if l.kind != "flatten"]


# ----------------------------------------------------------------------------- kernel


if numba is not None:
    from .neuron import fire, prediction, step
    from .synapses import (add_analog, add_dense_all, add_dense_rows, conv_all, conv_spikes, count_events,
                           depthwise_all, window)

    @jit
    def _ring(ring_all, bufs, buf, nb):  # pragma: no cover - compiled
        """Buffer ``buf`` of this block as (slots, nb, neurons)."""
        off, n, r = bufs[buf, BOFF], bufs[buf, BN], bufs[buf, BR]
        return ring_all[nb * off: nb * (off + n * r)].reshape((r, nb, n))

    @jit
    def _copy_slot(flat, ring, t, steps, b0, nb, into_ring):  # pragma: no cover - compiled
        """Copy step t's slot of a buffer ring from (``into_ring``) or to a flat (N, steps, n) raster."""
        slot = ring[t % ring.shape[0]]
        n = slot.shape[1]
        for b in range(nb):
            base = ((b0 + b) * steps + t) * n
            sb = slot[b]
            if into_ring:
                for c in range(n):
                    sb[c] = flat[base + c]
            else:
                for c in range(n):
                    flat[base + c] = sb[c]

    @jit
    def _integrate(current, v, refractory, theta, sub, refrac, slot):  # pragma: no cover - compiled
        """NL-IAF update of one layer for one step (paper eq. 1-2); spikes into ``slot``, spike count per sample.

        The common case (no refractory period) is written without branches so that it vectorizes.
        """
        nb, nout = current.shape
        fired = np.zeros(nb, np.int64)
        for b in range(nb):
            f = 0
            vb, cb, sb = v[b], current[b], slot[b]
            if refrac == 0:
                for c in range(nout):
                    vb[c], s = fire(vb[c] + cb[c], theta, sub)
                    sb[c] = s
                    f += s
            else:
                rb = refractory[b]
                for c in range(nout):
                    vb[c], rb[c], s = step(vb[c], rb[c], cb[c], theta, sub, refrac)
                    sb[c] = s
                    f += s
            fired[b] = f
        return fired

    @jit
    def _events(src, fanout, nb, events, t, b0, spikes):  # pragma: no cover - compiled
        """Add the synaptic events of spike maps ``src`` (nb, n) through fan-out ``fanout`` to
        events[t, b0 + b] and their spikes to spikes[b0 + b] (integers, without branches)."""
        for b in range(nb):
            e, f = count_events(src[b], fanout)
            events[t, b0 + b] += e
            spikes[b0 + b] += f

    @jit
    def _zero_pad(m, src, dst, nb):  # pragma: no cover - compiled
        """The interior of the zero-bordered output map (its border is never written)."""
        ih, iw, ic, ow, pt, pl = m[G_IH], m[G_IW], m[G_IC], m[G_OW], m[G_PT], m[G_PL]
        width = iw * ic
        for b in range(nb):
            for y in range(ih):
                a = y * width
                o = ((y + pt) * ow + pl) * ic
                dst[b, o:o + width] = src[b, a:a + width]

    @jit
    def _max_pool(m, src, dst, state, nb):  # pragma: no cover - compiled
        """Spiking max pool: a unit fires iff the largest spike count of its window grows this step.

        Counts only grow, so a window's new largest count is its old one or the count of an input
        that fired now: only the windows of this step's spikes are visited.
        """
        ih, iw, ic, oh, ow = m[G_IH], m[G_IW], m[G_IC], m[G_OH], m[G_OW]
        ph, pw, sh, sw, pt, pl = m[G_KH], m[G_KW], m[G_SH], m[G_SW], m[G_PT], m[G_PL]
        nin = ih * iw * ic
        for b in range(nb):
            counts = state[b, :nin]
            best = state[b, nin:]
            out = dst[b]
            out[:] = False
            row = src[b]
            for j in range(nin):
                if not row[j]:
                    continue
                counts[j] += 1
                cnt = counts[j]
                y, rem = divmod(j, iw * ic)
                x, c = divmod(rem, ic)
                y0, y1 = window(y + pt, ph, sh, oh)
                x0, x1 = window(x + pl, pw, sw, ow)
                for oy in range(y0, y1):
                    for ox in range(x0, x1):
                        o = (oy * ow + ox) * ic + c
                        if cnt > best[o]:
                            best[o] = cnt
                            out[o] = True

    @jit
    def _simulate_block(prog, bufs, thresholds, weights, rows, tables, bias, v0, fanout, skip_w, skip_fan, x, steps,
                        b0, nb, ring_size, pool_size, preds, spikes, inputs, v_out, record, rasters,
                        raster_off, keep, start, seg, parts, replay, rec_ops, rec_off,
                        recorded):  # pragma: no cover - compiled
        """Samples b0 .. b0 + nb - 1 for all steps (serial; the parallel driver runs blocks side by side).

        State is layer-major (each layer's (nb, n) block contiguous) and every helper gets
        zero-offset slices, which is what lets LLVM vectorize the inner loops.

        Prefix replay: only ops ``start`` .. end run; at each step the source buffer of op ``start`` is
        first filled from ``replay`` (flat (N, steps, n)). Op i counts its events into ``parts[seg[i]]``
        ((T, N) each). Op ``rec_ops[k]`` copies its source buffer into ``recorded`` from ``rec_off[k]``
        (flat (N, steps, n)) before it runs.
        """
        n_ops = prog.shape[0]
        last = prog[n_ops - 1]
        total = last[NOFF] + last[G_NOUT]
        max_out = 1
        for i in range(n_ops):
            if prog[i, G_KIND] <= DEPTHWISE:
                max_out = max(max_out, prog[i, G_NOUT])
        v_all = aligned_floats(nb * total)
        ref_all = np.zeros(nb * total, np.int32)
        for i in range(n_ops):
            if prog[i, G_KIND] <= DEPTHWISE:
                noff, nout = prog[i, NOFF], prog[i, G_NOUT]
                v = v_all[nb * noff: nb * (noff + nout)].reshape((nb, nout))
                for b in range(nb):
                    v[b, :] = v0[noff:noff + nout]
        first = prog[0]
        n0 = first[G_NOUT]
        w0 = weights[first[WOFF]:first[WEND]]
        analog = np.zeros((nb, n0), np.float32)
        for b in range(nb if start == 0 else 0):
            row = x[b0 + b]
            for j in range(row.shape[0]):
                if row[j] != 0:
                    add_analog(first, w0, j, row[j], analog[b])
        current_all = aligned_floats(nb * max_out)
        skipped = np.zeros(x.shape[0], np.int64)  # spikes of residual sources (not recorded)
        ring_all = np.zeros(max(nb * ring_size, 1), np.bool_)
        discard = np.zeros(2 * nb, np.int64)  # counts of delayed sums (counted at emission instead)
        pool_all = np.zeros(max(nb * pool_size, 1), np.int32)
        for t in range(steps):
            if start > 0:
                _copy_slot(replay, _ring(ring_all, bufs, prog[start, SRC], nb), t, steps, b0, nb, True)
            for i in range(start, n_ops):
                m = prog[i]
                kind = m[G_KIND]
                ev = parts[seg[i]]
                for k in range(rec_ops.shape[0]):
                    if rec_ops[k] == i:
                        _copy_slot(recorded[rec_off[k]:], _ring(ring_all, bufs, m[SRC], nb), t, steps, b0, nb,
                                   False)
                if kind == FLATTEN:
                    continue
                if kind == ZERO_PAD or kind == MAX_POOL:
                    src = _ring(ring_all, bufs, m[SRC], nb)
                    dst = _ring(ring_all, bufs, m[DST], nb)
                    s_now = src[t % src.shape[0]]
                    d_now = dst[t % dst.shape[0]]
                    if kind == ZERO_PAD:
                        _zero_pad(m, s_now, d_now, nb)
                    else:
                        size = m[G_NIN] + m[G_NOUT]
                        state = pool_all[nb * m[POFF]: nb * (m[POFF] + size)].reshape((nb, size))
                        _max_pool(m, s_now, d_now, state, nb)
                    continue
                nin, nout, d, noff = m[G_NIN], m[G_NOUT], m[DELAY], m[NOFF]
                current = current_all[:nb * nout].reshape((nb, nout))
                if i == 0:
                    if t >= d:
                        current[:, :] = analog
                    else:
                        current[:, :] = 0
                else:
                    current[:, :] = 0
                    src = _ring(ring_all, bufs, m[SRC], nb)
                    fo = fanout[m[FOFF]:m[FOFF] + nin]
                    # The event-driven sums count events as they go; other paths, and delayed synapses
                    # (events count when a spike is emitted), take a counting pass.
                    counted = d == 0 and m[PATH] == EVENTS and (kind == DENSE or kind == CONV)
                    if not counted:
                        _events(src[t % src.shape[0]], fo, nb, ev, t, b0, inputs[i])
                    if t >= d:
                        s = src[(t - d) % src.shape[0]]
                        if kind == DENSE and m[PATH] == DENSE_PATH:
                            add_dense_all(s, weights[m[WOFF]:m[WEND]], nin, nout, nb, current)
                        elif kind == DENSE:  # one weight row, every sample that needs it
                            add_dense_rows(s, weights[m[WOFF]:m[WEND]], nin, nout, nb, current, fo,
                                           ev[t, b0:b0 + nb] if counted else discard[:nb],
                                           inputs[i, b0:b0 + nb] if counted else discard[nb:2 * nb])
                        elif kind == CONV:  # per spike, each window row: one contiguous run of weights
                            wr = rows[m[ROWS]:m[ROWS] + m[WEND] - m[WOFF]]
                            ytab = tables[m[YTAB]:m[XTAB]].reshape((m[G_IH], 2))
                            xtab = tables[m[XTAB]:m[XTAB] + 3 * m[G_IW]].reshape((m[G_IW], 3))
                            for b in range(nb):
                                if m[PATH] == DENSE_PATH:
                                    conv_all(m, wr, ytab, xtab, s[b], current[b])
                                else:
                                    e, f = conv_spikes(m, wr, ytab, xtab, s[b], current[b], fo)
                                    if counted:
                                        ev[t, b0 + b] += e
                                        inputs[i, b0 + b] += f
                        else:  # depthwise: every channel of a pixel at once, branch-free
                            wl = weights[m[WOFF]:m[WEND]]
                            for b in range(nb):
                                depthwise_all(m, wl, s[b], current[b])
                lb = bias[noff:noff + nout]
                for b in range(nb):
                    cb = current[b]
                    for c in range(nout):
                        cb[c] += lb[c]
                if m[SKIP] >= 0:  # the residual input, after the bias (the streaming engine's order)
                    src = _ring(ring_all, bufs, m[SKIP], nb)
                    _events(src[t % src.shape[0]], skip_fan[m[SKOFF]:m[SKOFF] + nout], nb, ev, t, b0,
                            skipped)
                    if t >= d:
                        s = src[(t - d) % src.shape[0]]
                        sw = skip_w[m[SKOFF]:m[SKOFF] + nout]
                        for b in range(nb):
                            for c in range(nout):
                                if s[b, c]:
                                    current[b, c] += sw[c]
                v = v_all[nb * noff: nb * (noff + nout)].reshape((nb, nout))
                if m[HID] < 0:  # the output layer accumulates
                    for b in range(nb):
                        for c in range(nout):
                            v[b, c] += current[b, c]
                    continue
                dst = _ring(ring_all, bufs, m[DST], nb)
                slot = dst[t % dst.shape[0]]
                refractory = ref_all[nb * noff: nb * (noff + nout)].reshape((nb, nout))
                fired = _integrate(current, v, refractory, thresholds[m[WIDX]], m[SUB], m[REFRAC], slot)
                h = m[HID]
                for b in range(nb):
                    spikes[h, t, b0 + b] = fired[b]
                if keep:  # raster of hidden layer h: (N, steps, nout) from raster_off[h]
                    for b in range(nb):  # (no slice views: their reference counts are shared atomics)
                        base = raster_off[h] + ((b0 + b) * steps + t) * nout
                        for c in range(nout):
                            rasters[base + c] = slot[b, c]
            v = v_all[nb * last[NOFF]:].reshape((nb, last[G_NOUT]))
            for b in range(nb):
                preds[t, b0 + b] = prediction(v[b])
                if record:
                    v_out[t, b0 + b, :] = v[b]

    @parallel_jit
    def _simulate(prog, bufs, thresholds, weights, rows, tables, bias, v0, fanout, skip_w, skip_fan, x, steps, block,
                  ring_size, pool_size, preds, spikes, inputs, v_out, record, rasters, raster_off,
                  keep, start, seg, parts, replay, rec_ops, rec_off, recorded):  # pragma: no cover
        n = x.shape[0]
        for blk in numba.prange((n + block - 1) // block):
            b0 = blk * block
            _simulate_block(prog, bufs, thresholds, weights, rows, tables, bias, v0, fanout, skip_w, skip_fan, x, steps,
                            b0, min(block, n - b0), ring_size, pool_size, preds, spikes, inputs, v_out,
                            record, rasters, raster_off, keep, start, seg, parts, replay, rec_ops, rec_off,
                            recorded)

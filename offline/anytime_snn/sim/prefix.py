"""Prefix re-simulation: after a change of one layer's parameters, simulate again only the layers
from there on, replaying the unchanged layers' output from a cache.

Why: in the optimizer's neuron phase each Subplex step moves the scale or initial potential of one to
five channels, and on a convolutional net (where a channel reaches every sample, so the sample-level
rules of :mod:`.incremental` find nothing to skip) a run is dominated by the early, wide
convolutions. A step that changes only layers from row ``p`` of the engine's program on leaves
everything before ``p`` as it was: the spikes entering ``p``, the synaptic events the earlier rows
counted and their spike counts. A cache (a :class:`~.batch_engine.Prefix`) holds exactly these, and a
run from ``p`` replays them.

Two caches around one weighted layer L, the layer the previous step changed first: its input and its
output (the next step most likely changes L again: Subplex sweeps a subspace of a few channels, and the
neuron phase sweeps the layers in order).

- A step that changes only some output channels of L (their incoming weights, bias, V0; the layers
  after L may change freely, e.g. the next layer's weights that isolate the scale) takes the *channel
  path*: those channels alone are simulated again from L's cached input, their spikes replace theirs in
  L's cached output, and the run starts after L. The other channels of L compute what they computed
  before; a channel's current is summed in the engine's order (ascending inputs, then the bias), so its
  spikes are the engine's.
- Otherwise a step starts at L's input when that cache is still valid (no layer before L changed), or
  runs in full; a run that moves the caches to another layer records them on the way.

Exact, not approximate: every result is bit-identical to a full run of the new parameters
(``tests/test_prefix.py`` checks this on random networks of every layer kind). The caches are bounded
by ``max_cache_bytes``: the output cache is dropped first, then the input cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.bundle import Bundle
from .batch_engine import DST, SRC, BatchEngine, Prefix
from .compiled import numba, parallel_jit
from .result import EngineResult
from .synapses import CONV, DENSE, G_IC, G_IW, G_KH, G_KIND, G_KW, G_OC, G_OH, G_OW, G_PL, G_PT, G_SH, G_SW

DEFAULT_MAX_CACHE_BYTES = 2 << 30
# A step that changes more than this share of a layer's channels (a layer-level step) takes the
# ordinary path: simulating the channels one by one would cost more than the layer.
MAX_CHANNEL_SHARE = 0.25


@dataclass
class Stats:
    runs: int = 0
    full_runs: int = 0  # runs that started at the first row
    channel_runs: int = 0  # runs that simulated a few channels of one layer again and started after it
    rows_skipped: int = 0  # program rows not simulated, summed over runs
    recorded: int = 0  # runs that kept new caches


@dataclass
class _Layer:
    """What one weighted layer contributes to a run (compared between calls)."""

    kind: str
    neuron: object
    weights: np.ndarray  # the bundle's layout
    bias: np.ndarray  # per output neuron, flat
    v0: np.ndarray  # per output neuron, flat
    skip_weights: np.ndarray | None

    def same(self, other: "_Layer") -> bool:
        return (self.kind == other.kind and self.neuron == other.neuron and np.array_equal(self.weights, other.weights)
                and np.array_equal(self.bias, other.bias) and np.array_equal(self.v0, other.v0)
                and (self.skip_weights is None) == (other.skip_weights is None)
                and (self.skip_weights is None or np.array_equal(self.skip_weights, other.skip_weights)))


def _layer(layer, out_shape) -> _Layer:
    flat = int(np.prod(out_shape))
    return _Layer(layer.kind, layer.neuron, np.asarray(layer.weights, np.float32),
                  np.ascontiguousarray(np.broadcast_to(np.asarray(layer.bias, np.float32), out_shape).reshape(flat)),
                  np.ascontiguousarray(np.broadcast_to(np.asarray(layer.v0, np.float32), out_shape).reshape(flat)),
                  None if layer.skip_weights is None else np.asarray(layer.skip_weights, np.float32))


@dataclass
class _Cache:
    """A prefix and the parameters of the weighted layers before its row that it was computed with."""

    prefix: Prefix
    params: list[_Layer]

    def valid(self, params: list[_Layer]) -> bool:
        return all(a.same(b) for a, b in zip(params, self.params))


class PrefixSimulator:
    """``run(bundle)``: the :class:`EngineResult` of ``engine`` on the fixed inputs ``x`` for
    ``timesteps`` steps under ``bundle``'s parameters, re-simulating only what changed since the cache
    (see the module docstring). ``stats`` counts what was skipped."""

    def __init__(self, engine: BatchEngine, x: np.ndarray, timesteps: int,
                 max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES):
        self.engine, self.timesteps = engine, int(timesteps)
        self.x = np.ascontiguousarray(np.asarray(x, np.float32))
        self.max_cache_bytes = int(max_cache_bytes)
        self.stats = Stats()
        self._rows = [engine.layer_row(i) for i in range(len(engine.layers))]
        self._previous: list[_Layer] | None = None  # the parameters of the previous call
        self._layer: int | None = None  # the weighted layer the caches surround
        self._input: _Cache | None = None  # its input
        self._output: _Cache | None = None  # its output; params include the layer itself

    def run(self, bundle: Bundle) -> EngineResult:
        params = [_layer(layer, shape) for layer, shape in zip(bundle.weighted_layers, self.engine.out_shapes)]
        self.stats.runs += 1
        if self._input is not None and not self._input.valid(params):
            self._input = self._output = None
        prefix = None
        if self._output is not None and self._channel_step(params):
            prefix = self._output.prefix
            self.stats.channel_runs += 1
        else:
            self._output = None  # layer L changed in more than a few channels
            prefix = self._input.prefix if self._input is not None else None
        start = prefix.op if prefix is not None else 0
        target, keep = self._keep(params, prefix)
        self.engine.set_parameters(bundle)
        res = self.engine.run(self.x, self.timesteps, prefix=prefix, keep=keep)
        self.stats.full_runs += start == 0
        self.stats.rows_skipped += start
        if target is not None:
            self._store(target, params, prefix, res.prefixes)
        res.prefixes = None
        self._previous = params
        return res

    # ------------------------------------------------------------------ the channel path

    def _channel_step(self, params: list[_Layer]) -> bool:
        """If the change since the output cache touches only a few output channels of its layer L (and any
        layer after L), simulate those channels again into the cache and return True."""
        i, out = self._layer, self._output
        if not all(a.same(b) for a, b in zip(params[:i], out.params[:i])):
            return False
        new, old = params[i], out.params[i]
        if new.kind != old.kind or new.neuron != old.neuron or new.skip_weights is not None or \
                old.skip_weights is not None or new.weights.shape != old.weights.shape or \
                not np.array_equal(new.weights != 0, old.weights != 0):  # a fan-out changes the events of L
            return False
        g = self.engine.prog[self._rows[i]]
        oc = int(g[G_OC])
        axes = {"dense": (0,), "conv2d": (0, 1, 2), "depthwise_conv2d": (0, 1, 3)}[new.kind]
        changed = np.asarray(new.weights != old.weights).any(axis=axes).reshape(-1)
        changed = changed | ((new.bias != old.bias) | (new.v0 != old.v0)).reshape(-1, oc).any(axis=0)
        chans = np.flatnonzero(changed)
        if len(chans) > max(1, MAX_CHANNEL_SHARE * oc):
            return False
        if len(chans):
            d_spikes = np.zeros((self.timesteps, len(self.x)), np.int64)
            neuron = new.neuron
            _recompute(g, new.weights.reshape(-1), new.bias, new.v0, np.float32(neuron.threshold),
                       neuron.reset == "subtract", neuron.refractory_steps, neuron.delay_steps,
                       self._input.prefix.raster, out.prefix.raster, chans.astype(np.int64), d_spikes)
            out.prefix.layer_spikes[out.prefix.layers_before - 1] += d_spikes.sum(axis=1)
            out.params = out.params[:i] + [new]
        return True

    # ------------------------------------------------------------------ where to keep caches

    def _points(self, i: int) -> tuple[int | None, int | None]:
        """The replay points at weighted layer i's input (its own row) and output (the first row reading it)."""
        row, prog = self._rows[i], self.engine.prog
        if row not in self.engine.replay_points or self.engine.layers[i].output:
            return None, None
        after = next((p for p in self.engine.replay_points if p > row and prog[p, SRC] == prog[row, DST]), None)
        return row, after

    def _available(self, layer: int, started: Prefix | None) -> dict[int, Prefix]:
        """The prefixes around ``layer`` that exist without recording: the one this run starts from, and
        the caches when they are this layer's."""
        have = {started.op: started} if started is not None else {}
        if layer == self._layer:
            for cache in (self._input, self._output):
                if cache is not None:
                    have.setdefault(cache.prefix.op, cache.prefix)
        return have

    def _keep(self, params: list[_Layer], started: Prefix | None) -> tuple[int | None, tuple[int, ...]]:
        """The layer to keep caches around (the first one that changed since the previous call) and the rows
        this run (starting from ``started``) must record for them: those it cannot reuse, after its start,
        within the memory bound."""
        if self._previous is None:
            return None, ()
        changed = next((i for i, (a, b) in enumerate(zip(params, self._previous)) if not a.same(b)), None)
        if changed is None:
            return None, ()
        inp, out = self._points(changed)
        if inp is None:
            return None, ()
        start = started.op if started is not None else 0
        have = self._available(changed, started)
        n = len(self.x) * self.timesteps
        size_in = n * (self.engine.source_size(inp) + 8)
        rows = []
        if inp not in have:
            if inp <= start or size_in > self.max_cache_bytes:
                return None, ()
            rows.append(inp)
        if out is not None and out not in have and out > start and \
                size_in + n * self.engine.source_size(out) <= self.max_cache_bytes:
            rows.append(out)
        if inp == 1 and out not in have and out not in rows:
            # Replaying row 1 skips only the analog first row, whose integration costs what the copy of its
            # spikes costs (results/bench_prefix_conv_l2.json): its input cache pays only with the output one.
            return None, ()
        return (changed, tuple(rows)) if rows else (None, ())

    def _store(self, layer: int, params: list[_Layer], started: Prefix | None, kept: list[Prefix]) -> None:
        inp, out = self._points(layer)
        have = self._available(layer, started)
        have.update({p.op: p for p in kept})
        if inp not in have:
            return
        self.stats.recorded += 1
        self._layer = layer
        self._input = _Cache(have[inp], params[:layer])
        self._output = _Cache(have[out], params[:layer + 1]) if out in have else None


# ----------------------------------------------------------------------------- kernel

if numba is not None:
    from numba.cpython.unsafe.numbers import trailing_zeros

    from .neuron import fire, step
    from .synapses import spike_mask, window

    @parallel_jit
    def _recompute(g, w, bias, v0, theta, sub, refrac, delay, src, dst, chans, d_spikes):  # pragma: no cover
        """Output channels ``chans`` of one weighted layer (geometry ``g``; ``w`` its flat weight tensor in
        the bundle's layout; ``bias``, ``v0`` per output neuron) simulated from its input raster ``src``
        (N, T, n_in) in every sample, as the batched engine computes them: the current summed from zero
        over the spiking inputs in ascending order, then + bias, then V + current. Their spikes replace
        theirs in ``dst`` (N, T, n_out); d_spikes[t, b] gets the change in the layer's spike count."""
        n, steps, nin = src.shape
        kind, iw, ic = g[G_KIND], g[G_IW], g[G_IC]
        oh, ow, oc = g[G_OH], g[G_OW], g[G_OC]
        kh, kw, sh, sw, pt, pl = g[G_KH], g[G_KW], g[G_SH], g[G_SW], g[G_PT], g[G_PL]
        if kind == DENSE:
            oh, ow = 1, 1
        positions = oh * ow
        selected = np.zeros(oc, np.bool_)
        for c in chans:
            selected[c] = True
        k = chans.shape[0]
        for b in numba.prange(n):
            cur = np.zeros(positions * oc, np.float32)
            v = v0.copy()
            refr = np.zeros(positions * oc, np.int32)
            for t in range(steps):
                for p in range(positions):
                    for q in range(k):
                        cur[p * oc + chans[q]] = 0
                if t >= delay:
                    row = src[b, t - delay]
                    for j0 in range(0, nin, 64):
                        rest = spike_mask(row, j0, min(64, nin - j0))
                        while rest:
                            j = j0 + np.int64(trailing_zeros(rest))
                            rest &= rest - np.uint64(1)
                            if kind == DENSE:
                                for q in range(k):
                                    cur[chans[q]] += w[j * oc + chans[q]]
                                continue
                            y, rem = divmod(j, iw * ic)
                            x, ci = divmod(rem, ic)
                            if kind != CONV and not selected[ci]:
                                continue
                            oy0, oy1 = window(y + pt, kh, sh, oh)
                            ox0, ox1 = window(x + pl, kw, sw, ow)
                            for oy in range(oy0, oy1):
                                ky = y + pt - oy * sh
                                for ox in range(ox0, ox1):
                                    kx = x + pl - ox * sw
                                    o = (oy * ow + ox) * oc
                                    if kind == CONV:
                                        wb = ((ky * kw + kx) * ic + ci) * oc
                                        for q in range(k):
                                            cur[o + chans[q]] += w[wb + chans[q]]
                                    else:  # depthwise: input channel ci feeds output channel ci only
                                        cur[o + ci] += w[(ky * kw + kx) * ic + ci]
                d = 0
                for p in range(positions):
                    for q in range(k):
                        o = p * oc + chans[q]
                        c = cur[o] + bias[o]
                        if refrac == 0:
                            v[o], s = fire(v[o] + c, theta, sub)
                        else:
                            v[o], refr[o], s = step(v[o], refr[o], c, theta, sub, refrac)
                        d += np.int64(s) - np.int64(dst[b, t, o])
                        dst[b, t, o] = s
                d_spikes[t, b] += d

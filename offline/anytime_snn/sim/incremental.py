"""Incremental re-simulation: after a change of a few neurons' parameters, simulate again only the
samples that the change can reach.

Why: in the optimizer's neuron phase each Subplex step moves one to five coordinates, i.e. the
scale or initial potential of one to five neurons, and a neuron of the sparsity fine-tuned dense
MNIST model fires at all in only about a quarter of the samples. In a sample where a changed neuron
fires neither before nor after the change, nothing that sample computes differs; in every other
sample it may (docs/optimize.md: 1.45x per neuron-phase evaluation on that model).

Exact, not approximate: a sample that is simulated again is simulated by the same engine, and the
batched engine's result for a sample does not depend on the other samples in the batch, so every
result is bit-identical to a full run of the new parameters (``tests/test_incremental.py`` checks
this on random networks and on the bundled model).

Which samples a change reaches, layer by layer from the input (``A`` = the samples found so far):

- a neuron whose incoming weights, bias or V0 changed: the samples in which it fires before the
  change (cached) or after it. "After" is found by simulating that one neuron alone, from the cached
  input spikes of its layer, which are still right for every sample outside ``A``; it stops at the
  neuron's first spike;
- a changed outgoing weight row of a neuron that did not change itself: the samples in which that
  neuron fires (for samples outside ``A`` its spikes are unchanged);
- a change in the output layer's own parameters, in a convolution, or in the network's structure:
  every sample (a full run).

A change confined to neurons of the last hidden layer needs no simulation at all: each changed
neuron is simulated alone over every sample with its full dynamics, its new spikes replace its old
ones in the cached spikes of that layer, and only the output layer (a few integrators) is read out
again, for the samples where a changed neuron fires before or after.

Only dense layers get the incremental path; a bundle with convolutions still runs, in full, when a
convolution's parameters change, and a bundle with zero padding, max pooling or residual inputs
always runs in full (the optimizer's objective uses :mod:`.prefix` for every net that is not a chain
of dense layers). The cache (each hidden layer's spikes of every sample as lists of
the neurons that fired at each step) is bounded by ``max_cache_bytes``; above it every run is full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.bundle import Bundle
from .batch_engine import BatchEngine
from .compiled import inline, jit, numba, parallel_jit
from .result import EngineResult

DEFAULT_MAX_CACHE_BYTES = 2 << 30
# More changed neurons in one layer than this (a layer-level step changes all of them): a full run,
# since each changed neuron is simulated alone over all samples to find where it fires.
MAX_CHANGED_NEURONS = 32


@dataclass
class _Params:
    """The parameters of one weighted layer, as the comparison needs them."""

    kind: str
    weights: np.ndarray  # float32, the bundle's layout ((inputs, outputs) for dense layers)
    bias: np.ndarray  # (outputs,) float32 broadcast to every output neuron
    v0: np.ndarray  # (outputs,) float32
    neuron: object  # the layer's NeuronConfig (threshold, reset, refractory period, delay)


@dataclass
class _LayerSpikes:
    """One hidden layer's spikes in every sample: CSR rows (sample, step) and who fired at all."""

    ptr: np.ndarray  # (N * T + 1,) int64
    idx: np.ndarray  # int32 neuron indices, ascending within a row
    present: np.ndarray  # (N, neurons) bool


@dataclass
class _Change:
    """One weighted layer's part of a small change."""

    rows: np.ndarray  # inputs (previous layer's neurons; pixels for the first layer) whose samples are reached
    cols: np.ndarray  # neurons to simulate alone: reached where they fire before or after


@dataclass
class Stats:
    runs: int = 0
    full_runs: int = 0
    readout_runs: int = 0  # last-hidden-layer changes: no sample simulated, the output layer read out again
    samples_simulated: int = 0
    samples_total: int = 0


class IncrementalSimulator:
    """``run(bundle)``: the :class:`EngineResult` of ``engine`` on the fixed inputs ``x`` for
    ``timesteps`` steps under ``bundle``'s parameters, re-simulating only the samples reached by
    what changed since the previous call. ``stats`` counts the samples simulated."""

    def __init__(self, engine: BatchEngine, x: np.ndarray, timesteps: int,
                 max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES):
        self.engine, self.timesteps = engine, int(timesteps)
        x = np.asarray(x, np.float32)
        self.shape = x.shape[1:]
        self.x = np.ascontiguousarray(x.reshape(len(x), -1))
        n, t = len(self.x), self.timesteps
        hidden = [int(np.prod(s)) for s in engine.out_shapes[:-1]]
        # The rules below read a weighted layer's input as the previous weighted layer's spikes: with
        # zero padding, max pooling or residual inputs in between they do not hold, so every run is full.
        chain = all(layer.kind in ("dense", "conv2d", "depthwise_conv2d", "flatten") and layer.skip is None
                    for layer in engine.bundle.layers)
        self.cacheable = chain and sum(n * t * (k + 4) + n * k for k in hidden) <= max_cache_bytes
        self.stats = Stats()
        self._params: list[_Params] | None = None
        self._layers: list[_LayerSpikes] = []
        self._result: EngineResult | None = None

    def run(self, bundle: Bundle) -> EngineResult:
        n = len(self.x)
        self.stats.runs += 1
        self.stats.samples_total += n
        params = [_layer_params(layer, shape) for layer, shape in zip(bundle.weighted_layers, self.engine.out_shapes)]
        changes = self._changes(params) if self._params is not None and self.cacheable else None
        if changes is not None and self._layers:
            cols = _last_hidden_only(changes, params)
            if cols is not None:
                self._replace_last_hidden(params, cols)
                self._params = params
                return self._public()
        reached = self._reach(changes, params) if changes is not None and self._layers else None
        if reached is None or reached.all():
            # A full run. Its spikes are kept only where the next call is likely a small step too:
            # after a large one (a layer-level step) the next one usually is large as well.
            self.stats.full_runs += 1
            self.stats.samples_simulated += n
            self.engine.set_parameters(bundle)
            record = self.cacheable and (changes is not None or self._params is None)
            res = self.engine.run(self.x.reshape(n, *self.shape), self.timesteps, record_spikes=record)
            self._params = params
            if not record:
                self._layers, self._result = [], None
                return res
            self._store(np.arange(n), res, full=True)
            return self._public()
        sub = np.flatnonzero(reached)
        if len(sub):
            self.engine.set_parameters(bundle)
            res = self.engine.run(self.x[sub].reshape(len(sub), *self.shape), self.timesteps, record_spikes=True)
            self.stats.samples_simulated += len(sub)
            self._store(sub, res, full=False)
        self._params = params
        return self._public()

    # ------------------------------------------------------------------ which samples must run

    def _changes(self, params: list[_Params]) -> list[_Change] | None:
        """What changed since the previous call, per weighted layer; None when it is not a change
        of a few neurons (the structure, a convolution, the output layer's own parameters, or more
        than MAX_CHANGED_NEURONS neurons of one layer changed).

        A changed weight W[j, c] alters neuron c's input only at the steps where input j fires.
        If neuron j itself changed (it is simulated alone at the previous layer), every sample in
        which it fires, before or after, is reached anyway: the entry is free. Otherwise neuron c
        is simulated alone (a hidden layer) or the samples where j fires are reached (the output
        layer). A weight that turns zero or non-zero also changes j's synaptic events, so the
        samples where j fires are reached then too.
        """
        old = self._params
        out = []
        last = len(params) - 1
        changed_prev = np.zeros(0, bool)  # neurons of the previous layer simulated alone
        for i, (new, was) in enumerate(zip(params, old)):
            if new.kind != was.kind or new.neuron != was.neuron or new.weights.shape != was.weights.shape:
                return None
            neurons_changed = (new.bias != was.bias) | (new.v0 != was.v0)
            if new.kind != "dense":
                if neurons_changed.any() or (new.weights != was.weights).any():
                    return None
                changed_prev = np.zeros(int(np.prod(self.engine.out_shapes[i])), bool)
                out.append(_Change(np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            diff = new.weights != was.weights
            if i > 0 and changed_prev.any():
                diff[changed_prev] = False
            rows = np.zeros(0, np.int64)
            if diff.any():
                if i == last:  # output neurons are not simulated alone: reach where the inputs fire
                    rows = np.flatnonzero(diff.any(axis=1))
                else:
                    neurons_changed |= diff.any(axis=0)
                    pattern = ((new.weights != 0) != (was.weights != 0)).any(axis=1)
                    rows = np.flatnonzero(pattern & ~changed_prev if i > 0 else pattern)
            cols = np.flatnonzero(neurons_changed)
            if len(cols) and (i == last or len(cols) > MAX_CHANGED_NEURONS):
                return None
            out.append(_Change(rows, cols))
            changed_prev = neurons_changed
        return out

    def _reach(self, changes: list[_Change], params: list[_Params]) -> np.ndarray:
        """The samples that ``changes`` reach (from the cached spikes of the previous call)."""
        reached = np.zeros(len(self.x), bool)
        for i, (change, p) in enumerate(zip(changes, params)):
            if len(change.rows):
                source = (self.x[:, change.rows] != 0) if i == 0 else self._layers[i - 1].present[:, change.rows]
                reached |= source.any(axis=1)
            if len(change.cols):
                reached |= self._fires(i, p, change.cols, reached) | self._layers[i].present[:, change.cols].any(axis=1)
        return reached

    def _fires(self, i: int, p: _Params, cols: np.ndarray, skip: np.ndarray) -> np.ndarray:
        """Whether each of neurons ``cols`` of layer i, simulated alone under parameters ``p``,
        fires in each sample outside ``skip`` (from the cached input spikes)."""
        fires, _ = self._alone(i, p, cols, skip, first_only=True)
        return fires

    def _alone(self, i: int, p: _Params, cols: np.ndarray, skip: np.ndarray,
               first_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """Neurons ``cols`` of layer i simulated alone under ``p`` in every sample outside ``skip``, from
        the cached input spikes: whether each sample saw one of them fire, and (unless ``first_only``:
        stop at the first spike) their spike trains, (N, T, len(cols)) bool."""
        n, t = len(self.x), self.timesteps
        w = np.ascontiguousarray(p.weights[:, cols].T)  # (k, inputs)
        cfg = p.neuron
        fires = np.zeros(n, bool)
        trains = np.zeros((1, 1, 1) if first_only else (n, t, len(cols)), bool)
        src = self._layers[i - 1] if i else _LayerSpikes(np.zeros(1, np.int64), np.zeros(0, np.int32), None)
        _simulate_alone(i == 0, self.x, src.ptr, src.idx, w, p.bias[cols], p.v0[cols], np.float32(cfg.threshold),
                        cfg.reset == "subtract", cfg.refractory_steps, cfg.delay_steps, t, skip, first_only, fires,
                        trains)
        return fires, trains

    def _replace_last_hidden(self, params: list[_Params], cols: np.ndarray) -> None:
        """Apply a change of neurons ``cols`` of the last hidden layer without simulating any sample:
        their new spike trains replace the old ones in the cache, the events and spike counts change
        by the difference, and the output layer is read out again where they fire before or after."""
        h, out = len(params) - 2, params[-1]
        trains = self._alone(h, params[h], cols, np.zeros(len(self.x), bool), first_only=False)[1]
        layer, r = self._layers[h], self._result
        reached = trains.any(axis=(1, 2)) | layer.present[:, cols].any(axis=1)
        position = np.full(layer.present.shape[1], -1, np.int64)
        position[cols] = np.arange(len(cols))
        fan_old = np.count_nonzero(self._params[-1].weights[cols], axis=1).astype(np.int64)
        fan_new = np.count_nonzero(out.weights[cols], axis=1).astype(np.int64)
        layer.ptr, layer.idx = _replace_neurons(layer.ptr, layer.idx, cols.astype(np.int32), position, trains,
                                                reached, fan_old, fan_new, self.timesteps,
                                                r.sample_spikes[h], r.events)
        layer.present[:, cols] = trains.any(axis=1)
        sub = np.flatnonzero(reached)
        preds = np.empty((self.timesteps, len(sub)), np.int32)
        _readout(layer.ptr, layer.idx, out.weights, out.bias, out.v0, out.neuron.delay_steps, self.timesteps,
                 sub, preds)
        r.predictions[:, sub] = preds
        self.stats.readout_runs += 1

    # ------------------------------------------------------------------ the cache

    def _store(self, sub: np.ndarray, res: EngineResult, full: bool) -> None:
        n, t = len(self.x), self.timesteps
        if full:  # layer_spikes is derived from sample_spikes in _public, so it is not kept
            self._result = EngineResult(predictions=res.predictions, events=res.events, layer_spikes=None,
                                        input_events=res.input_events, sample_spikes=res.sample_spikes)
        else:
            r = self._result
            r.predictions[:, sub] = res.predictions
            r.events[:, sub] = res.events
            r.input_events[sub] = res.input_events
            r.sample_spikes[:, :, sub] = res.sample_spikes
        take = np.full(n, -1, np.int64)  # for each sample, its row in this run (-1: keep the cached one)
        take[sub] = np.arange(len(sub))
        layers = []
        for i, raster in enumerate(res.spike_rasters):
            ptr, idx, present = _compact(raster, res.sample_spikes[i])
            if full:
                layers.append(_LayerSpikes(ptr, idx, present))
                continue
            old = self._layers[i]
            mptr, midx = _merge(old.ptr, old.idx, ptr, idx, take, t)
            old.present[sub] = present
            layers.append(_LayerSpikes(mptr, midx, old.present))
        self._layers = layers

    def _public(self) -> EngineResult:
        r = self._result
        return EngineResult(predictions=r.predictions.copy(), events=r.events.copy(),
                            layer_spikes=r.sample_spikes.sum(axis=2, dtype=np.int64),
                            input_events=r.input_events.copy())


def _last_hidden_only(changes: list[_Change], params: list[_Params]) -> np.ndarray | None:
    """The changed neurons when a change touches only neurons of the last hidden layer (their
    incoming weights, bias, V0 and outgoing weights, no synapse appearing or vanishing), else None."""
    h = len(changes) - 2
    if h < 0 or params[h].kind != "dense" or params[-1].kind != "dense":
        return None
    if any(len(c.rows) for c in changes) or any(len(c.cols) for i, c in enumerate(changes) if i != h):
        return None
    return changes[h].cols if len(changes[h].cols) else None


def _layer_params(layer, out_shape) -> _Params:
    return _Params(layer.kind, np.asarray(layer.weights, np.float32),
                   np.broadcast_to(np.asarray(layer.bias, np.float32), out_shape).reshape(-1) if layer.kind == "dense"
                   else np.asarray(layer.bias, np.float32),
                   np.broadcast_to(np.asarray(layer.v0, np.float32), out_shape).reshape(-1) if layer.kind == "dense"
                   else np.asarray(layer.v0, np.float32),
                   layer.neuron)


# ----------------------------------------------------------------------------- kernels
# The single-neuron kernels repeat the engine's float32 operations in the engine's order
# (current summed from zero in ascending input order, then + bias, then V + current; reset and
# refractory period as in the engine's _integrate): a neuron's potential is the same number here and
# in the engine at every step. The readout repeats the engine's output layer likewise.

if numba is not None:

    from .neuron import prediction, step

    @inline
    def _step(v, refr, cur, bias, theta, sub, refrac):  # pragma: no cover - compiled
        """One NL-IAF step of one neuron in the engine's order (the current's sum, then + bias, then V +
        current): (v, refractory left, spiked)."""
        return step(v, refr, cur + bias, theta, sub, refrac)

    @jit
    def _simulate_alone(analog, x, ptr, idx, w, bias, v0, theta, sub, refrac, delay, steps, skip, first_only, fires,
                        trains):  # pragma: no cover - compiled
        """Neurons (rows of ``w``) simulated alone: input ``x`` (analog, the first layer: the engine's
        per-frame current) or the CSR spikes ``ptr``/``idx`` of the previous layer."""
        for b in range(skip.shape[0]):
            if skip[b]:
                continue
            for k in range(w.shape[0]):
                wk = w[k]
                a = np.float32(0.0)
                if analog:
                    xb = x[b]
                    for j in range(xb.shape[0]):
                        if xb[j] != 0:
                            a += xb[j] * wk[j]
                v, refr = v0[k], 0
                for t in range(steps):
                    cur = np.float32(0.0)
                    if t >= delay and refr == 0:
                        if analog:
                            cur = a
                        else:
                            r = b * steps + t - delay
                            for q in range(ptr[r], ptr[r + 1]):
                                cur += wk[idx[q]]
                    v, refr, spiked = _step(v, refr, cur, bias[k], theta, sub, refrac)
                    if spiked:
                        fires[b] = True
                        if first_only:
                            break
                        trains[b, t, k] = True
                if first_only and fires[b]:
                    break

    @jit
    def _replace_neurons(ptr, idx, cols, position, trains, reached, fan_old, fan_new, steps, spikes,
                         events):  # pragma: no cover - compiled
        """The CSR with the spikes of neurons ``cols`` (ascending; ``position[c]``: c's index in
        ``cols`` or -1) replaced by ``trains`` in the ``reached`` samples; adds the differences in
        spike counts and synaptic events to ``spikes`` (T, N) and ``events`` (T, N) in place."""
        n = reached.shape[0]
        k = cols.shape[0]
        out_ptr = np.zeros(n * steps + 1, np.int64)
        for b in range(n):
            for t in range(steps):
                r = b * steps + t
                count = ptr[r + 1] - ptr[r]
                if reached[b]:
                    d_spikes, d_events = 0, 0
                    for q in range(ptr[r], ptr[r + 1]):
                        s = position[idx[q]]
                        if s >= 0:
                            d_spikes -= 1
                            d_events -= fan_old[s]
                    for s in range(k):
                        if trains[b, t, s]:
                            d_spikes += 1
                            d_events += fan_new[s]
                    count += d_spikes
                    spikes[t, b] += d_spikes
                    events[t, b] += d_events
                out_ptr[r + 1] = out_ptr[r] + count
        out_idx = np.empty(out_ptr[-1], np.int32)
        for b in range(n):
            if not reached[b]:
                a0, a1 = ptr[b * steps], ptr[(b + 1) * steps]
                out_idx[out_ptr[b * steps]:out_ptr[(b + 1) * steps]] = idx[a0:a1]
                continue
            for t in range(steps):  # merge two ascending lists: the kept old spikes and the new ones
                r = b * steps + t
                q, end, s, o = ptr[r], ptr[r + 1], 0, out_ptr[r]
                while True:
                    while q < end and position[idx[q]] >= 0:
                        q += 1
                    while s < k and not trains[b, t, s]:
                        s += 1
                    if q >= end and s >= k:
                        break
                    if s >= k or (q < end and idx[q] < cols[s]):
                        out_idx[o] = idx[q]
                        q += 1
                    else:
                        out_idx[o] = cols[s]
                        s += 1
                    o += 1
        return out_ptr, out_idx

    @parallel_jit
    def _readout(ptr, idx, w, bias, v0, delay, steps, samples, preds):  # pragma: no cover - compiled
        """The output layer (integrators, argmax readout) of ``samples`` from the CSR spikes of its
        input, as the engine computes it: current from zero over the inputs in ascending order, + bias."""
        nout = w.shape[1]
        for s in numba.prange(samples.shape[0]):
            b = samples[s]
            v = v0.copy()
            cur = np.empty(nout, np.float32)
            for t in range(steps):
                cur[:] = 0
                if t >= delay:
                    r = b * steps + t - delay
                    for q in range(ptr[r], ptr[r + 1]):
                        wj = w[idx[q]]
                        for c in range(nout):
                            cur[c] += wj[c]
                for c in range(nout):
                    v[c] += cur[c] + bias[c]
                preds[t, s] = prediction(v)

    @parallel_jit
    def _compact(raster, counts):  # pragma: no cover - compiled
        """CSR over (sample, step) rows of a (N, T, neurons) raster, and which neurons fired at all
        in each sample; ``counts``: (T, N) spikes per row."""
        n, steps, k = raster.shape
        ptr = np.zeros(n * steps + 1, np.int64)
        for b in range(n):
            for t in range(steps):
                ptr[b * steps + t + 1] = ptr[b * steps + t] + counts[t, b]
        idx = np.empty(ptr[-1], np.int32)
        present = np.zeros((n, k), np.bool_)
        for b in numba.prange(n):
            pb = present[b]
            for t in range(steps):
                q = ptr[b * steps + t]
                row = raster[b, t]
                for c in range(k):
                    pb[c] |= row[c]
                for c in range(k):
                    if row[c]:
                        idx[q] = c
                        q += 1
        return ptr, idx, present

    @jit
    def _merge(ptr_old, idx_old, ptr_new, idx_new, take, steps):  # pragma: no cover - compiled
        """The cached CSR with the rows of samples ``take[b] >= 0`` replaced by those of the new
        run's sample ``take[b]``."""
        n = take.shape[0]
        ptr = np.zeros(n * steps + 1, np.int64)
        for b in range(n):
            src_ptr = ptr_new if take[b] >= 0 else ptr_old
            s = take[b] if take[b] >= 0 else b
            for t in range(steps):
                r = s * steps + t
                ptr[b * steps + t + 1] = ptr[b * steps + t] + src_ptr[r + 1] - src_ptr[r]
        idx = np.empty(ptr[-1], np.int32)
        for b in range(n):
            if take[b] >= 0:
                a0, a1 = ptr_new[take[b] * steps], ptr_new[(take[b] + 1) * steps]
                idx[ptr[b * steps]:ptr[(b + 1) * steps]] = idx_new[a0:a1]
            else:
                a0, a1 = ptr_old[b * steps], ptr_old[(b + 1) * steps]
                idx[ptr[b * steps]:ptr[(b + 1) * steps]] = idx_old[a0:a1]
        return ptr, idx

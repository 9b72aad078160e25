"""Inner loops of the streaming engine: compiled with numba, with plain NumPy versions of each.

The two versions compute the same floats (the same float32 operations in the same order), and the
simulator tests run both against the reference. ``kernel_set(compiled)`` picks one.

- ``integrate``: NL-IAF update of one layer for k steps (paper eq. 1-2, reset, refractory).
- ``spike_events``: synaptic events per step (spikes x fan-out) and the number of spikes.
- ``spike_rows_sum``: event-driven synaptic current, out[i] = sum of weights[j] over the j that
  spiked at step i (reads only the rows of neurons that fired; rows added in ascending j); adds the
  events per step like ``spike_events``, in the same pass.
- ``input_current``: the first dense layer's analog current x @ W, skipping zero inputs (camera
  images are mostly dark), single-threaded.
- ``pool_step``: the spiking max pool for k steps: add each step's input spikes to the per-neuron
  counts, then a pooling unit spikes iff the largest count in its window grew (``best`` holds the
  largest count so far). ``counts`` has one extra, always-zero entry that padded window slots index.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .compiled import jit, numba

# ----------------------------------------------------------------------------- NumPy


def numpy_integrate(current, v, refractory, threshold, subtract, refractory_steps, spikes) -> None:
    k = current.shape[0]
    if refractory_steps == 0:
        for i in range(k):
            v += current[i]
            s = spikes[i]
            np.greater_equal(v, threshold, out=s)
            if subtract:
                np.subtract(v, threshold, out=v, where=s)
            else:
                np.copyto(v, 0, where=s)
        return
    active = np.empty(v.shape, bool)
    for i in range(k):
        np.equal(refractory, 0, out=active)
        np.add(v, current[i], out=v, where=active)
        np.subtract(refractory, 1, out=refractory, where=~active)
        s = spikes[i]
        np.greater_equal(v, threshold, out=s)
        s &= active
        if subtract:
            np.subtract(v, threshold, out=v, where=s)
        else:
            np.copyto(v, 0, where=s)
        np.copyto(refractory, refractory_steps, where=s)


def numpy_spike_events(spikes, fanout, events) -> int:
    events += spikes @ fanout
    return int(np.count_nonzero(spikes))


def numpy_spike_rows_sum(spikes, weights, out, fanout, events) -> int:
    count = numpy_spike_events(spikes, fanout, events)
    out[:] = 0
    rows, cols = np.nonzero(spikes)
    if rows.size:
        starts = np.flatnonzero(np.diff(rows, prepend=-1))
        out[rows[starts]] = np.add.reduceat(weights[cols], starts, axis=0)
    return count


def numpy_input_current(x, weights, out) -> None:
    nz = np.flatnonzero(x)
    out[:] = 0
    for j in nz:  # ascending j, one row at a time: the same float32 sums as the compiled kernel
        out += x[j] * weights[j]


def numpy_pool_step(spikes, counts, best, index, out) -> None:
    n_in = spikes.shape[1]
    for i in range(spikes.shape[0]):
        counts[:n_in] += spikes[i]
        new = counts[index].max(axis=1)
        np.greater(new, best, out=out[i])
        best[:] = new


NUMPY = SimpleNamespace(integrate=numpy_integrate, spike_events=numpy_spike_events,
                        spike_rows_sum=numpy_spike_rows_sum, input_current=numpy_input_current,
                        pool_step=numpy_pool_step)

# ----------------------------------------------------------------------------- numba

COMPILED_KERNELS = None
if numba is not None:
    from .neuron import fire, step
    from .synapses import add_dense_rows, count_events

    @jit
    def _integrate(current, v, refractory, threshold, subtract, refractory_steps, spikes):  # pragma: no cover
        k, n = current.shape
        if refractory_steps == 0:  # without branches, so that it vectorizes (spikes are irregular)
            for i in range(k):
                row, s = current[i], spikes[i]
                for j in range(n):
                    v[j], s[j] = fire(v[j] + row[j], threshold, subtract)
            return
        for i in range(k):
            row, s = current[i], spikes[i]
            for j in range(n):
                v[j], refractory[j], s[j] = step(v[j], refractory[j], row[j], threshold, subtract, refractory_steps)

    @jit
    def _spike_events(spikes, fanout, events):  # pragma: no cover
        k, n = spikes.shape
        count = 0
        for i in range(k):
            e, f = count_events(spikes[i], fanout)
            events[i] += e
            count += f
        return count

    @jit
    def _spike_rows_sum(spikes, weights, out, fanout, events):  # pragma: no cover
        """Step by step, the batched engine's row sums (:func:`synapses.add_dense_rows`, the one definition):
        the step's output row stays in L1 while the rows of the inputs that spiked are added (summing all k
        steps at once measured no reliable gain, docs/performance.md)."""
        k, n_in = spikes.shape
        m = weights.shape[1]
        flat = weights.reshape(n_in * m)
        out[:] = 0
        count = np.zeros(1, np.int64)
        for i in range(k):
            add_dense_rows(spikes[i:i + 1], flat, n_in, m, 1, out[i:i + 1], fanout, events[i:i + 1], count)
        return count[0]

    @jit
    def _input_current(x, weights, out):  # pragma: no cover
        out[:] = 0
        for j in range(x.shape[0]):
            if x[j] != 0:
                out += x[j] * weights[j]

    @jit
    def _pool_step(spikes, counts, best, index, out):  # pragma: no cover
        k, n_in = spikes.shape
        n_out, win = index.shape
        for i in range(k):
            for j in range(n_in):
                if spikes[i, j]:
                    counts[j] += 1
            for o in range(n_out):
                m = 0
                for e in range(win):
                    c = counts[index[o, e]]
                    if c > m:
                        m = c
                out[i, o] = m > best[o]
                best[o] = m

    COMPILED_KERNELS = SimpleNamespace(integrate=_integrate, spike_events=_spike_events,
                                       spike_rows_sum=_spike_rows_sum, input_current=_input_current,
                                       pool_step=_pool_step)

COMPILED = COMPILED_KERNELS is not None


def kernel_set(compiled: bool = True) -> SimpleNamespace:
    """The numba kernels (compiled and loaded now, not on the first frame) or the NumPy ones."""
    if not (compiled and COMPILED):
        return NUMPY
    ks = COMPILED_KERNELS
    b, f = np.zeros((1, 1), bool), np.zeros((1, 1), np.float32)
    ks.integrate(f, np.zeros(1, np.float32), np.zeros(1, np.int32), np.float32(1), True, 0, b)
    ks.spike_events(b, np.zeros(1, np.int64), np.zeros(1, np.int64))
    ks.spike_rows_sum(b, f, f.copy(), np.zeros(1, np.int64), np.zeros(1, np.int64))
    ks.input_current(np.zeros(1, np.float32), f, np.zeros(1, np.float32))
    ks.pool_step(b, np.zeros(2, np.int32), np.zeros(1, np.int32), np.zeros((1, 1), np.int64), b.copy())
    return ks

"""Compiled event-driven kernels for the streaming engine (numba), with a NumPy fallback.

``spike_rows_sum(spikes, weights, out)``: out[i] = sum of weights[j] over the inputs j that spiked
at step i. The work is proportional to the number of spikes times the fan-out, reading only the
weight rows of neurons that fired (no temporary copy). Both versions add rows in ascending j, so
they give the same floats.
"""

from __future__ import annotations

import os

import numpy as np


def numpy_spike_rows_sum(spikes: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    out[:] = 0
    rows, cols = np.nonzero(spikes)
    if rows.size:
        starts = np.flatnonzero(np.diff(rows, prepend=-1))
        out[rows[starts]] = np.add.reduceat(weights[cols], starts, axis=0)


try:
    if os.environ.get("ANYTIME_SNN_NO_NUMBA"):
        raise ImportError("disabled by ANYTIME_SNN_NO_NUMBA")
    import numba

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def _numba_spike_rows_sum(spikes, weights, out):  # pragma: no cover - compiled
        k, n_in = spikes.shape
        n_out = weights.shape[1]
        for i in range(k):
            for c in range(n_out):
                out[i, c] = 0.0
            for j in range(n_in):
                if spikes[i, j]:
                    for c in range(n_out):
                        out[i, c] += weights[j, c]

    spike_rows_sum = _numba_spike_rows_sum
    COMPILED = True
except ImportError:  # pragma: no cover - exercised with ANYTIME_SNN_NO_NUMBA=1
    spike_rows_sum = numpy_spike_rows_sum
    COMPILED = False


def warm_up() -> None:
    """Compile (or load from cache) the kernels now rather than on the first frame."""
    spike_rows_sum(np.zeros((1, 1), bool), np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32))

"""Prefix re-simulation: after a change of one layer's parameters, simulate again only the layers
from there on, replaying the unchanged layers' output from a cache.

Why: in the optimizer's neuron phase each Subplex step moves the scale or initial potential of one to
five channels, and on a convolutional net (where a channel reaches every sample, so the sample-level
rules of :mod:`.incremental` find nothing to skip) a run is dominated by the early, wide
convolutions. A step that changes only layers from row ``p`` of the engine's program on leaves
everything before ``p`` as it was: the spikes entering ``p``, the synaptic events the earlier rows
counted and their spike counts. The cache (a :class:`~.batch_engine.Prefix`) holds exactly these,
and a run from ``p`` replays them.

Exact, not approximate: the rows from ``p`` on get the same inputs step by step and compute what a
full run computes, so every result is bit-identical to a full run of the new parameters
(``tests/test_prefix.py`` checks this on random networks of every layer kind).

Where the cache is kept: at the replay point just before the first layer that the *previous* call
changed (the next call most likely changes the same layer again: Subplex sweeps a subspace of a few
channels, and the neuron phase sweeps the layers in order). A run that finds its cache still valid
starts at the cache's row; a run that moves the cache's row also records the new one on the way.
The cache is bounded by ``max_cache_bytes``: a point whose raster would not fit is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.bundle import Bundle
from .batch_engine import BatchEngine, Prefix
from .result import EngineResult

DEFAULT_MAX_CACHE_BYTES = 2 << 30


@dataclass
class Stats:
    runs: int = 0
    full_runs: int = 0  # runs that started at the first row
    rows_skipped: int = 0  # program rows not simulated, summed over runs
    recorded: int = 0  # runs that kept a new cache


def _layer_params(layer) -> tuple:
    """What a weighted layer contributes to a run (compared between calls)."""
    return (layer.kind, layer.neuron, np.asarray(layer.weights), np.asarray(layer.bias), np.asarray(layer.v0),
            None if layer.skip_weights is None else np.asarray(layer.skip_weights))


def _same(a: tuple, b: tuple) -> bool:
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if x is None or y is None or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


class PrefixSimulator:
    """``run(bundle)``: the :class:`EngineResult` of ``engine`` on the fixed inputs ``x`` for
    ``timesteps`` steps under ``bundle``'s parameters, re-simulating only the program rows from the
    first layer whose parameters differ from the cache's. ``stats`` counts what was skipped."""

    def __init__(self, engine: BatchEngine, x: np.ndarray, timesteps: int,
                 max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES):
        self.engine, self.timesteps = engine, int(timesteps)
        self.x = np.ascontiguousarray(np.asarray(x, np.float32))
        self.max_cache_bytes = int(max_cache_bytes)
        self.stats = Stats()
        n = len(self.x)
        self._fits = [p for p in engine.replay_points
                      if n * self.timesteps * (engine.source_size(p) + 8) <= self.max_cache_bytes]
        self._rows = [engine.layer_row(i) for i in range(len(engine.layers))]
        self._previous: list[tuple] | None = None  # the parameters of the previous call
        self._cache: Prefix | None = None
        self._cache_params: list[tuple] = []  # the parameters of the layers before the cache's row

    def run(self, bundle: Bundle) -> EngineResult:
        params = [_layer_params(layer) for layer in bundle.weighted_layers]
        self.stats.runs += 1
        prefix = self._cache
        if prefix is not None and not all(_same(a, b) for a, b in zip(params, self._cache_params)):
            prefix = None  # a layer before the cache's row changed
        start = prefix.op if prefix is not None else 0
        keep = self._keep_point(params, start)
        self.engine.set_parameters(bundle)
        res = self.engine.run(self.x, self.timesteps, prefix=prefix, keep_prefix=keep)
        self.stats.full_runs += start == 0
        self.stats.rows_skipped += start
        if keep is not None:
            self.stats.recorded += 1
            self._cache, res.prefix = res.prefix, None
            self._cache_params = params[:self._cache.layers_before]
        elif prefix is None:
            self._cache, self._cache_params = None, []
        self._previous = params
        return res

    def _keep_point(self, params: list[tuple], start: int) -> int | None:
        """Where to keep a new cache: the last replay point before the first layer that changed since
        the previous call, when that is after ``start`` (else the current cache serves as well)."""
        if self._previous is None or len(self._previous) != len(params):
            return None
        changed = next((i for i, (a, b) in enumerate(zip(params, self._previous)) if not _same(a, b)), None)
        row = self._rows[changed] if changed is not None else len(self.engine.prog)
        best = max((p for p in self._fits if p <= row), default=None)
        return best if best is not None and best > start else None

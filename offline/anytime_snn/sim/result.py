"""What a batched engine returns: per-timestep predictions and synaptic events for N samples.

TensorFlow-free, so code that only reads results never imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EngineResult:
    """Per-timestep results for N samples over T steps."""

    predictions: np.ndarray  # (T, N) int32 argmax of the accumulated output (ties -> lowest index)
    events: np.ndarray  # (T, N) int64 synaptic events caused by the spikes of step t, per sample
    layer_spikes: np.ndarray  # (L_hidden, T) int64 spikes per hidden layer and step, summed over samples
    input_events: np.ndarray  # (N,) int64 analog input values x non-zero synapses (once per frame)
    v_out: np.ndarray | None = None  # (T, N, C) float32 when requested
    spike_rasters: list[np.ndarray] | None = None  # per hidden layer (N, T, neurons) bool, when requested
    sample_spikes: np.ndarray | None = None  # (L_hidden, T, N) int32 spikes per sample, when requested
    prefixes: list | None = None  # batch_engine.Prefix of each row a run was asked to keep

    def correct(self, labels: np.ndarray) -> np.ndarray:
        """(T,) number of correct predictions at each step."""
        return (self.predictions == np.asarray(labels)[None, :]).sum(axis=1)

    def accuracy(self, labels: np.ndarray) -> np.ndarray:
        return self.correct(labels) / self.predictions.shape[1]

    @property
    def mean_events(self) -> np.ndarray:
        """(T,) e_t: mean synaptic events per sample at step t (paper eq. 5)."""
        return self.events.mean(axis=1)


def checked_inputs(x, input_shape, timesteps: int) -> np.ndarray:
    """``x`` as float32 (N, *input_shape); ValueError for another shape or timesteps < 1."""
    x = np.asarray(x, np.float32)
    if x.shape[1:] != tuple(input_shape):
        raise ValueError(f"input shape {x.shape[1:]} != bundle input shape {tuple(input_shape)}")
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    return x

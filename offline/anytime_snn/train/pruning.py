"""Pruning after sparsity fine-tuning (paper 5.1): kernel weights with |w| < epsilon become exactly zero."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..keras_layers import WEIGHTED, layer_class


def prune(model, epsilon: float = 1e-4) -> dict[str, int]:
    """Set kernel weights with |w| < epsilon to exactly 0; return the number zeroed per layer."""
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    out = {}
    for layer in model.layers:
        if layer_class(layer) in WEIGHTED:
            k = layer.kernel.numpy()
            small = (np.abs(k) < epsilon) & (k != 0)
            out[layer.name] = int(small.sum())
            k[np.abs(k) < epsilon] = 0.0
            layer.kernel.assign(k)
    return out

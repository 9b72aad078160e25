"""Turn the accumulated output potential into class scores (calibrated probabilities)."""

from __future__ import annotations

import numpy as np

from ..model.bundle import Calibration


def inverse_temperature(t: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """Inverse temperature for 1-based timesteps ``t``: the calibrated value, else 1/t."""
    t = np.asarray(t)
    if calibration is None:
        return 1.0 / np.maximum(t, 1).astype(np.float32)
    table = calibration.inv_temperature
    return table[np.clip(t, 1, table.size) - 1]


def class_scores(v_out: np.ndarray, t, calibration: Calibration | None = None) -> np.ndarray:
    """softmax(v_out * inv_temperature(t)) along the last axis.

    ``v_out`` is (..., C) accumulated output potential after step ``t`` (scalar or broadcastable to
    v_out.shape[:-1]). Returns float32 probabilities that sum to 1.
    """
    beta = np.asarray(inverse_temperature(t, calibration), np.float32)[..., None]
    z = v_out.astype(np.float32) * beta
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def predictions(v_out: np.ndarray) -> np.ndarray:
    """argmax over classes; ties go to the lowest index (all our engines use this rule)."""
    return np.argmax(v_out, axis=-1)

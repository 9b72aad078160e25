"""Per-timestep confidence calibration (temperature scaling per step).

At every step t the readout is softmax(beta_t * V_out,t). ``fit_calibration`` picks each beta_t >= 0
to minimise the negative log-likelihood of held-out labels (a convex 1-D problem per step, solved by
bisection on its derivative), so that a confidence of 0.9 at step t means about 90 % accuracy at
step t. ``expected_calibration_error`` reports how well that holds.
"""

from __future__ import annotations

import numpy as np

from .model.bundle import Calibration


def _nll_grad(beta: float, v: np.ndarray, labels: np.ndarray) -> float:
    """d/d beta of mean NLL of softmax(beta v): E_p[v] - v_label."""
    z = beta * v
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return float(np.mean((p * v).sum(axis=1) - v[np.arange(len(labels)), labels]))


def fit_step(v: np.ndarray, labels: np.ndarray, beta_max: float = 1e4, iters: int = 60) -> float:
    """Best inverse temperature for outputs ``v`` (N, C) at one step; 0 if the outputs carry no signal."""
    v = v.astype(np.float64)
    v = v - v.mean(axis=1, keepdims=True)
    if _nll_grad(0.0, v, labels) >= 0:  # the NLL increases from beta = 0: uniform scores are best
        return 0.0
    lo, hi = 0.0, 1.0 / max(np.abs(v).max(), 1e-12)
    while _nll_grad(hi, v, labels) < 0 and hi < beta_max:
        lo, hi = hi, hi * 2
    if hi >= beta_max:
        return beta_max
    for _ in range(iters):  # the gradient is increasing in beta (the NLL is convex)
        mid = 0.5 * (lo + hi)
        if _nll_grad(mid, v, labels) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit_calibration(v_out: np.ndarray, labels: np.ndarray) -> Calibration:
    """Fit beta_t for every step from accumulated outputs ``v_out`` (T, N, C) and labels (N,)."""
    labels = np.asarray(labels, np.int64)
    betas = [fit_step(v_out[t], labels) for t in range(v_out.shape[0])]
    return Calibration(inv_temperature=np.asarray(betas, np.float32))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of (N, C) probabilities: weighted mean |accuracy - confidence| over confidence bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)

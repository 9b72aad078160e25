"""Anytime metrics of the paper (section 4, eq. 4-5, 11) as pure functions of per-timestep curves.

Conventions: ``accuracy`` is a_1..a_T (fractions in [0, 1]); ``events`` is e_1..e_T, the *mean
synaptic events per sample* caused at each step (not cumulative, not summed over a batch). For a
converted SNN a_max is the ANN's accuracy. Steps where a_t > a_max contribute negatively, exactly as
the formulas say (the SNN may beat the ANN at some step); nothing is clipped.
"""

from __future__ import annotations

import numpy as np


def _curve(a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"expected a non-empty 1-D per-timestep curve, got shape {a.shape}")
    return a


def pareto_latency(accuracy, a_max: float) -> float:
    """P_l = sum_t (a_max - a_t)  (eq. 4), in timesteps."""
    return float(np.sum(a_max - _curve(accuracy)))


def _curves(accuracy, events) -> tuple[np.ndarray, np.ndarray]:
    a, e = _curve(accuracy), _curve(events)
    if a.shape != e.shape:
        raise ValueError(f"accuracy and events must have the same length, got {a.size} and {e.size}")
    return a, e


def pareto_power(accuracy, events, a_max: float) -> float:
    """P_p = sum_t e_t (a_max - a_t)  (eq. 5), in synaptic events per sample."""
    a, e = _curves(accuracy, events)
    return float(np.sum(e * (a_max - a)))


def pareto_split(accuracy, events, a_max: float) -> dict:
    """P_l and P_p, each split into a *gap* and a *rise* part around the curve's peak a* = max_t a_t.

    gap = T (a_max - a*) for P_l and sum_t e_t (a_max - a*) for P_p: what the SNN's best accuracy leaves
    below a_max at every step, which no timing removes; rise = sum_t (a* - a_t) and sum_t e_t (a* - a_t):
    the cost of reaching its own peak. gap + rise is exactly eq. 4 and eq. 5."""
    a, e = _curves(accuracy, events)
    peak = float(a.max())
    return {"peak": peak, "P_l_gap": float(a.size * (a_max - peak)), "P_l_rise": float(np.sum(peak - a)),
            "P_p_gap": float(np.sum(e) * (a_max - peak)), "P_p_rise": float(np.sum(e * (peak - a)))}


def min_error(accuracy) -> float:
    """M_e = min_t (1 - a_t): the error at the best timestep (eq. 11)."""
    return float(np.min(1.0 - _curve(accuracy)))


def snn_loss(accuracy, events, a_max: float, lambdas: tuple[float, float, float]) -> float:
    """L_SNN = lambda_e M_e + lambda_l P_l + lambda_p P_p  (eq. 11)."""
    le, ll, lp = lambdas
    return le * min_error(accuracy) + ll * pareto_latency(accuracy, a_max) + lp * pareto_power(accuracy, events, a_max)


def time_to_accuracy(accuracy, threshold: float) -> int | None:
    """First 1-based timestep t with a_t >= threshold, or None if never reached."""
    hit = np.flatnonzero(_curve(accuracy) >= threshold)
    return int(hit[0]) + 1 if hit.size else None


def events_to_accuracy(accuracy, events, threshold: float) -> float | None:
    """Cumulative synaptic events per sample up to the first step reaching ``threshold`` (None if never)."""
    t = time_to_accuracy(accuracy, threshold)
    return None if t is None else float(np.sum(_curve(events)[:t]))


def accuracy_vs_events(accuracy, events) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative events per sample after each step, a_t): the paper's Figure 1c view."""
    return np.cumsum(_curve(events)), _curve(accuracy)


def threshold_metrics(accuracy, events, a_max: float, fractions=(0.9, 0.95, 0.99)) -> dict[str, dict]:
    """Time and events to reach each fraction of a_max, e.g. {"0.99": {"timesteps": 12, "events": 3.1e4}}."""
    out = {}
    for f in fractions:
        thr = f * a_max
        out[f"{f:g}"] = {"threshold": thr, "timesteps": time_to_accuracy(accuracy, thr),
                         "events": events_to_accuracy(accuracy, events, thr)}
    return out


def summarize(accuracy, events, a_max: float) -> dict:
    """All scalar metrics of one run, JSON-ready."""
    a = _curve(accuracy)
    return {
        "timesteps": int(a.size),
        "a_max": float(a_max),
        "peak_accuracy": float(a.max()),
        "peak_timestep": int(np.argmax(a)) + 1,
        "final_accuracy": float(a[-1]),
        "P_l": pareto_latency(a, a_max),
        "P_p": pareto_power(a, events, a_max),
        "M_e": min_error(a),
        "events_per_sample": float(np.sum(events)),
        "thresholds": threshold_metrics(a, events, a_max),
    }

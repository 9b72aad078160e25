"""Measure a Keras model as the SNN it converts to: convert as ``anytime-snn convert`` does, simulate test images."""

from __future__ import annotations

import numpy as np

from .ann import ann_synaptic_ops
from .snn import evaluate


def snn_measure(model, calibration: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray, *,
                a_max: float, timesteps: int = 50, normalization: str = "layer", v0: float = 0.5,
                ops_samples: int = 500) -> dict:
    """Convert ``model`` (as ``anytime-snn convert`` does) and simulate it on the given test images.

    Returns accuracy, synaptic events per inference (sum over the T steps, mean per sample), P_l,
    P_p, M_e (with ``a_max``, the ANN accuracy) and the ANN-side operation estimate.
    """
    from ..convert import convert_model, network_input

    bundle = convert_model(model, calibration, granularity=normalization, timesteps=timesteps, v0=v0,
                           provenance={"ann_accuracy": a_max}).bundle
    x = network_input(bundle, test_images)
    ev = evaluate(bundle, x, test_labels, timesteps, a_max=a_max)
    s = ev.summary
    return {
        "samples": int(len(test_labels)), "timesteps": timesteps, "normalization": normalization, "v0": v0,
        "a_max": a_max, "accuracy_final": s["final_accuracy"], "peak_accuracy": s["peak_accuracy"],
        "accuracy_at": {str(t): float(ev.accuracy[t - 1]) for t in (1, 5, 10, 20, 50, 100) if t <= timesteps},
        "events_per_inference": s["events_per_sample"], "input_events_per_inference": ev.input_events,
        "P_l": s["P_l"], "P_p": s["P_p"], "M_e": s["M_e"], "thresholds": s["thresholds"],
        "ann_synaptic_ops": ann_synaptic_ops(bundle.layers, x[:ops_samples]),
    }

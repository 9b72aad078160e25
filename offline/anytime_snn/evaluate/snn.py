"""Evaluate an SNN bundle on labelled data: per-timestep accuracy, synaptic events and the metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..model import Bundle


@dataclass
class Evaluation:
    """Curves over T timesteps, averaged over N samples, and the scalar metrics."""

    accuracy: np.ndarray  # (T,) a_t
    events: np.ndarray  # (T,) e_t, mean synaptic events per sample caused at step t
    layer_rates: np.ndarray  # (L_hidden, T) mean firing rate of each hidden layer per step
    input_events: float  # mean analog-input MACs per sample (once per frame; not in e_t)
    a_max: float
    samples: int
    v_out: np.ndarray | None = None  # (T, N, C) when kept (for calibration)

    @property
    def summary(self) -> dict:
        return metrics.summarize(self.accuracy, self.events, self.a_max)

    def to_json(self) -> dict:
        return {
            "samples": self.samples,
            "summary": self.summary,
            "input_events_per_sample": self.input_events,
            "accuracy": self.accuracy.tolist(),
            "events_per_step": self.events.tolist(),
            "cumulative_events": np.cumsum(self.events).tolist(),
            "layer_firing_rates": self.layer_rates.tolist(),
        }


def evaluate(bundle: Bundle, x: np.ndarray, labels: np.ndarray, timesteps: int | None = None, *,
             a_max: float | None = None, keep_v_out: bool = False, batch_size: int | None = None,
             engine: str = "auto") -> Evaluation:
    """Simulate ``x`` (network inputs) with a batched engine (:func:`anytime_snn.sim.select.resolve` picks
    it: ``auto``, ``numba`` or ``tf``). a_max defaults to the bundle's ANN accuracy."""
    from ..sim.select import batched_engine

    timesteps = timesteps or bundle.timesteps
    res = batched_engine(bundle, engine, batch_size=batch_size).run(x, timesteps, record_v_out=keep_v_out)
    acc = res.accuracy(labels)
    if a_max is None:
        a_max = float(bundle.provenance.get("ann_accuracy", acc.max()))
    sizes = [int(np.prod(s)) for s, layer in zip(bundle.shapes(), bundle.layers) if layer.weighted and not layer.output]
    return Evaluation(
        accuracy=acc,
        events=res.mean_events,
        layer_rates=res.layer_spikes / (len(labels) * np.asarray(sizes, np.float64)[:, None]) if sizes else
        np.zeros((0, timesteps)),
        input_events=float(res.input_events.mean()),
        a_max=float(a_max),
        samples=len(labels),
        v_out=res.v_out,
    )


def evaluate_on_backend(bundle: Bundle, x: np.ndarray, labels: np.ndarray, backend: str, timesteps: int | None = None,
                        *, a_max: float | None = None, progress=None) -> tuple[Evaluation, str]:
    """The same evaluation on a PyNN back end ('nest', 'brian2', 'spinnaker') through our export.

    The bundle runs with SpiNNaker dynamics (the only dynamics PyNN cells implement). Returns the
    evaluation and the back end's note on how events were counted.
    """
    from ..export import run_on_backend

    timesteps = timesteps or bundle.timesteps
    res = run_on_backend(bundle, x, backend, timesteps, progress=progress)
    acc = (res.predictions == np.asarray(labels)[None, :]).mean(axis=1)
    if a_max is None:
        a_max = float(bundle.provenance.get("ann_accuracy", acc.max()))
    rates = np.stack([s.mean(axis=(1, 2)) for s in res.spikes]) if res.spikes else np.zeros((0, timesteps))
    return Evaluation(accuracy=acc, events=res.events.mean(axis=1), layer_rates=rates,
                      input_events=float(res.input_events.mean()), a_max=float(a_max), samples=len(labels)), res.note

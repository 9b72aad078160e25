"""Neuron dynamics of a weighted layer (its own module so that the kind table can build it on load)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ResetMode = Literal["subtract", "zero"]
RESETS = ("subtract", "zero")


@dataclass(frozen=True)
class NeuronConfig:
    """Neuron dynamics of one layer.

    ``subtract`` reset with no refractory period and no delay is the paper's NL-IAF neuron.
    SpiNNaker dynamics (paper section 7) is ``zero`` reset, ``refractory_steps=1``, ``delay_steps=1``.
    During a refractory step the neuron ignores its input and cannot spike. ``delay_steps`` delays
    the layer's incoming synaptic input (spikes, or the analog image for the first layer); the bias
    is a constant current and is not delayed.
    """

    threshold: float = 1.0
    reset: ResetMode = "subtract"
    refractory_steps: int = 0
    delay_steps: int = 0

    @classmethod
    def spinnaker(cls, threshold: float = 1.0) -> "NeuronConfig":
        return cls(threshold=threshold, reset="zero", refractory_steps=1, delay_steps=1)

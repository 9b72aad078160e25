"""Neuron dynamics by the names the commands take (``--dynamics``): one place that says what
"SpiNNaker dynamics" is for a bundle (paper section 7: reset to zero, one-step synaptic delay per layer,
one-step refractory period) and what the plain NL-IAF neuron is.
"""

from __future__ import annotations

from .errors import ConfigError
from .model import Bundle, NeuronConfig

DYNAMICS = {"nl-iaf": NeuronConfig, "spinnaker": NeuronConfig.spinnaker}


def with_dynamics(bundle: Bundle, dynamics: str | None) -> Bundle:
    """``bundle`` with the neuron of ``dynamics`` ('nl-iaf', 'spinnaker'); None keeps the bundle's own."""
    if dynamics is None:
        return bundle
    if dynamics not in DYNAMICS:
        raise ConfigError(f"dynamics must be one of {sorted(DYNAMICS)} (or none: the bundle's own), got {dynamics!r}")
    return bundle.with_neuron(DYNAMICS[dynamics]())


def spinnaker_dynamics(bundle: Bundle) -> Bundle:
    """``bundle`` with SpiNNaker dynamics (what PyNN cells implement)."""
    return with_dynamics(bundle, "spinnaker")

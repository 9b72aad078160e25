"""The search space of the optimizer: firing-rate scales H and initial potentials V0 (paper 5.2-5.3).

Every hidden (spiking) weighted layer ``i`` with ``C_i`` output channels (neurons, for dense layers)
carries a *full state*: ``log_eta[i]`` and ``v0[i]``, both of shape ``(C_i,)``. A phase searches a
coarser vector ``z = [log eta_1 .. log eta_k, V0_1 .. V0_k]`` (dimension 2k) whose entries are
broadcast onto the full state by a :class:`Layout`:

- ``model``: k = 1, one eta and one V0 shared by every hidden layer;
- ``layer``: k = number of hidden layers;
- ``neuron``: one entry per output channel (per neuron in dense layers, per channel in
  convolutions, where weights are shared), except that a layer whose output passes through a max
  pool keeps one layer-level entry (the paper's layer-level scaling before max pooling, which the
  isolation routine enforces).

The output layer is not in the search space: it accumulates and never spikes, its V0 is 0, and a
positive scalar on it leaves the argmax - hence a_t, the events and L_SNN - unchanged, so a
dimension for it would only waste evaluations. Scales are applied with the shared isolation
routine (:func:`anytime_snn.convert.scaling.scale_layer`) to a copy of the *start* bundle at every
evaluation, so scalings never accumulate.

Parameterisation and bounds (see docs/optimize.md): eta = exp(z), log eta in [-3, 3] (eta in
[0.05, 20] relative to the start bundle's heuristic normalization, eta = 1); V0 in [0, threshold]:
a neuron starting at or above threshold fires at t = 1 whatever its input, and a negative V0 only
acts as a higher first threshold, so the bounded box keeps Subplex where V0 means what eq. 12-13 say.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..convert.scaling import feeds_max_pool, scale_layer
from ..errors import ConfigError
from ..model import Bundle

GRANULARITIES = ("model", "layer", "neuron")
NEURON_ORDERS = ("input-first", "output-first")
LOG_ETA_BOUND = 3.0
LOG_ETA_STEP = 0.25  # Subplex's initial step in log eta (a factor of about 1.28)
V0_STEP = 0.1  # initial step in V0 (fraction of the threshold)


@dataclass(frozen=True)
class HiddenLayer:
    index: int  # position in bundle.layers
    name: str
    channels: int
    threshold: float
    layer_level: bool  # its output passes through a max pool: one scale for the whole layer


def hidden_layers(bundle: Bundle) -> list[HiddenLayer]:
    out = []
    layers = bundle.layers
    for i, layer in enumerate(layers):
        if not layer.weighted or layer.output:
            continue
        out.append(HiddenLayer(i, layer.name, int(layer.bias.shape[0]), float(layer.neuron.threshold),
                               feeds_max_pool(layers, i)))
    if not out:
        raise ConfigError("the model has no hidden spiking layer: there is nothing to optimize")
    return out


@dataclass
class FullState:
    """Per-channel log eta and V0 of every hidden layer (lists aligned with :func:`hidden_layers`)."""

    log_eta: list[np.ndarray]
    v0: list[np.ndarray]

    def flat(self) -> np.ndarray:
        return np.concatenate(self.log_eta + self.v0).astype(np.float64)

    @classmethod
    def from_flat(cls, hidden: list[HiddenLayer], flat: np.ndarray) -> "FullState":
        flat = np.asarray(flat, np.float64)
        sizes = [h.channels for h in hidden]
        n = sum(sizes)
        if flat.shape != (2 * n,):
            raise ValueError(f"a full state of this model has {2 * n} entries, got shape {flat.shape}")
        cuts = np.cumsum(sizes)[:-1]
        return cls(list(np.split(flat[:n], cuts)), list(np.split(flat[n:], cuts)))

    @classmethod
    def start(cls, hidden: list[HiddenLayer], v0: float) -> "FullState":
        """eta = 1 (the start bundle as it is) and V0 = ``v0`` x threshold everywhere."""
        return cls([np.zeros(h.channels) for h in hidden], [np.full(h.channels, v0 * h.threshold) for h in hidden])


class Layout:
    """Maps a phase vector z (log etas, then V0s) to the full state and back."""

    def __init__(self, hidden: list[HiddenLayer], granularity: str):
        if granularity not in GRANULARITIES:
            raise ConfigError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
        self.hidden, self.granularity = hidden, granularity
        # group[i]: for each channel of hidden layer i, the index of its entry in the half-vector
        groups, k = [], 0
        for h in hidden:
            if granularity == "model":
                groups.append(np.zeros(h.channels, np.int64))
                k = 1
            elif granularity == "layer" or h.layer_level:
                groups.append(np.full(h.channels, k, np.int64))
                k += 1
            else:
                groups.append(np.arange(k, k + h.channels, dtype=np.int64))
                k += h.channels
        self.groups, self.k = groups, k

    @property
    def dimension(self) -> int:
        return 2 * self.k

    def expand(self, z: np.ndarray) -> FullState:
        z = np.asarray(z, np.float64)
        if z.shape != (self.dimension,):
            raise ValueError(f"{self.granularity} phase vectors have {self.dimension} entries, got {z.shape}")
        eta, v0 = z[:self.k], z[self.k:]
        return FullState([eta[g] for g in self.groups], [v0[g] for g in self.groups])

    def project(self, state: FullState) -> np.ndarray:
        """The phase vector for ``state``: each group's common value, bit for bit, when the group's
        entries are equal (``state`` from a coarser phase), else the group's mean."""
        g = np.concatenate(self.groups)
        out = []
        for values in (np.concatenate(state.log_eta), np.concatenate(state.v0)):
            first, z = np.full(self.k, np.nan), np.zeros(self.k)
            first[g[::-1]] = values[::-1]  # the first entry of each group
            np.add.at(z, g, values)
            z /= np.bincount(g, minlength=self.k)
            same = np.ones(self.k, bool)
            np.logical_and.at(same, g, values == first[g])
            out.append(np.where(same, first, z))
        return np.concatenate(out)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        vmax = np.zeros(self.k)
        for g, h in zip(self.groups, self.hidden):
            vmax[g] = h.threshold  # groups never mix thresholds except at model level: take the smallest there
        if self.granularity == "model":
            vmax[:] = min(h.threshold for h in self.hidden)
        lower = np.concatenate([np.full(self.k, -LOG_ETA_BOUND), np.zeros(self.k)])
        upper = np.concatenate([np.full(self.k, LOG_ETA_BOUND), vmax])
        return lower, upper

    def sweep_order(self, neuron_order: str) -> np.ndarray:
        """A permutation of the phase vector's entries: Subplex optimizes z[perm]. Identity except in the
        neuron phase with ``"output-first"``: log eta of the hidden layers from the last to the first,
        then their V0 likewise (each layer's own entries stay in ascending order)."""
        if self.granularity != "neuron" or neuron_order == "input-first":
            return np.arange(self.dimension)
        per_layer = [np.unique(g) for g in self.groups][::-1]
        return np.concatenate([half + idx for half in (0, self.k) for idx in per_layer])

    def initial_step(self) -> np.ndarray:
        _, upper = self.bounds()
        return np.concatenate([np.full(self.k, LOG_ETA_STEP), V0_STEP * upper[self.k:]])


def apply_state(base: Bundle, state: FullState, hidden: list[HiddenLayer] | None = None) -> Bundle:
    """A copy of ``base`` with every hidden layer scaled by exp(log_eta) (isolated) and its V0 set.

    ``base`` is never modified, so the scalings of successive evaluations never accumulate.
    """
    hidden = hidden if hidden is not None else hidden_layers(base)
    out = copy.copy(base)
    out.layers = [copy.copy(layer) for layer in base.layers]  # arrays are replaced, never written in place
    for h, log_eta, v0 in zip(hidden, state.log_eta, state.v0):
        eta = np.exp(np.asarray(log_eta, np.float64))
        scale_layer(out.layers, h.index, eta[0] if h.layer_level else eta, tuple(base.input.shape))
        out.layers[h.index].v0 = np.asarray(v0, np.float32)
    return out

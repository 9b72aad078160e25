"""The SNN model bundle: the one artifact passed from the offline toolkit to the node and exporters."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from . import kinds
from .layers import Layer, NeuronConfig, chain_shapes

SCHEMA_VERSION = 2  # the newest version written and read
# Version 1: a plain chain of weighted layers and flatten. Version 2 adds zero_pad2d, max_pool2d and
# residual inputs (skip). A bundle is written with the oldest version that holds all its kinds and
# fields (``since`` in kinds.py), so older readers keep loading it, while they refuse (rather than
# misread) one that uses something newer.
FORMAT_NAME = "anytime-snn-bundle"


@dataclass(frozen=True)
class InputSpec:
    """What the network expects as input.

    Images are first mapped to [0, 1] intensities (uint8 / 255, uint16 / 65535, float as is), converted
    to ``color`` (mono: 1 channel, rgb: 3) and resized to ``shape``; the network input is then ``(x - mean) / std``, which should
    lie in ``value_range``. Input is injected as a constant analog current every timestep.
    """

    shape: tuple[int, ...]
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: float = 0.0
    std: float = 1.0
    color: Literal["mono", "rgb", "raw"] = "mono"  # raw: any channel count, not fed from camera images
    encoding: Literal["analog"] = "analog"


@dataclass
class Calibration:
    """Per-timestep inverse temperatures: scores at step t are softmax(v_out * inv_temperature[t-1]).

    Steps past the end use the last value. Without a calibration the readout uses 1/t (the mean
    output current), which is a reasonable, uncalibrated default.
    """

    inv_temperature: np.ndarray


@dataclass
class Bundle:
    input: InputSpec
    layers: list[Layer]
    labels: list[str]
    timesteps: int = 50
    calibration: Calibration | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def weighted_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.weighted]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def schema_version(self) -> int:
        """The oldest schema that can represent this bundle (what :func:`save_bundle` writes)."""
        return max((kinds.schema_version(layer) for layer in self.layers), default=1)

    def shapes(self) -> list[tuple[int, ...]]:
        return chain_shapes(self.input.shape, self.layers)

    def with_neuron(self, neuron: NeuronConfig) -> "Bundle":
        """A copy whose hidden (spiking) layers use ``neuron``; the output layer keeps accumulating.

        ``delay_steps`` also applies to the output layer, since it delays synaptic transmission.
        """
        out = copy.deepcopy(self)
        for layer in out.weighted_layers:
            layer.neuron = neuron if not layer.output else replace(NeuronConfig(), delay_steps=neuron.delay_steps)
        return out

    def with_v0(self, value: float) -> "Bundle":
        """A copy with every hidden layer's initial potential set to ``value`` (0.5 = high entropy)."""
        out = copy.deepcopy(self)
        for layer in out.weighted_layers:
            if not layer.output:
                layer.v0 = np.asarray(value, np.float32)
        return out

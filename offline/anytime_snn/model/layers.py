"""Layers of an SNN bundle: the layer record, the chain's shapes and residual inputs. What each kind
stores and how it computes its shape is data in kinds.py; this says what the kinds mean.

A bundle is a chain of layers: each layer's main input is the output of the layer before it (the
network input for the first). Weighted layers (dense, conv2d, depthwise_conv2d) are populations of
NL-IAF neurons (paper eq. 1-3); the last weighted layer is the accumulate-only output. Shape layers
have no neurons:

* ``flatten`` reshapes (C order, channels last);
* ``zero_pad2d`` pads (H, W, C) with ``pad`` = ((top, bottom), (left, right)) zeros (padded
  positions never spike);
* ``max_pool2d`` is the spiking max pool (``pool_size``, ``strides``, ``padding``): a pooling unit
  emits a spike at step t iff the largest spike count in its window (counted from the start of the
  frame up to and including step t) grows at t, so its spike count always equals the largest count
  in its window (docs/simulators.md).

A weighted layer may also have a residual input (``skip``): the output of an *earlier* layer,
named, with the same shape as this layer's output, added to its synaptic input through per-channel
weights ``skip_weights`` (identity = ones). That makes the bundle a DAG (never cyclic: the source
is earlier in the list). Shapes are channels-last, as in Keras, without the batch dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .kinds import (KINDS, RESERVED_KINDS, SHAPE_KINDS, WEIGHTED_KINDS, conv_output_size, output_shape,
                    same_padding)
from .neuron import NeuronConfig, ResetMode

__all__ = ["KINDS", "RESERVED_KINDS", "SHAPE_KINDS", "WEIGHTED_KINDS", "Layer", "NeuronConfig", "Padding", "ResetMode",
           "chain_shapes", "conv_output_size", "output_shape", "same_padding", "skip_index", "skip_vector",
           "spiking_origin"]

Padding = Literal["same", "valid"]


@dataclass
class Layer:
    """One layer. Tensors are float32 NumPy arrays; ``v0`` broadcasts to the output shape."""

    name: str
    kind: str
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    strides: tuple[int, int] = (1, 1)
    padding: Padding = "valid"
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    v0: np.ndarray = field(default_factory=lambda: np.zeros((), np.float32))
    output: bool = False
    pool_size: tuple[int, int] = (2, 2)  # max_pool2d (its strides and padding are the fields above)
    pad: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))  # zero_pad2d: ((top, bottom), (left, right))
    skip: str | None = None  # weighted layers: name of an earlier layer whose output is added (residual)
    skip_weights: np.ndarray | None = None  # (C,) per-channel weight of the residual input

    @property
    def weighted(self) -> bool:
        return self.kind in WEIGHTED_KINDS


def chain_shapes(input_shape: tuple[int, ...], layers: list[Layer]) -> list[tuple[int, ...]]:
    """Output shape of every layer in order."""
    shapes, shape = [], tuple(input_shape)
    for layer in layers:
        shape = output_shape(layer, shape)
        shapes.append(shape)
    return shapes


def skip_index(layers: list[Layer], index: int) -> int | None:
    """Position of layer ``index``'s residual source (None without one). Raises ValueError if the name
    is unknown or not earlier in the list (a later or own name would make a cycle)."""
    name = layers[index].skip
    if name is None:
        return None
    for j in range(index):
        if layers[j].name == name:
            return j
    raise ValueError(f"skip source {name!r} is not an earlier layer (unknown name, or a cycle)")


def spiking_origin(layers: list[Layer], index: int) -> int | None:
    """The weighted layer whose spikes layer ``index``'s output carries (through shape layers), or None
    when it carries the analog network input (layers before the first weighted one)."""
    for j in range(index, -1, -1):
        if layers[j].weighted:
            return j
    return None


def skip_vector(layer: Layer, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """The residual weight of every neuron (flat, C order), or None without a residual input."""
    if layer.skip is None:
        return None
    return np.broadcast_to(np.asarray(layer.skip_weights), out_shape).ravel()

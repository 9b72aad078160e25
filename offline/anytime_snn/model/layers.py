"""Layers of an SNN bundle: kinds, neuron parameters and shape arithmetic.

A bundle is a chain of layers. Weighted layers (dense, conv2d, depthwise_conv2d) are populations of
NL-IAF neurons (paper eq. 1-3); the last weighted layer is the accumulate-only output. ``flatten``
only reshapes. Shapes are channels-last, as in Keras, without the batch dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

WEIGHTED_KINDS = ("dense", "conv2d", "depthwise_conv2d")
SHAPE_KINDS = ("flatten",)
# Known to the schema but not yet simulated; loading such a bundle fails with a clear message.
RESERVED_KINDS = ("max_pool2d", "add")
KINDS = WEIGHTED_KINDS + SHAPE_KINDS + RESERVED_KINDS

ResetMode = Literal["subtract", "zero"]
Padding = Literal["same", "valid"]


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

    @property
    def weighted(self) -> bool:
        return self.kind in WEIGHTED_KINDS


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of a convolution along one axis, as TensorFlow computes it."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after): the odd extra pixel goes after (bottom/right)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def output_shape(layer: Layer, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the layer's output for an input of ``in_shape`` (no batch). Raises ValueError."""
    kind = layer.kind
    if kind == "flatten":
        return (int(np.prod(in_shape)),)
    if kind == "dense":
        if len(in_shape) != 1:
            raise ValueError(f"dense layer needs a 1-D input, got shape {in_shape}; add a flatten layer")
        w = layer.weights
        if w.ndim != 2 or w.shape[0] != in_shape[0]:
            raise ValueError(f"weights shape {w.shape} does not take an input of {in_shape[0]}")
        return (w.shape[1],)
    if kind in ("conv2d", "depthwise_conv2d"):
        if len(in_shape) != 3:
            raise ValueError(f"{kind} needs an (H, W, C) input, got shape {in_shape}")
        w = layer.weights
        if w.ndim != 4:
            raise ValueError(f"kernel must be 4-D (kh, kw, c_in, c_out), got shape {w.shape}")
        kh, kw, cin, cout = w.shape
        if cin != in_shape[2]:
            raise ValueError(f"kernel expects {cin} input channels, input has {in_shape[2]}")
        if kind == "depthwise_conv2d" and cout != 1:
            raise ValueError(f"depthwise kernel must have depth multiplier 1, got shape {w.shape}")
        sh, sw = layer.strides
        ho = conv_output_size(in_shape[0], kh, sh, layer.padding)
        wo = conv_output_size(in_shape[1], kw, sw, layer.padding)
        if ho < 1 or wo < 1:
            raise ValueError(f"kernel {kh}x{kw} does not fit input {in_shape[:2]} with {layer.padding!r} padding")
        return (ho, wo, cin if kind == "depthwise_conv2d" else cout)
    raise ValueError(f"layer kind {kind!r} is not simulated yet (known: {', '.join(WEIGHTED_KINDS + SHAPE_KINDS)})")


def chain_shapes(input_shape: tuple[int, ...], layers: list[Layer]) -> list[tuple[int, ...]]:
    """Output shape of every layer in order."""
    shapes, shape = [], tuple(input_shape)
    for layer in layers:
        shape = output_shape(layer, shape)
        shapes.append(shape)
    return shapes

"""Layers of an SNN bundle: kinds, neuron parameters and shape arithmetic.

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

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

WEIGHTED_KINDS = ("dense", "conv2d", "depthwise_conv2d")
SHAPE_KINDS = ("flatten", "zero_pad2d", "max_pool2d")
# Known to the schema but not simulated; loading such a bundle fails with a clear message. (Residual
# joins are weighted layers with a ``skip`` input, not a layer of their own.)
RESERVED_KINDS = ("add",)
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
    pool_size: tuple[int, int] = (2, 2)  # max_pool2d (its strides and padding are the fields above)
    pad: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))  # zero_pad2d: ((top, bottom), (left, right))
    skip: str | None = None  # weighted layers: name of an earlier layer whose output is added (residual)
    skip_weights: np.ndarray | None = None  # (C,) per-channel weight of the residual input

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
    if kind == "zero_pad2d":
        if len(in_shape) != 3:
            raise ValueError(f"zero_pad2d needs an (H, W, C) input, got shape {in_shape}")
        (t, b), (l, r) = layer.pad
        return (in_shape[0] + t + b, in_shape[1] + l + r, in_shape[2])
    if kind == "max_pool2d":
        if len(in_shape) != 3:
            raise ValueError(f"max_pool2d needs an (H, W, C) input, got shape {in_shape}")
        (ph, pw), (sh, sw) = layer.pool_size, layer.strides
        ho = conv_output_size(in_shape[0], ph, sh, layer.padding)
        wo = conv_output_size(in_shape[1], pw, sw, layer.padding)
        if ho < 1 or wo < 1:
            raise ValueError(f"pool {ph}x{pw} does not fit input {in_shape[:2]} with {layer.padding!r} padding")
        return (ho, wo, in_shape[2])
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

"""Random bundles for tests and benchmarks.

``random_bundle`` draws *dyadic* values (multiples of 1/16) for weights, biases, inputs and V0: every
sum the simulators form is then exact in float32 whatever the summation order (GEMM, event-driven
row sums, convolution), so all engines must agree bit for bit, and any disagreement is a real bug in
the dynamics rather than rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import Bundle, InputSpec, Layer, NeuronConfig, output_shape

Q = 16.0  # dyadic grid: values are integers / Q


@dataclass(frozen=True)
class NetSpec:
    """What to draw: a conv stack (possibly empty) then dense layers, and the neuron dynamics.

    ``convs`` entries are (kind, k, c_out, stride, padding) with kind one of ``conv2d``,
    ``depthwise_conv2d``, ``max_pool2d`` (k x k pool; c_out unused), ``zero_pad2d`` (pad
    ((k, stride), (stride, k)); the rest unused) and ``residual`` (a k x k 'same' conv2d keeping the
    channel count whose residual input is the latest earlier spiking layer of the same shape, other
    than its own input where possible).
    """

    input_shape: tuple[int, ...] = (8, 8, 2)
    convs: tuple[tuple[str, int, int, int, str], ...] = (("conv2d", 3, 4, 1, "same"),)  # kind, k, c_out, stride, pad
    dense: tuple[int, ...] = (12,)
    classes: int = 5
    neuron: NeuronConfig = NeuronConfig()
    v0_mode: str = "neuron"  # "scalar" | "channel" | "neuron"
    zero_fraction: float = 0.3


def _dyadic(rng: np.random.Generator, shape, low: int, high: int, zero_fraction: float = 0.0) -> np.ndarray:
    a = rng.integers(low, high + 1, size=shape).astype(np.float32) / Q
    if zero_fraction:
        a[rng.random(shape) < zero_fraction] = 0
    return a


def _v0(rng, mode: str, shape) -> np.ndarray:
    if mode == "scalar":
        return np.asarray(rng.integers(0, 16) / Q, np.float32)
    if mode == "channel":
        return _dyadic(rng, (shape[-1],), 0, 15)
    return _dyadic(rng, shape, 0, 15)


def random_bundle(spec: NetSpec, seed: int) -> Bundle:
    rng = np.random.default_rng(seed)
    shape, layers = tuple(spec.input_shape), []
    shapes: list[tuple[int, ...]] = []  # output shape of every layer so far

    def add(layer: Layer, spiking: bool = True):
        nonlocal shape
        out = output_shape(layer, shape)
        shapes.append(out)
        if layer.weighted:
            layer.bias = _dyadic(rng, (out[-1],), -2, 4)
            layer.v0 = _v0(rng, spec.v0_mode, out)
            if spiking:
                layer.neuron = spec.neuron
            else:
                layer.neuron = NeuronConfig(delay_steps=spec.neuron.delay_steps)
                layer.output = True
        layers.append(layer)
        shape = out

    for i, (kind, k, cout, stride, pad) in enumerate(spec.convs):
        cin = shape[2]
        if kind == "zero_pad2d":
            add(Layer(name=f"pad_{i}", kind=kind, pad=((k, stride), (stride, k))))
            continue
        if kind == "max_pool2d":
            if not any(layer.weighted for layer in layers):
                raise ValueError("a max pool needs a spiking layer before it")
            add(Layer(name=f"pool_{i}", kind=kind, pool_size=(k, k), strides=(stride, stride), padding=pad))
            continue
        if kind == "residual":
            first = next((j for j, layer in enumerate(layers) if layer.weighted), None)
            same = [j for j in range(len(layers)) if first is not None and j >= first and shapes[j] == shape]
            if not same:
                raise ValueError("no earlier spiking layer has the shape of this residual block")
            src = ([j for j in same if j < len(layers) - 1] or same)[-1]
            add(Layer(name=f"residual_{i}", kind="conv2d", weights=_dyadic(rng, (k, k, cin, cin), -3, 6, spec.zero_fraction),
                      padding="same", skip=layers[src].name, skip_weights=_dyadic(rng, (cin,), -4, 12, spec.zero_fraction)))
            continue
        kshape = (k, k, cin, cout) if kind == "conv2d" else (k, k, cin, 1)
        add(Layer(name=f"{kind}_{i}", kind=kind, weights=_dyadic(rng, kshape, -3, 6, spec.zero_fraction),
                  strides=(stride, stride), padding=pad))
    if len(shape) == 3:
        add(Layer(name="flatten", kind="flatten"))
    sizes = list(spec.dense) + [spec.classes]
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        add(Layer(name=f"dense_{i}", kind="dense", weights=_dyadic(rng, (shape[0], n), -4, 6, spec.zero_fraction)),
            spiking=not last)
    channels = 1 if len(spec.input_shape) == 1 else spec.input_shape[2]
    color = {1: "mono", 3: "rgb"}.get(channels, "raw")
    return Bundle(input=InputSpec(shape=tuple(spec.input_shape), color=color),
                  layers=layers, labels=[f"class_{i}" for i in range(spec.classes)], timesteps=20)


def random_inputs(spec: NetSpec, batch: int, seed: int) -> np.ndarray:
    return _dyadic(np.random.default_rng(seed + 10_000), (batch, *spec.input_shape), 0, 16, 0.2)


def dense_bundle(sizes=(784, 1200, 1200, 10), seed: int = 0, rate_scale: float = 1.0) -> Bundle:
    """A random dense network with Gaussian weights (for benchmarks; not dyadic)."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        w = (rng.standard_normal((a, b)) * rate_scale * 2.0 / np.sqrt(a)).astype(np.float32)
        layers.append(Layer(name=f"dense_{i}", kind="dense", weights=w, bias=np.zeros(b, np.float32),
                            v0=np.asarray(0.5 if not last else 0.0, np.float32), output=last))
    return Bundle(input=InputSpec(shape=(sizes[0],)), layers=layers, labels=[str(i) for i in range(sizes[-1])])

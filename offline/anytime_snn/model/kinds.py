"""Layer kinds as data: one :class:`KindSpec` per kind gives its manifest fields, its tensors, the schema
version that introduced it, its output shape and its synaptic fan-out.

Saving, loading and validating bundles (io.py, validate.py), the schema version a bundle is written with
and the shape arithmetic (:func:`output_shape`) all read :data:`SPECS`; a new kind is an entry here plus
its synaptic map in the engines (docs/simulators.md, "Adding a layer kind"). Layers are duck-typed
:class:`~anytime_snn.model.layers.Layer` records (this module does not import them, so no cycle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .neuron import RESETS, NeuronConfig
from .schema import Fields

Shape = tuple[int, ...]
PADDINGS = ("same", "valid")
MAX_STRIDE = 64
MAX_PAD = 1024


# ----------------------------------------------------------------------------- geometry


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


# ----------------------------------------------------------------------------- field types


@dataclass(frozen=True)
class FieldType:
    """How a layer attribute is read from the manifest (a BundleError names the field), written back as
    JSON, and checked in memory: ``check`` returns None or (sub-field suffix, message)."""

    read: Callable[[Fields, str], Any]
    write: Callable[[Any], Any]
    check: Callable[[Any], tuple[str, str] | None]


def _pair(lo: int, hi: int) -> FieldType:
    def check(v):
        if len(v) != 2 or not all(isinstance(s, (int, np.integer)) and lo <= s <= hi for s in v):
            return "", f"must be two integers in [{lo}, {hi}], got {v}"
        return None

    return FieldType(lambda f, key: tuple(f.get_list(key, int)), lambda v: [int(s) for s in v], check)


def _choice(values: tuple[str, ...]) -> FieldType:
    def check(v):
        return None if v in values else ("", f"must be {' or '.join(map(repr, values))}, got {v!r}")

    return FieldType(lambda f, key: f.get_choice(key, values), str, check)


def _read_pad(f: Fields, key: str):
    rows = f.get_list(key, list)
    pad = tuple(tuple(f.child(f"{f.name(key)}[{k}]", {"v": r}).get_list("v", int)) for k, r in enumerate(rows))
    if len(pad) != 2 or any(len(p) != 2 for p in pad):
        f.fail("must be [[top, bottom], [left, right]]", key)
    return pad


def _check_pad(pad):
    if (len(pad) != 2 or any(len(p) != 2 for p in pad)
            or not all(isinstance(v, (int, np.integer)) and 0 <= v <= MAX_PAD for p in pad for v in p)):
        return "", f"must be ((top, bottom), (left, right)) integers in [0, {MAX_PAD}], got {pad}"
    return None


def _read_neuron(f: Fields, key: str) -> NeuronConfig:
    nf = f.sub(key, dict)
    return NeuronConfig(threshold=float(nf.get("threshold", (int, float))), reset=nf.get_choice("reset", RESETS),
                        refractory_steps=nf.get("refractory_steps", int), delay_steps=nf.get("delay_steps", int))


def _write_neuron(n: NeuronConfig) -> dict:
    return {"threshold": float(n.threshold), "reset": n.reset, "refractory_steps": int(n.refractory_steps),
            "delay_steps": int(n.delay_steps)}


def _check_neuron(n: NeuronConfig):
    if not (math.isfinite(n.threshold) and n.threshold > 0):
        return ".threshold", f"must be finite and positive, got {n.threshold}"
    problem = _choice(RESETS).check(n.reset)
    if problem:
        return ".reset", problem[1]
    for key in ("refractory_steps", "delay_steps"):
        v = getattr(n, key)
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= v <= 1000:
            return f".{key}", f"must be an integer in [0, 1000], got {v!r}"
    return None


STRIDES = _pair(1, MAX_STRIDE)
PADDING = _choice(PADDINGS)
PAD = FieldType(_read_pad, lambda pad: [[int(v) for v in p] for p in pad], _check_pad)
NEURON = FieldType(_read_neuron, _write_neuron, _check_neuron)
FLAG = FieldType(lambda f, key: f.get(key, bool), bool, lambda v: None)
NAME = FieldType(lambda f, key: f.get(key, str), str,
                 lambda v: None if isinstance(v, str) else ("", f"must be a layer name, got {v!r}"))


@dataclass(frozen=True)
class FieldSpec:
    """A manifest field, stored under the same name as the Layer attribute."""

    name: str
    type: FieldType
    optional: bool = False  # absent (None) unless given; written only when set
    since: int = 1  # the schema version that introduced it


@dataclass(frozen=True)
class TensorSpec:
    """A float32 tensor of the layer, stored in the tensor file as ``<layer name>/<name>``."""

    name: str
    shapes: Callable[[Shape], tuple[Shape, ...]] | None = None  # allowed shapes given the output shape
    given_with: str | None = None  # present exactly when this optional field is set


# ----------------------------------------------------------------------------- shapes and fan-out


def _hwc(kind: str, in_shape: Shape) -> None:
    if len(in_shape) != 3:
        raise ValueError(f"{kind} needs an (H, W, C) input, got shape {in_shape}")


def _window_out(in_shape: Shape, window: tuple[int, int], strides, padding: str, what: str) -> tuple[int, int]:
    (kh, kw), (sh, sw) = window, strides
    ho, wo = conv_output_size(in_shape[0], kh, sh, padding), conv_output_size(in_shape[1], kw, sw, padding)
    if ho < 1 or wo < 1:
        raise ValueError(f"{what} {kh}x{kw} does not fit input {in_shape[:2]} with {padding!r} padding")
    return ho, wo


def _flatten_shape(layer, in_shape: Shape) -> Shape:
    return (int(np.prod(in_shape)),)


def _zero_pad_shape(layer, in_shape: Shape) -> Shape:
    _hwc(layer.kind, in_shape)
    (t, b), (l, r) = layer.pad
    return (in_shape[0] + t + b, in_shape[1] + l + r, in_shape[2])


def _max_pool_shape(layer, in_shape: Shape) -> Shape:
    _hwc(layer.kind, in_shape)
    return (*_window_out(in_shape, layer.pool_size, layer.strides, layer.padding, "pool"), in_shape[2])


def _dense_shape(layer, in_shape: Shape) -> Shape:
    if len(in_shape) != 1:
        raise ValueError(f"dense layer needs a 1-D input, got shape {in_shape}; add a flatten layer")
    w = layer.weights
    if w.ndim != 2 or w.shape[0] != in_shape[0]:
        raise ValueError(f"weights shape {w.shape} does not take an input of {in_shape[0]}")
    return (w.shape[1],)


def _kernel_shape(layer, in_shape: Shape, depthwise: bool = False) -> Shape:
    _hwc(layer.kind, in_shape)
    w = layer.weights
    if w.ndim != 4:
        raise ValueError(f"kernel must be 4-D (kh, kw, c_in, c_out), got shape {w.shape}")
    kh, kw, cin, cout = w.shape
    if cin != in_shape[2]:
        raise ValueError(f"kernel expects {cin} input channels, input has {in_shape[2]}")
    if depthwise and cout != 1:
        raise ValueError(f"depthwise kernel must have depth multiplier 1, got shape {w.shape}")
    return _window_out(in_shape, (kh, kw), layer.strides, layer.padding, "kernel") + (cin if depthwise else cout,)


def _conv_shape(layer, in_shape: Shape) -> Shape:
    return _kernel_shape(layer, in_shape)


def _depthwise_shape(layer, in_shape: Shape) -> Shape:
    return _kernel_shape(layer, in_shape, depthwise=True)


def _dense_fanout(layer, in_shape: Shape) -> np.ndarray:
    return np.count_nonzero(layer.weights, axis=1).astype(np.int64).reshape(in_shape)


def _kernel_fanout(layer, in_shape: Shape, per_offset: np.ndarray) -> np.ndarray:
    """The transposed convolution of an all-ones output with ``per_offset`` (kh, kw, C): synapses out of
    each input position, which depends on borders, stride and padding."""
    h, wd, c = in_shape
    kh, kw = per_offset.shape[:2]
    sh, sw = layer.strides
    if layer.padding == "same":
        (pt, pb), (pl, pr) = same_padding(h, kh, sh), same_padding(wd, kw, sw)
    else:
        pt = pb = pl = pr = 0
    hp, wp = h + pt + pb, wd + pl + pr
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    acc = np.zeros((hp, wp, c), np.int64)
    for a in range(kh):
        for b in range(kw):
            acc[a:a + sh * (ho - 1) + 1:sh, b:b + sw * (wo - 1) + 1:sw, :] += per_offset[a, b]
    return acc[pt:pt + h, pl:pl + wd, :]


def _conv_fanout(layer, in_shape: Shape) -> np.ndarray:
    return _kernel_fanout(layer, in_shape, np.count_nonzero(layer.weights, axis=3))


def _depthwise_fanout(layer, in_shape: Shape) -> np.ndarray:
    return _kernel_fanout(layer, in_shape, (layer.weights[..., 0] != 0).astype(np.int64))


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class KindSpec:
    """Everything the model format and the shape arithmetic know about one layer kind."""

    name: str
    fields: tuple[FieldSpec, ...] = ()
    tensors: tuple[TensorSpec, ...] = ()
    since: int = 1  # the schema version that introduced the kind
    # (layer, input shape) -> output shape; ValueError when the input does not fit. None: reserved kind
    # (known to the schema, not simulated; loading it fails with a clear message).
    shape: Callable[[Any, Shape], Shape] | None = None
    # (layer, input shape) -> int64 array of the input shape: non-zero synapses out of each input neuron
    # into this layer, i.e. events per input spike. None: no synapses (a shape layer).
    fanout: Callable[[Any, Shape], np.ndarray] | None = None
    weighted: bool = False  # a population of NL-IAF neurons with weights, bias and v0
    needs_spikes: bool = False  # refused before the first weighted layer (it cannot act on analog input)

    @property
    def reserved(self) -> bool:
        return self.shape is None

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def present_tensors(self, layer) -> tuple[TensorSpec, ...]:
        """The tensors this layer has (optional ones only with their field set)."""
        return tuple(t for t in self.tensors if t.given_with is None or getattr(layer, t.given_with) is not None)


WEIGHTED_FIELDS = (
    FieldSpec("skip", NAME, optional=True, since=2),  # residual input: name of an earlier layer
    FieldSpec("strides", STRIDES),
    FieldSpec("padding", PADDING),
    FieldSpec("output", FLAG),
    FieldSpec("neuron", NEURON),
)
WEIGHTED_TENSORS = (
    TensorSpec("weights"),  # checked by the kind's shape function
    TensorSpec("bias", lambda out: ((out[-1],),)),
    TensorSpec("v0", lambda out: ((), (out[-1],), out)),
    TensorSpec("skip_weights", lambda out: ((out[-1],),), given_with="skip"),
)

SPECS: dict[str, KindSpec] = {spec.name: spec for spec in (
    KindSpec("dense", WEIGHTED_FIELDS, WEIGHTED_TENSORS, shape=_dense_shape, fanout=_dense_fanout, weighted=True),
    KindSpec("conv2d", WEIGHTED_FIELDS, WEIGHTED_TENSORS, shape=_conv_shape, fanout=_conv_fanout, weighted=True),
    KindSpec("depthwise_conv2d", WEIGHTED_FIELDS, WEIGHTED_TENSORS, shape=_depthwise_shape,
             fanout=_depthwise_fanout, weighted=True),
    KindSpec("flatten", shape=_flatten_shape),
    KindSpec("zero_pad2d", (FieldSpec("pad", PAD),), since=2, shape=_zero_pad_shape),
    KindSpec("max_pool2d", (FieldSpec("pool_size", STRIDES), FieldSpec("strides", STRIDES),
                            FieldSpec("padding", PADDING)), since=2, shape=_max_pool_shape, needs_spikes=True),
    KindSpec("add"),  # residual joins are weighted layers with a ``skip`` input, not a layer of their own
)}

KINDS = tuple(SPECS)
WEIGHTED_KINDS = tuple(k for k, s in SPECS.items() if s.weighted)
SHAPE_KINDS = tuple(k for k, s in SPECS.items() if not s.weighted and not s.reserved)
RESERVED_KINDS = tuple(k for k, s in SPECS.items() if s.reserved)


def output_shape(layer, in_shape: Shape) -> Shape:
    """Shape of the layer's output for an input of ``in_shape`` (no batch). Raises ValueError."""
    spec = SPECS.get(layer.kind)
    if spec is None or spec.reserved:
        known = ", ".join(WEIGHTED_KINDS + SHAPE_KINDS)
        raise ValueError(f"layer kind {layer.kind!r} is not simulated yet (known: {known})")
    return spec.shape(layer, tuple(in_shape))


def fanout(layer, in_shape: Shape) -> np.ndarray:
    """Non-zero synapses out of every neuron of ``layer``'s input into it (int64, ``in_shape``)."""
    spec = SPECS.get(layer.kind)
    if spec is None or spec.fanout is None:
        raise ValueError(f"layer kind {layer.kind!r} has no synapses")
    return spec.fanout(layer, tuple(in_shape))


def schema_version(layer) -> int:
    """The oldest schema that can represent ``layer``: its kind's, or that of an optional field it sets."""
    spec = SPECS.get(layer.kind)
    if spec is None:
        return 1
    return max([spec.since] + [f.since for f in spec.fields if f.optional and getattr(layer, f.name) is not None])

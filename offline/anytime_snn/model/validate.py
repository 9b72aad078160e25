"""Validation of an in-memory bundle (before saving and after loading): every problem is a BundleError
naming the field. Per-kind fields and tensors are checked as the kind table (kinds.py) describes them."""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import BundleError
from .bundle import Bundle
from .kinds import SPECS
from .layers import output_shape, skip_index, spiking_origin

MAX_NEURONS = 50_000_000
MAX_STEPS = 1_000_000


def validate_bundle(bundle: Bundle, path: str | None = None) -> None:
    """Check that the bundle is complete and consistent; raise BundleError naming the field."""

    def fail(message: str, field: str):
        raise BundleError(message, path=path, field=field)

    shape = tuple(bundle.input.shape)
    if len(shape) not in (1, 3) or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        fail(f"must be (N,) or (H, W, C) with positive sizes, got {shape}", "input.shape")
    if math.prod(shape) > MAX_NEURONS:
        fail(f"input of {math.prod(shape)} values is too large", "input.shape")
    lo, hi = bundle.input.value_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        fail(f"must be finite with low < high, got {(lo, hi)}", "input.value_range")
    if not (math.isfinite(bundle.input.mean) and math.isfinite(bundle.input.std) and bundle.input.std > 0):
        fail("mean must be finite and std finite and positive", "input.std")
    if bundle.input.color == "rgb" and (len(shape) != 3 or shape[2] != 3):
        fail(f"rgb input needs shape (H, W, 3), got {shape}", "input.color")
    if bundle.input.color == "mono" and len(shape) == 3 and shape[2] != 1:
        fail(f"mono input needs 1 channel, got {shape}", "input.color")
    if not isinstance(bundle.timesteps, int) or not 1 <= bundle.timesteps <= MAX_STEPS:
        fail(f"must be an integer in [1, {MAX_STEPS}], got {bundle.timesteps!r}", "timesteps")
    if not bundle.layers:
        fail("a bundle needs at least one layer", "layers")

    names = set()
    total = 0
    shapes: list[tuple[int, ...]] = []
    for i, layer in enumerate(bundle.layers):
        field = f"layers[{i}]"
        if not isinstance(layer.name, str) or not layer.name or "/" in layer.name or layer.name in names:
            fail(f"layer names must be unique non-empty strings without '/', got {layer.name!r}", f"{field}.name")
        names.add(layer.name)
        spec = SPECS.get(layer.kind) if isinstance(layer.kind, str) else None
        if spec is None or spec.reserved:
            fail(f"unsupported layer kind {layer.kind!r}", f"{field}.kind")
        tensors = spec.present_tensors(layer)
        for t in tensors:
            arr = getattr(layer, t.name)
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
                fail("must be a float32 array", f"{field}.{t.name}")
            if not np.all(np.isfinite(arr)):
                fail("contains NaN or infinite values", f"{field}.{t.name}")
        for f in spec.fields:
            value = getattr(layer, f.name)
            problem = None if (f.optional and value is None) else f.type.check(value)
            if problem:
                fail(problem[1], f"{field}.{f.name}{problem[0]}")
        if not any(t.name == "weights" for t in spec.tensors) and not (layer.weights is None and layer.bias is None):
            fail(f"a {layer.kind} layer has no weights", f"{field}.weights")
        if layer.skip is not None and spec.field("skip") is None:
            fail(f"only weighted layers can have a residual input, not {layer.kind}", f"{field}.skip")
        if spec.needs_spikes and spiking_origin(bundle.layers, i) is None:
            fail(f"{layer.kind} needs spikes as input: it cannot come before the first weighted layer", f"{field}.kind")
        try:
            shape = output_shape(layer, shape)
        except ValueError as e:
            fail(str(e), f"{field}.weights" if layer.weighted else f"{field}.kind")
        shapes.append(shape)
        if layer.skip is not None:
            _check_skip(bundle, i, shapes, fail)
        total += math.prod(shape)
        if total > MAX_NEURONS:
            fail("the network has too many neurons", f"{field}")
        for t in tensors:
            allowed = t.shapes(shape) if t.shapes else None
            got = getattr(layer, t.name).shape
            if allowed is not None and got not in allowed:
                fail(f"{t.name} shape must be {' or '.join(map(str, allowed))}, got {got}", f"{field}.{t.name}")
        if layer.output and i != len(bundle.layers) - 1:
            fail("only the last layer can be the output layer", f"{field}.output")
    last = bundle.layers[-1]
    if not (last.weighted and last.output):
        fail("the last layer must be a weighted layer marked as the accumulate-only output",
             f"layers[{len(bundle.layers) - 1}].output")
    if len(shape) != 1:
        fail(f"the output layer must produce a vector of class scores, got shape {shape}", "layers[-1]")
    labels = bundle.labels
    if not isinstance(labels, list) or len(labels) != shape[0] or not all(isinstance(s, str) for s in labels):
        got = len(labels) if isinstance(labels, list) else repr(labels)
        fail(f"need {shape[0]} string labels, one per output, got {got}", "labels")
    if bundle.calibration is not None:
        it = bundle.calibration.inv_temperature
        if not isinstance(it, np.ndarray) or it.ndim != 1 or it.size == 0 or it.size > MAX_STEPS:
            fail("must be a non-empty 1-D array", "calibration.inv_temperature")
        if not np.all(np.isfinite(it)) or np.any(it < 0):
            fail("must be finite and non-negative", "calibration.inv_temperature")
    try:
        json.dumps(bundle.provenance, allow_nan=False)
    except (TypeError, ValueError) as e:
        fail(f"must be JSON-serialisable without NaN: {e}", "provenance")


def _check_skip(bundle: Bundle, i: int, shapes: list[tuple[int, ...]], fail) -> None:
    """Layer ``i``'s residual source: an earlier layer (no cycle) that carries spikes, of this layer's shape."""
    layer, field = bundle.layers[i], f"layers[{i}].skip"
    try:
        j = skip_index(bundle.layers, i)
    except ValueError as e:
        fail(str(e), field)
    if spiking_origin(bundle.layers, j) is None:
        fail(f"skip source {layer.skip!r} carries the analog input, not spikes; a residual input must come "
             "from a spiking layer", field)
    if shapes[j] != shapes[i]:
        fail(f"skip source {layer.skip!r} has shape {shapes[j]}, this layer's output has shape {shapes[i]}", field)

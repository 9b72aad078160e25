"""Keras model -> normalized SNN :class:`~anytime_snn.model.Bundle`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..model import Bundle, InputSpec, validate_bundle
from ..model.layers import Layer
from .keras_graph import parse_keras
from .normalize import GRANULARITIES, activation_percentiles
from .scaling import apply_scales


@dataclass
class ConversionResult:
    bundle: Bundle
    scales: dict[str, list[float]] = field(default_factory=dict)  # layer name -> applied scale(s)
    notes: list[str] = field(default_factory=list)


def convert_model(model, calibration: np.ndarray | None = None, *, granularity: str = "layer",
                  percentile: float = 99.9, labels: list[str] | None = None, timesteps: int = 50,
                  v0: float | None = None, input_mean: float | None = None, input_std: float | None = None,
                  provenance: dict[str, Any] | None = None, max_values: int = 20_000_000) -> ConversionResult:
    """Convert a Keras ``model`` into a bundle.

    ``calibration``: pixel images in [0, 1], shape (N, *input_shape) (required unless ``granularity``
    is 'none'); they are preprocessed with the model's input mean/std before normalization.
    ``v0``: initial potential of the hidden layers (0.5 = high-entropy initialization, paper 5.3).
    """
    if granularity not in GRANULARITIES:
        raise ConfigError(f"normalization must be one of {list(GRANULARITIES)}, got {granularity!r}")
    parsed = parse_keras(model, input_mean=input_mean, input_std=input_std)
    layers = parsed.layers
    scales: dict[str, list[float]] = {}
    notes = list(parsed.notes)
    if granularity != "none":
        if calibration is None or len(calibration) == 0:
            raise ConfigError("data-based normalization needs calibration images (or use normalization 'none')")
        x = _network_input(calibration, parsed.input_shape, parsed.mean, parsed.std)
        p = activation_percentiles(layers, x, percentile=percentile, granularity=granularity, max_values=max_values)
        s = {i: 1.0 / np.maximum(v, 1e-12) for i, v in p.items()}
        apply_scales(layers, s, parsed.input_shape)
        scales = {layers[i].name: np.atleast_1d(v).astype(float).tolist() for i, v in s.items()}
        notes.append(f"{granularity}-wise normalization at the {percentile:g}th percentile of non-zero activations "
                     f"over {len(x)} calibration examples")
    out_channels = layers[-1].bias.shape[0]
    labels = list(labels) if labels is not None else [str(i) for i in range(out_channels)]
    if len(labels) != out_channels:
        raise ConfigError(f"the model has {out_channels} outputs but {len(labels)} labels were given")
    shape = parsed.input_shape
    color = "rgb" if len(shape) == 3 and shape[2] == 3 else "mono"
    if len(shape) == 3 and shape[2] not in (1, 3):
        raise ConfigError(f"input images must have 1 or 3 channels, got {shape}")
    lo, hi = (0.0 - parsed.mean) / parsed.std, (1.0 - parsed.mean) / parsed.std
    bundle = Bundle(
        input=InputSpec(shape=shape, value_range=(lo, hi), mean=parsed.mean, std=parsed.std, color=color),
        layers=[_float32(layer) for layer in layers],
        labels=labels,
        timesteps=int(timesteps),
        provenance=dict(provenance or {}),
    )
    bundle.provenance.setdefault("conversion", {})
    bundle.provenance["conversion"].update({
        "source_model": getattr(model, "name", None),
        "normalization": granularity,
        "percentile": percentile if granularity != "none" else None,
        "calibration_examples": 0 if calibration is None or granularity == "none" else int(len(calibration)),
        "notes": notes,
    })
    if v0 is not None:
        bundle = bundle.with_v0(v0)
        bundle.provenance["conversion"]["v0_hidden"] = float(v0)
    for layer in bundle.weighted_layers:
        # One value per channel: the same dynamics as a scalar, and it survives save_bundle, whose
        # np.ascontiguousarray turns a 0-d v0 into shape (1,).
        layer.v0 = np.ascontiguousarray(np.broadcast_to(layer.v0, layer.bias.shape), np.float32)
    validate_bundle(bundle)
    return ConversionResult(bundle=bundle, scales=scales, notes=notes)


def _network_input(images: np.ndarray, shape: tuple[int, ...], mean: float, std: float) -> np.ndarray:
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    x = x.reshape(len(x), *shape) if x.shape[1:] != shape and np.prod(x.shape[1:]) == np.prod(shape) else x
    if x.shape[1:] != shape:
        raise ConfigError(f"calibration images have shape {x.shape[1:]}, the model expects {shape}")
    return ((x.astype(np.float32) - mean) / std).astype(np.float32)


def network_input(bundle: Bundle, images: np.ndarray) -> np.ndarray:
    """Pixel images (uint8, or float in [0, 1]) -> the bundle's network input (x - mean) / std."""
    return _network_input(images, tuple(bundle.input.shape), bundle.input.mean, bundle.input.std)


def _float32(layer: Layer) -> Layer:
    if layer.weighted:
        layer.weights = np.ascontiguousarray(layer.weights, np.float32)
        layer.bias = np.ascontiguousarray(layer.bias, np.float32)
        if layer.skip is not None:
            layer.skip_weights = np.ascontiguousarray(layer.skip_weights, np.float32)
        layer.v0 = np.asarray(layer.v0, np.float32)
    return layer

"""The SNN model bundle: layers, neuron parameters, input spec, calibration; safe save/load."""

from .bundle import FORMAT_NAME, SCHEMA_VERSION, Bundle, Calibration, InputSpec
from .io import load_bundle, save_bundle, validate_bundle
from .layers import KINDS, WEIGHTED_KINDS, Layer, NeuronConfig, chain_shapes, output_shape, same_padding

__all__ = [
    "Bundle", "Calibration", "InputSpec", "Layer", "NeuronConfig", "KINDS", "WEIGHTED_KINDS",
    "FORMAT_NAME", "SCHEMA_VERSION", "chain_shapes", "output_shape", "same_padding",
    "load_bundle", "save_bundle", "validate_bundle",
]

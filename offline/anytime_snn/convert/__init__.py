"""ANN -> SNN conversion: Keras parsing with BN folding and avg-pool -> depthwise, data-based
normalization with the shared isolation routine, and assembly of the model bundle."""

from .convert import ConversionResult, convert_model, network_input
from .keras_graph import ParsedModel, fold_batchnorm, parse_keras
from .normalize import GRANULARITIES, activation_percentiles, ann_forward, normalize
from .scaling import apply_scales, scale_layer

__all__ = [
    "ConversionResult", "GRANULARITIES", "ParsedModel", "activation_percentiles", "ann_forward", "apply_scales",
    "convert_model", "fold_batchnorm", "network_input", "normalize", "parse_keras", "scale_layer",
]

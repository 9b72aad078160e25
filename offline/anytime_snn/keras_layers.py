"""How the toolkit reads a single-chain Keras model's layers: weighted, plain ReLU, channel-wise pass-through.

Shared by sparsity training (:mod:`anytime_snn.train`) and ANN measurement (:mod:`anytime_snn.evaluate.ann`);
layers are recognised by class name, so nothing here imports Keras.
"""

from __future__ import annotations

import numpy as np

WEIGHTED = ("Dense", "Conv2D", "DepthwiseConv2D")
PASS_THROUGH = ("Dropout", "AveragePooling2D", "GlobalAveragePooling2D", "Flatten", "SpatialDropout2D")


def layer_class(layer) -> str:
    return type(layer).__name__


def is_plain_relu(layer) -> bool:
    """A ``ReLU`` without cap, slope or threshold, or ``Activation('relu')``."""
    if layer_class(layer) == "ReLU":
        return (layer.max_value is None and float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0)
    if layer_class(layer) == "Activation":
        return getattr(layer.activation, "__name__", "") == "relu"
    return False


def pixels_per_channel(shape) -> int:
    """Product of the spatial dimensions of a (batch, ..., channels) shape (1 for (batch, units))."""
    return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1

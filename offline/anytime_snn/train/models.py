"""Keras 3 architectures built from :class:`ArchConfig`; all Sequential and conversion-friendly.

Every block is weighted layer (no bias: BatchNorm's beta plays that role and folding restores a
bias) -> BatchNormalization -> ReLU; pooling is average pooling; the classifier ends in Dense ->
Softmax. The first layer is a ``Rescaling`` that maps [0, 1] pixels to the network input
``(x - mean) / std``; the converter turns it into the bundle's input spec.
"""

from __future__ import annotations

from .config import ArchConfig


def _keras():
    import keras
    return keras


def build_model(arch: ArchConfig, input_shape: tuple[int, ...], num_classes: int, *, mean: float = 0.0,
                std: float = 1.0, name: str | None = None):
    keras = _keras()
    L = keras.layers
    layers = [keras.Input(shape=tuple(input_shape)), L.Rescaling(1.0 / std, offset=-mean / std, name="input_norm")]

    def block(weighted, tag):
        layers.extend([weighted, L.BatchNormalization(name=f"{tag}_bn"), L.ReLU(name=f"{tag}_relu")])

    if arch.kind == "dense":
        layers.append(L.Flatten(name="flatten"))
    elif arch.kind in ("conv", "cifar"):
        i = p = 0
        for f in arch.filters:
            if f == "pool":
                p += 1
                layers.append(L.AveragePooling2D(2, name=f"pool{p}"))
            else:
                i += 1
                block(L.Conv2D(f, arch.kernel_size, padding="same", use_bias=False, name=f"conv{i}"), f"conv{i}")
        layers.append(L.Flatten(name="flatten"))
    elif arch.kind == "mobilenet":
        block(L.Conv2D(arch.stem_filters, 3, strides=2 if input_shape[0] >= 32 else 1, padding="same",
                       use_bias=False, name="stem"), "stem")
        for i, (filters, stride) in enumerate(arch.blocks, 1):
            block(L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"dw{i}"), f"dw{i}")
            block(L.Conv2D(filters, 1, use_bias=False, name=f"pw{i}"), f"pw{i}")
        layers.append(_GlobalAverage(name="global_pool"))
        layers.append(L.Flatten(name="flatten"))
    for j, units in enumerate(arch.hidden, 1):
        block(L.Dense(units, use_bias=False, name=f"fc{j}"), f"fc{j}")
        if arch.dropout:
            layers.append(L.Dropout(arch.dropout, name=f"fc{j}_dropout"))
    layers.append(L.Dense(num_classes, name="logits"))
    layers.append(L.Softmax(name="softmax"))

    # Resolve a global average pool into an AveragePooling2D of the right size (the converter's form).
    model = keras.Sequential(layers[:1], name=name or f"{arch.kind}_net")
    for layer in layers[1:]:
        if isinstance(layer, _GlobalAverage):
            h, w = model.output_shape[1:3]
            layer = L.AveragePooling2D((h, w), name=layer.name_)
        model.add(layer)
    return model


class _GlobalAverage:
    def __init__(self, name: str):
        self.name_ = name

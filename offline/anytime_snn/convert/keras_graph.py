"""Keras model -> chain of bundle layers (before normalization).

Walks a Sequential model (or a functional model that is a single chain) and builds bundle layers:

* ``Dense`` / ``Conv2D`` / ``DepthwiseConv2D`` (depth multiplier 1) become weighted layers; a missing
  bias becomes zeros; a fused ``relu`` activation is accepted;
* ``BatchNormalization`` right after one of them is folded into its kernel and bias (exactly);
* ``ReLU`` / ``Activation('relu')`` mark the preceding weighted layer as rectified (spiking neurons
  only represent non-negative rates, so every hidden weighted layer must be rectified);
* ``AveragePooling2D`` and ``GlobalAveragePooling2D`` become depthwise convolutions with kernel
  1/area, so they can carry per-channel scales (paper 5.2);
* ``Flatten`` is kept; ``Dropout`` (and other inference-time identities) is dropped;
* a leading ``Rescaling`` becomes the bundle's input mean/std;
* the last weighted layer (linear or softmax) becomes the accumulate-only output layer.

Anything else raises :class:`ConfigError` naming the layer and what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..model.layers import Layer

_IDENTITY = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
             "GaussianNoise", "AlphaDropout", "ActivityRegularization", "InputLayer"}
_REPLACEMENTS = {
    "MaxPooling2D": "AveragePooling2D (max pooling is not simulated yet)",
    "GlobalMaxPooling2D": "GlobalAveragePooling2D",
    "LeakyReLU": "ReLU (spiking neurons cannot represent negative activations)",
    "PReLU": "ReLU", "ELU": "ReLU",
    "Add": "a plain chain of layers (residual joins are not simulated yet)",
    "Concatenate": "a plain chain of layers",
    "ZeroPadding2D": "padding='same' on the following convolution",
    "LayerNormalization": "BatchNormalization (which folds into the preceding layer)",
    "Conv1D": "Conv2D", "Conv2DTranspose": "Conv2D with strides", "SeparableConv2D":
        "DepthwiseConv2D followed by a 1x1 Conv2D (each with BatchNormalization and ReLU)",
}


@dataclass
class ParsedModel:
    """Layers ready for normalization, the input preprocessing and what was done to get there."""

    layers: list[Layer]
    input_shape: tuple[int, ...]
    mean: float = 0.0
    std: float = 1.0
    rectified: list[bool] = field(default_factory=list)  # per layer: output passes through ReLU (or is flatten)
    notes: list[str] = field(default_factory=list)


def _class(layer) -> str:
    return type(layer).__name__


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    if act is None:
        return "linear"
    name = getattr(act, "__name__", None) or str(act)
    return name


def _chain(model) -> list:
    """Layers of a Sequential model, or of a functional model whose graph is a single chain."""
    import keras

    if isinstance(model, keras.Sequential):
        return list(model.layers)
    layers = [layer for layer in model.layers if _class(layer) != "InputLayer"]
    for layer in layers:
        inbound = getattr(layer, "_inbound_nodes", [])
        for node in inbound:
            parents = getattr(node, "input_tensors", None) or []
            if len(parents) > 1:
                raise ConfigError(f"layer {layer.name!r} ({_class(layer)}) joins {len(parents)} branches; only "
                                  "single-chain models can be converted (residual/concatenate joins are not "
                                  "simulated yet)")
    return layers


def parse_keras(model, *, input_mean: float | None = None, input_std: float | None = None) -> ParsedModel:
    """Translate ``model`` into bundle layers (see the module docstring for the rules)."""
    in_shape = tuple(int(d) for d in model.input_shape[1:])
    if len(in_shape) not in (1, 3):
        raise ConfigError(f"model input must be (features,) or (H, W, C), got {in_shape}")
    parsed = ParsedModel(layers=[], input_shape=in_shape)
    shape = in_shape
    layers = _chain(model)
    last_weighted = max((i for i, layer in enumerate(layers)
                         if _class(layer) in ("Dense", "Conv2D", "DepthwiseConv2D")), default=None)
    if last_weighted is None:
        raise ConfigError("the model has no Dense/Conv2D layer to convert")
    pending_bn_target: Layer | None = None
    names: set[str] = set()
    finished = False  # after the output layer only identities, flatten and softmax may follow

    def unique(name: str) -> str:
        base, k = name.replace("/", "_") or "layer", 1
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.add(name)
        return name

    for i, k_layer in enumerate(layers):
        cls = _class(k_layer)
        where = f"layer {k_layer.name!r} ({cls})"
        out_shape = tuple(int(d) for d in k_layer.output.shape[1:]) if hasattr(k_layer, "output") else shape
        if cls in _IDENTITY:
            parsed.notes.append(f"removed {k_layer.name} ({cls}: identity at inference)")
            continue
        if cls == "Rescaling":
            if parsed.layers:
                raise ConfigError(f"{where}: Rescaling is only supported as the first layer (input preprocessing)")
            scale, offset = np.asarray(k_layer.scale, np.float64), np.asarray(k_layer.offset, np.float64)
            if scale.size != 1 or offset.size != 1 or float(scale) <= 0:
                raise ConfigError(f"{where}: only a positive scalar scale and scalar offset are supported")
            parsed.std = 1.0 / float(scale)
            parsed.mean = -float(offset) / float(scale)
            parsed.notes.append(f"{k_layer.name}: input = (pixel - {parsed.mean:g}) / {parsed.std:g}")
            continue
        if finished and cls not in ("Softmax", "Flatten", "Activation"):
            raise ConfigError(f"{where} follows the output layer; only Softmax may follow the last weighted layer")
        if cls in ("Dense", "Conv2D", "DepthwiseConv2D"):
            layer = _weighted(k_layer, cls, shape, unique)
            parsed.layers.append(layer)
            act = _activation_name(k_layer)
            if i == last_weighted:
                if act not in ("linear", "softmax"):
                    raise ConfigError(f"{where}: the output layer must be linear or softmax, got activation {act!r}")
                layer.output = True
                finished = True
                parsed.rectified.append(False)
            elif act == "relu":
                parsed.rectified.append(True)
            elif act == "linear":
                parsed.rectified.append(False)
            else:
                raise ConfigError(f"{where}: activation {act!r} cannot be converted; use 'relu' (fused or a "
                                  "ReLU layer)")
            pending_bn_target = layer if act == "linear" and not layer.output else None
            if layer.output:
                pending_bn_target = layer
        elif cls == "BatchNormalization":
            if pending_bn_target is None or parsed.layers[-1] is not pending_bn_target:
                raise ConfigError(f"{where}: BatchNormalization must directly follow a Dense/Conv2D/DepthwiseConv2D "
                                  "layer without activation, so it can be folded into it")
            fold_batchnorm(pending_bn_target, k_layer)
            parsed.notes.append(f"folded {k_layer.name} into {pending_bn_target.name}")
            pending_bn_target = None
        elif cls == "ReLU" or (cls == "Activation" and _activation_name(k_layer) == "relu"):
            if cls == "ReLU":
                slope = float(getattr(k_layer, "negative_slope", 0.0) or 0.0)
                thr = float(getattr(k_layer, "threshold", 0.0) or 0.0)
                mx = getattr(k_layer, "max_value", None)
                if slope != 0 or thr != 0 or mx is not None:
                    raise ConfigError(f"{where}: only a plain ReLU converts (got max_value={mx}, "
                                      f"negative_slope={slope}, threshold={thr}); use keras.layers.ReLU()")
            if not parsed.layers or parsed.layers[-1].kind == "flatten":
                raise ConfigError(f"{where}: ReLU must follow a weighted layer")
            parsed.rectified[-1] = True
            pending_bn_target = None
        elif cls == "Activation" and _activation_name(k_layer) == "linear":
            continue
        elif cls == "Softmax" or (cls == "Activation" and _activation_name(k_layer) == "softmax"):
            if not finished:
                raise ConfigError(f"{where}: softmax is only supported at the end of the model")
        elif cls in ("AveragePooling2D", "GlobalAveragePooling2D"):
            if not parsed.layers or not parsed.rectified[-1] or parsed.layers[-1].kind == "flatten":
                raise ConfigError(f"{where}: average pooling must follow a rectified (ReLU) layer so its output "
                                  "stays a non-negative firing rate")
            layer = _avg_pool(k_layer, cls, shape, unique)
            parsed.layers.append(layer)
            parsed.rectified.append(True)  # the mean of non-negative rates is non-negative
            parsed.notes.append(f"{k_layer.name}: average pooling -> depthwise convolution with kernel 1/area")
            if cls == "GlobalAveragePooling2D" and not getattr(k_layer, "keepdims", False):
                parsed.layers.append(Layer(name=unique(f"{k_layer.name}_flatten"), kind="flatten"))
                parsed.rectified.append(True)
            pending_bn_target = None
        elif cls == "Flatten":
            if len(shape) != 1:
                parsed.layers.append(Layer(name=unique(k_layer.name), kind="flatten"))
                parsed.rectified.append(parsed.rectified[-1] if parsed.rectified else True)
        else:
            instead = _REPLACEMENTS.get(cls, "Dense, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, "
                                             "AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout or Softmax")
            raise ConfigError(f"{where} cannot be converted to a spiking network; use {instead}")
        shape = out_shape
    for layer, rect in zip(parsed.layers, parsed.rectified):
        if layer.weighted and not layer.output and not rect:
            raise ConfigError(f"layer {layer.name!r} has no ReLU after it; every hidden layer needs a ReLU because "
                              "spiking neurons only represent non-negative activations")
    if input_mean is not None:
        parsed.mean = float(input_mean)
    if input_std is not None:
        parsed.std = float(input_std)
    return parsed


def _weighted(k_layer, cls: str, in_shape: tuple[int, ...], unique) -> Layer:
    where = f"layer {k_layer.name!r} ({cls})"
    weights = [np.asarray(w, np.float64) for w in k_layer.get_weights()]
    kernel = weights[0]
    bias = weights[1] if getattr(k_layer, "use_bias", False) else None
    if cls == "Dense":
        if len(in_shape) != 1:
            raise ConfigError(f"{where} receives a {len(in_shape)}-D input {in_shape}; add a Flatten layer "
                              "(Dense on images applies per pixel, which is not supported)")
        kind, strides, padding = "dense", (1, 1), "valid"
    else:
        if getattr(k_layer, "data_format", "channels_last") != "channels_last":
            raise ConfigError(f"{where}: only channels_last is supported")
        if tuple(getattr(k_layer, "dilation_rate", (1, 1))) != (1, 1):
            raise ConfigError(f"{where}: dilated convolutions are not supported; use dilation_rate=1")
        if cls == "Conv2D" and getattr(k_layer, "groups", 1) != 1:
            raise ConfigError(f"{where}: grouped convolutions are not supported; use groups=1")
        if cls == "DepthwiseConv2D" and kernel.shape[3] != 1:
            raise ConfigError(f"{where}: depth_multiplier {kernel.shape[3]} is not supported; use 1 (followed by a "
                              "1x1 Conv2D to change the channel count)")
        kind = "conv2d" if cls == "Conv2D" else "depthwise_conv2d"
        strides, padding = tuple(int(s) for s in k_layer.strides), k_layer.padding
        if padding not in ("same", "valid"):
            raise ConfigError(f"{where}: padding {padding!r} is not supported; use 'same' or 'valid'")
    channels = kernel.shape[-1] if kind != "depthwise_conv2d" else kernel.shape[2]
    if bias is None:
        bias = np.zeros(channels)
    return Layer(name=unique(k_layer.name), kind=kind, weights=kernel, bias=bias.reshape(-1), strides=strides,
                 padding=padding)


def _avg_pool(k_layer, cls: str, in_shape: tuple[int, ...], unique) -> Layer:
    where = f"layer {k_layer.name!r} ({cls})"
    if len(in_shape) != 3:
        raise ConfigError(f"{where} needs an (H, W, C) input, got {in_shape}")
    h, w, c = in_shape
    if cls == "GlobalAveragePooling2D":
        (ph, pw), strides, padding = (h, w), (1, 1), "valid"
    else:
        ph, pw = (int(v) for v in k_layer.pool_size)
        strides = tuple(int(s) for s in (k_layer.strides or (ph, pw)))
        padding = k_layer.padding
        if padding == "same":
            # TF's 'same' average pooling divides by the number of *valid* pixels at the borders, which a
            # convolution with kernel 1/area does not; it is equal only when no padding is needed.
            needs_pad = any(((-(-n // s)) - 1) * s + k - n > 0 for n, k, s in ((h, ph, strides[0]), (w, pw, strides[1])))
            if needs_pad:
                raise ConfigError(f"{where}: padding='same' with border padding averages over fewer pixels at the "
                                  "edges; use padding='valid' or sizes that divide evenly")
    kernel = np.full((ph, pw, c, 1), 1.0 / (ph * pw))
    return Layer(name=unique(k_layer.name), kind="depthwise_conv2d", weights=kernel, bias=np.zeros(c),
                 strides=strides, padding=padding)


def fold_batchnorm(layer: Layer, bn) -> None:
    """Fold a Keras BatchNormalization (inference mode) into ``layer``'s kernel and bias, in place.

    y = gamma * (z - mean) / sqrt(var + eps) + beta with z = W x + b gives W' = W * g and
    b' = (b - mean) * g + beta, with g = gamma / sqrt(var + eps) per output channel.
    """
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    rank = len(bn.input.shape) if hasattr(bn, "input") else None
    if axis is None or (axis != -1 and rank is not None and axis != rank - 1):
        raise ConfigError(f"layer {bn.name!r} (BatchNormalization): only normalization over the last (channel) axis "
                          f"can be folded, got axis={bn.axis}")
    channels = layer.bias.shape[0]
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros(channels)
    mean = np.asarray(bn.moving_mean, np.float64)
    var = np.asarray(bn.moving_variance, np.float64)
    g = gamma / np.sqrt(var + bn.epsilon)
    if layer.kind == "depthwise_conv2d":
        layer.weights = layer.weights * g[None, None, :, None]
    else:
        layer.weights = layer.weights * g  # output channels are the last axis of dense and conv2d kernels
    layer.bias = (layer.bias - mean) * g + beta
